package runtime

import "log/slog"

// logConfigMsg is the message of the start-up line (tests match it).
const logConfigMsg = "starting job with effective configuration"

// logConfig logs, in one line at the start of Run, every setting of c after
// defaults, so that an operator reading a job's log knows what it ran with
// without reconstructing flags and defaults. Secrets are never printed:
// MetricsAuth logs what is configured, not its token or password. Logger,
// Events, Stop and Cluster are hooks, not settings: only whether Stop and
// Cluster are set is logged.
func logConfig(job string, c *Config) {
	r := c.Restart
	c.Logger.Info(logConfigMsg, "job", job, slog.Group("config",
		"checkpoint_dir", c.CheckpointDir,
		"local_dir", c.LocalDir,
		"checkpoint_interval", c.CheckpointInterval,
		"checkpoint_timeout", c.CheckpointTimeout,
		"retain_checkpoints", c.RetainCheckpoints,
		"savepoint_dir", c.SavepointDir,
		"from_savepoint", c.FromSavepoint,
		"allow_non_restored_state", c.AllowNonRestoredState,
		"parallelism", c.Parallelism,
		"max_parallelism", c.MaxParallelism,
		"batch_size", c.BatchSize,
		"channel_buffers", c.ChannelBuffers,
		"state_cache_bytes", c.StateCacheBytes,
		"metrics_addr", c.MetricsAddr,
		"metrics_tls_cert_file", c.MetricsTLSCertFile,
		"metrics_tls_key_file", c.MetricsTLSKeyFile,
		"metrics_auth", c.MetricsAuth.String(),
		"ready_checkpoint_factor", c.ReadyCheckpointFactor,
		slog.Group("restart",
			"attempts", r.Attempts, "backoff", r.Backoff, "max_backoff", r.MaxBackoff, "reset_after", r.ResetAfter),
		"stop_channel", c.Stop != nil,
		"group", c.Group,
		"instance_id", c.InstanceID,
		"group_session_timeout", c.GroupSessionTimeout,
		"cluster", c.Cluster != nil,
	))
}
