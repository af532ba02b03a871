package runtime

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/weirstream/weir/internal/engine"
	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/objstore"
	"github.com/weirstream/weir/internal/statebackend"
)

// Config configures the execution of a job. The zero value plus a
// CheckpointDir is a working configuration; RegisterFlags binds the standard
// command-line flags to it.
type Config struct {
	// CheckpointDir holds checkpoints and, without a LocalDir, the live
	// state. A job started on a directory with a complete checkpoint resumes
	// from the newest one. A job locks it while it runs: a second one on it
	// fails to start. An s3://BUCKET/PREFIX keeps the checkpoints in object
	// storage (the endpoint and credentials come from the AWS environment,
	// the bucket is created if missing) and the live state in LocalDir.
	CheckpointDir string
	// LocalDir holds the live state and stages checkpoints when
	// CheckpointDir is in object storage (default: a fresh directory under
	// the OS temp dir, logged, removed when the job ends). It is locked like
	// a checkpoint directory; a job restarted with an empty one downloads
	// the checkpoint it restores. With a CheckpointDir that is a directory
	// (a shared volume, NFS), a LocalDir works the same way: the live state
	// stays local and completed checkpoints are copied into the directory;
	// without one, the live state is in the directory and checkpoints cost
	// no copy. A job may switch between the two on restart.
	LocalDir string
	// CheckpointInterval is the time between checkpoints (default 1s). Sinks
	// commit at checkpoints, so it is also the latency of committed output.
	CheckpointInterval time.Duration
	// CheckpointTimeout aborts a checkpoint that takes longer (default 2m).
	CheckpointTimeout time.Duration
	// RetainCheckpoints is how many complete checkpoints to keep (default 3).
	RetainCheckpoints int
	// SavepointDir, a directory or s3://BUCKET/PREFIX, receives a savepoint
	// when the job is stopped (Stop, SIGINT, SIGTERM): its final checkpoint
	// copied, every file with its checksum, into a savepoint-<id>-<time>
	// directory of its own that retention never deletes; the log names it
	// ("savepoint written"). POST /api/savepoint on the status server takes
	// one without stopping, here unless the request names a directory.
	SavepointDir string
	// FromSavepoint, a savepoint's directory (local or s3://), is where a
	// job starts from when CheckpointDir holds no checkpoint yet: the
	// savepoint is verified and copied into CheckpointDir, then restored
	// as a checkpoint. Once the job has checkpointed there, a restart with
	// the same setting resumes from its newest checkpoint; a CheckpointDir
	// with checkpoints of another run is refused. With Group, it is a group
	// savepoint (weir checkpoints savepoint): each task with no checkpoint
	// yet starts from its own savepoint in it, task-<i>; the task count
	// (the partition count of the input topics) must be the savepoint's,
	// and so must the Group of a job with exchanges (a KeyBy): its
	// repartition topics hold what was in flight between tasks.
	FromSavepoint string
	// AllowNonRestoredState starts a job from a checkpoint or savepoint
	// that has state of operators the pipeline no longer has, dropping
	// that state; without it, such a start is refused, naming them.
	AllowNonRestoredState bool
	// Parallelism is the number of subtasks of operators that do not set
	// their own (default 1).
	Parallelism int
	// MaxParallelism is the number of key groups (default 128). It bounds
	// the parallelism of keyed operators and cannot change for a job's state.
	MaxParallelism int
	// BatchSize is the number of records per batch between tasks (default
	// 1024).
	BatchSize int
	// ChannelBuffers is the number of batches in flight per connection
	// between two subtasks (default 4).
	ChannelBuffers int
	// StateCacheBytes bounds the memory of the keyed state cached by the
	// job (flag --state-cache, default DefaultStateCache: 256 MiB; at
	// least 1 KiB), shared equally by its keyed subtasks. The size of a
	// cached entry is estimated (its slot in a hash table, plus the
	// encoded length of key and value when they hold pointers), and state
	// changed since the last checkpoint stays cached beyond the bound;
	// see package state. State that does not fit is read from disk.
	StateCacheBytes int64
	// Logger receives the runtime's logs (default slog.Default()).
	Logger *slog.Logger
	// Events receives checkpoint events, for metrics and tests.
	Events EventListener
	// MetricsAddr is the address of the HTTP server for /metrics, /healthz,
	// /readyz, /api/status and the status page; empty (the default of
	// Config, not of the --metrics-addr flag) serves nothing. A port of 0
	// picks a free one: see StartInfo.MetricsAddr. If the address cannot be
	// bound, the job logs a warning and runs without the server.
	MetricsAddr string
	// MetricsTLSCertFile and MetricsTLSKeyFile, if set, make the status
	// server serve HTTPS with this PEM certificate and key.
	MetricsTLSCertFile, MetricsTLSKeyFile string
	// MetricsAuth, if set, is required on every endpoint of the status
	// server but /healthz and /readyz. Without it, a server bound to an
	// address other than loopback warns at start and refuses requests that
	// could change state.
	MetricsAuth MetricsAuth
	// ReadyCheckpointFactor makes /readyz report unready when no checkpoint
	// completed for this many checkpoint intervals (default 3).
	ReadyCheckpointFactor float64
	// Restart restarts a failed job in the process. The zero value (the
	// default of Config, not of the --restart-* flags) never restarts.
	Restart RestartStrategy
	// Stop, if set, stops the job when it is closed, as SIGINT does under
	// Main: the sources stop reading, a final checkpoint is taken, the
	// sinks commit it, and Run returns nil (a stop while waiting to restart
	// returns nil at once). The next run resumes from that checkpoint.
	// Cancelling Run's context instead stops at once, without one. Main
	// closes its own on the first signal, and this one too.
	Stop <-chan struct{}
	// Group, if set (--group), makes this process one member of a job
	// spread over every process started with the same Group and pipeline,
	// through Cluster: the job's tasks are shared among the members, each
	// checkpointed under CheckpointDir/task-<i> (a shared directory or
	// s3://), and move to another member when theirs leaves or dies. See
	// Cluster.
	Group string
	// InstanceID (--instance-id), with Group, is this member's static
	// identity (a StatefulSet pod's name, say): restarted within
	// GroupSessionTimeout, it gets its tasks back without a rebalance.
	InstanceID string
	// GroupSessionTimeout (--group-session-timeout, default 45s) is how
	// long a member may go unheard before its tasks move to others: the
	// longest pause a member survives, and the time a dead member's tasks
	// wait.
	GroupSessionTimeout time.Duration
	// Cluster carries the group: membership and the exchanges between
	// tasks (kafka.NewCluster). Required with Group.
	Cluster Cluster

	// flagErrs holds values given on the command line that EnsureDefaults
	// would otherwise silently replace (an explicit 0).
	flagErrs []error
	// defaultParallelism is set when EnsureDefaults chose Parallelism (and
	// no --parallelism was given): with Group, the input decides it.
	defaultParallelism bool
	// tuneEngine, if set, adjusts the engine's configuration: the group
	// runner's settings of a task's job (group.go).
	tuneEngine func(*engine.Config)
}

// DefaultGroupSessionTimeout is the default of Config.GroupSessionTimeout
// (--group-session-timeout): Kafka's consumers' default.
const DefaultGroupSessionTimeout = 45 * time.Second

// EventListener has optional hooks the runtime calls from its goroutines;
// they must return quickly.
type EventListener struct {
	// Started runs at every start of the job (the first, and each restart
	// under Config.Restart) once it has restored its checkpoint, opened its
	// operators and bound its status server, before it processes records.
	Started func(StartInfo)
	// CheckpointCompleted runs when a checkpoint is durable, before the
	// sinks commit it; the job's last has Final set.
	CheckpointCompleted func(CheckpointInfo)
	// CheckpointFailed runs when a checkpoint is aborted (timed out,
	// declined by a task, or not writable).
	CheckpointFailed func(id uint64, err error)
}

// StartInfo describes a start of the job.
type StartInfo struct {
	Attempt      int    // 0 for the first start, n for the n-th restart
	RestoredFrom uint64 // id of the checkpoint it resumed from, 0 for a fresh start
	MetricsAddr  string // the address the status server listens on, "" without one
}

// CheckpointInfo describes a completed checkpoint.
type CheckpointInfo struct {
	ID       uint64
	Final    bool
	Duration time.Duration // from trigger to durable manifest
	// MaxSyncPause is the longest time a task spent in the synchronous part
	// (operator snapshots, freezing keyed state, forwarding the barrier).
	MaxSyncPause time.Duration
	BytesWritten int64 // bytes this checkpoint added to storage
	Files        int
}

// DefaultMetricsAddr is the default of the --metrics-addr flag.
const DefaultMetricsAddr = "127.0.0.1:9249"

// DefaultStateCache is the default of Config.StateCacheBytes (and of
// --state-cache): 256 MiB.
const DefaultStateCache = 256 << 20

// EnsureDefaults fills in zero fields.
func (c *Config) EnsureDefaults() {
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = time.Second
	}
	if c.CheckpointTimeout == 0 {
		c.CheckpointTimeout = 2 * time.Minute
	}
	if c.RetainCheckpoints == 0 {
		c.RetainCheckpoints = 3
	}
	if c.Parallelism == 0 {
		c.Parallelism, c.defaultParallelism = 1, true
	}
	if c.GroupSessionTimeout == 0 {
		c.GroupSessionTimeout = DefaultGroupSessionTimeout
	}
	if c.MaxParallelism == 0 {
		c.MaxParallelism = keygroup.DefaultMaxParallelism
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1024
	}
	if c.ChannelBuffers == 0 {
		c.ChannelBuffers = 4
	}
	if c.StateCacheBytes == 0 {
		c.StateCacheBytes = DefaultStateCache
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ReadyCheckpointFactor == 0 {
		c.ReadyCheckpointFactor = 3
	}
	c.Restart.ensureDefaults()
}

// Validate reports settings that cannot work, naming the flag to fix.
func (c *Config) Validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	errs = append(errs, c.flagErrs...)
	check(c.CheckpointDir == "", "--checkpoint-dir is required: a directory or s3://BUCKET/PREFIX for checkpoints")
	check(c.CheckpointInterval < time.Millisecond, "--checkpoint-interval %v is too short (minimum 1ms)", c.CheckpointInterval)
	check(c.CheckpointTimeout < c.CheckpointInterval, "--checkpoint-timeout %v is shorter than --checkpoint-interval %v", c.CheckpointTimeout, c.CheckpointInterval)
	check(c.RetainCheckpoints < 1, "--retain-checkpoints %d: keep at least 1", c.RetainCheckpoints)
	for _, loc := range [][2]string{{"--savepoint-dir", c.SavepointDir}, {"--from-savepoint", c.FromSavepoint}} {
		if _, err := objstore.ParseLocation(loc[1]); loc[1] != "" && err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", loc[0], err))
		}
	}
	check(c.MaxParallelism < 1 || c.MaxParallelism > 1<<15, "--max-parallelism %d out of range [1, 32768]", c.MaxParallelism)
	check(c.Parallelism < 1 || c.Parallelism > c.MaxParallelism, "--parallelism %d out of range [1, --max-parallelism %d]", c.Parallelism, c.MaxParallelism)
	check(c.BatchSize < 1, "batch size %d < 1", c.BatchSize)
	check(c.ChannelBuffers < 1, "channel buffers %d < 1", c.ChannelBuffers)
	check(c.StateCacheBytes < statebackend.MinCacheBytes, "--state-cache %s: must be at least %s", formatByteSize(c.StateCacheBytes), formatByteSize(statebackend.MinCacheBytes))
	check(!(c.ReadyCheckpointFactor >= 1), "--ready-checkpoint-factor %v: must be at least 1", c.ReadyCheckpointFactor)
	if _, err := c.metricsTLS(); err != nil {
		errs = append(errs, err)
	}
	if err := c.MetricsAuth.validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateGroup()...)
	if r := c.Restart; r.Attempts != 0 {
		check(r.Attempts < 0, "--restart-attempts %d: must be 0 (never restart) or more", r.Attempts)
		check(r.Backoff < 0, "--restart-backoff %v: must not be negative", r.Backoff)
		check(r.MaxBackoff < r.Backoff, "--restart-max-backoff %v is less than --restart-backoff %v", r.MaxBackoff, r.Backoff)
		check(r.ResetAfter <= 0, "--restart-reset-after %v: must be positive", r.ResetAfter)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", errInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// groupName is what a group name may hold: it names Kafka topics
// (<group>-<exchange>-repartition), whose names allow no more.
var groupName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,200}$`)

// validateGroup checks the settings of a job spread over processes.
func (c *Config) validateGroup() []error {
	if c.Group == "" {
		if c.InstanceID != "" {
			return []error{fmt.Errorf("--instance-id %q needs --group: a static identity is one of a group's members", c.InstanceID)}
		}
		return nil
	}
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(!groupName.MatchString(c.Group), "--group %q: use 1 to 200 letters, digits, '.', '_' and '-' (it names the job's Kafka consumer group and repartition topics)", c.Group)
	check(c.Cluster == nil, "--group %q needs Config.Cluster, which carries the group (set it to kafka.NewCluster(...) in the job's main)", c.Group)
	check(!c.defaultParallelism, "--parallelism %d cannot be set with --group %q: a job spread over processes has one task per partition of its input topics, and every operator runs at that parallelism", c.Parallelism, c.Group)
	check(c.SavepointDir != "", "--savepoint-dir cannot be used with --group %q: each task checkpoints on its own; stop every member, then write a savepoint of the whole group with 'weir checkpoints savepoint %s --dir DIR'", c.Group, c.CheckpointDir)
	check(c.GroupSessionTimeout < time.Millisecond, "--group-session-timeout %v: must be positive", c.GroupSessionTimeout)
	return errs
}

// Flags holds the standard job flags after RegisterFlags; call Config after
// parsing.
type Flags struct {
	fs       *flag.FlagSet
	cfg      *Config
	logLevel slog.Level
	// The files holding the status server's credentials.
	tokenFile, basicAuthFile string
}

// RegisterFlags binds the standard job flags to fs, with cfg's current values
// as defaults (set CheckpointDir first to give the job a default directory).
// After fs.Parse, Config returns the configuration.
func RegisterFlags(fs *flag.FlagSet, cfg Config) *Flags {
	if cfg.Restart == (RestartStrategy{}) {
		cfg.Restart = defaultRestart
	}
	cfg.EnsureDefaults()
	f := &Flags{fs: fs, cfg: &cfg}
	fs.StringVar(&f.cfg.CheckpointDir, "checkpoint-dir", cfg.CheckpointDir, "directory or s3://BUCKET/PREFIX for checkpoints (and, for a directory, the live state); a job resumes from the newest checkpoint in it")
	fs.StringVar(&f.cfg.LocalDir, "local-dir", cfg.LocalDir, "local directory for the live state; completed checkpoints are copied to --checkpoint-dir (for s3://…, default: a fresh temporary directory; for a directory, default: none, the live state is in --checkpoint-dir, which suits a local disk but not a shared volume)")
	fs.DurationVar(&f.cfg.CheckpointInterval, "checkpoint-interval", cfg.CheckpointInterval, "time between checkpoints; output is committed at each")
	fs.DurationVar(&f.cfg.CheckpointTimeout, "checkpoint-timeout", cfg.CheckpointTimeout, "abort a checkpoint that takes longer than this")
	fs.IntVar(&f.cfg.RetainCheckpoints, "retain-checkpoints", cfg.RetainCheckpoints, "number of complete checkpoints to keep")
	fs.StringVar(&f.cfg.SavepointDir, "savepoint-dir", cfg.SavepointDir, "directory or s3://BUCKET/PREFIX that receives a savepoint (a self-contained copy of the final checkpoint) when the job is stopped, and those POST /api/savepoint asks for")
	fs.StringVar(&f.cfg.FromSavepoint, "from-savepoint", cfg.FromSavepoint, "savepoint `directory` (local or s3://) to start from when --checkpoint-dir holds no checkpoint yet; with --group, a group savepoint written by 'weir checkpoints savepoint'")
	fs.BoolVar(&f.cfg.AllowNonRestoredState, "allow-non-restored-state", cfg.AllowNonRestoredState, "start from a checkpoint or savepoint with state of operators the pipeline no longer has, dropping that state")
	fs.IntVar(&f.cfg.Parallelism, "parallelism", cfg.Parallelism, "subtasks per operator, unless the pipeline sets it")
	fs.IntVar(&f.cfg.MaxParallelism, "max-parallelism", cfg.MaxParallelism, "number of key groups; fixed for the lifetime of a job's state")
	fs.Var(byteSize{&f.cfg.StateCacheBytes}, "state-cache", "memory bound of the keyed state cached, shared by the keyed subtasks (as 256MiB, 1GiB, 500MB); state beyond it is read from disk")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	metricsAddr := cfg.MetricsAddr
	if metricsAddr == "" {
		metricsAddr = DefaultMetricsAddr
	}
	fs.StringVar(&f.cfg.MetricsAddr, "metrics-addr", metricsAddr, `address for /metrics, /healthz, /readyz and the status page; "" turns it off`)
	fs.StringVar(&f.cfg.MetricsTLSCertFile, "metrics-tls-cert", cfg.MetricsTLSCertFile, "PEM certificate `file`: serve the status server over HTTPS (with --metrics-tls-key)")
	fs.StringVar(&f.cfg.MetricsTLSKeyFile, "metrics-tls-key", cfg.MetricsTLSKeyFile, "PEM private key `file` of --metrics-tls-cert")
	fs.StringVar(&f.tokenFile, "metrics-bearer-token-file", "", "`file` holding a bearer token the status server requires on all but /healthz and /readyz (default: the environment variable "+metricsTokenEnv+")")
	fs.StringVar(&f.basicAuthFile, "metrics-basic-auth-file", "", "`file` holding one line USER:PASSWORD the status server requires (basic auth) on all but /healthz and /readyz")
	fs.Float64Var(&f.cfg.ReadyCheckpointFactor, "ready-checkpoint-factor", cfg.ReadyCheckpointFactor, "/readyz fails when no checkpoint completed for this many checkpoint intervals")
	fs.StringVar(&f.cfg.Group, "group", cfg.Group, "run as one member of the job spread over every process started with this `name` (a Kafka consumer group); --checkpoint-dir must then be shared by all (a shared directory or s3://)")
	fs.StringVar(&f.cfg.InstanceID, "instance-id", cfg.InstanceID, "with --group: this member's static `identity` (a StatefulSet pod's name, say): restarted within --group-session-timeout, it gets its tasks back without a rebalance")
	fs.DurationVar(&f.cfg.GroupSessionTimeout, "group-session-timeout", cfg.GroupSessionTimeout, "with --group: how long a member may go unheard before its tasks move to others (the longest pause it survives, and how long a dead member's tasks wait)")
	fs.IntVar(&f.cfg.Restart.Attempts, restartAttemptsFlag, cfg.Restart.Attempts, "restarts in a row from the last checkpoint after a failure before the job fails; 0: never restart")
	fs.DurationVar(&f.cfg.Restart.Backoff, "restart-backoff", cfg.Restart.Backoff, "wait before the first restart in a row; each further one waits twice as long")
	fs.DurationVar(&f.cfg.Restart.MaxBackoff, "restart-max-backoff", cfg.Restart.MaxBackoff, "longest wait before a restart")
	fs.DurationVar(&f.cfg.Restart.ResetAfter, "restart-reset-after", cfg.Restart.ResetAfter, "a failure after running this long is the first in a row again")
	return f
}

// restartAttemptsFlag is the one numeric flag for which 0 is a setting.
const restartAttemptsFlag = "restart-attempts"

// Config returns the parsed configuration, with a text logger to stderr at
// the chosen level unless cfg had a Logger.
func (f *Flags) Config() Config {
	c := *f.cfg
	// EnsureDefaults reads a zero number as "not set": a zero given on the
	// command line would silently become the default, so it is an error.
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "parallelism" {
			c.defaultParallelism = false
		}
		g, ok := fl.Value.(flag.Getter)
		if !ok || fl.Name == restartAttemptsFlag { // 0 means never restart
			return
		}
		var zero bool
		switch v := g.Get().(type) {
		case int:
			zero = v == 0
		case time.Duration:
			zero = v == 0
		case float64:
			zero = v == 0
		case int64:
			zero = v == 0
		}
		if zero {
			c.flagErrs = append(c.flagErrs, fmt.Errorf("--%s %s: must be positive", fl.Name, fl.Value))
		}
	})
	if f.tokenFile != "" || f.basicAuthFile != "" || c.MetricsAuth.IsZero() {
		auth, err := readMetricsAuth(f.tokenFile, f.basicAuthFile)
		if err != nil {
			c.flagErrs = append(c.flagErrs, err)
		} else if !auth.IsZero() {
			c.MetricsAuth = auth
		}
	}
	if c.Logger == nil || c.Logger == slog.Default() {
		c.Logger = newLogger(f.logLevel)
	}
	return c
}

// engine returns the engine's configuration; c has its defaults and is
// valid.
func (c *Config) engine() (engine.Config, error) {
	tlsCfg, err := c.metricsTLS()
	if err != nil {
		return engine.Config{}, err
	}
	ecfg := engine.Config{
		CheckpointDir:         c.CheckpointDir,
		LocalDir:              c.LocalDir,
		CheckpointInterval:    c.CheckpointInterval,
		CheckpointTimeout:     c.CheckpointTimeout,
		RetainCheckpoints:     c.RetainCheckpoints,
		SavepointDir:          c.SavepointDir,
		FromSavepoint:         c.FromSavepoint,
		AllowNonRestoredState: c.AllowNonRestoredState,
		Parallelism:           c.Parallelism,
		MaxParallelism:        c.MaxParallelism,
		BatchSize:             c.BatchSize,
		ChannelBuffers:        c.ChannelBuffers,
		StateCacheBytes:       c.StateCacheBytes,
		Logger:                c.Logger,
		Events:                c.Events.engine(),
		MetricsAddr:           c.MetricsAddr,
		MetricsTLS:            tlsCfg,
		MetricsAuth:           engine.Auth(c.MetricsAuth),
		ReadyCheckpointFactor: c.ReadyCheckpointFactor,
		Restart:               engine.RestartStrategy(c.Restart),
		Stop:                  c.Stop,
	}
	if c.tuneEngine != nil {
		c.tuneEngine(&ecfg)
	}
	return ecfg, nil
}

// engine returns the engine's hooks for l.
func (l EventListener) engine() engine.Events {
	e := engine.Events{CheckpointFailed: l.CheckpointFailed}
	if f := l.Started; f != nil {
		e.Started = func(info engine.StartInfo) { f(StartInfo(info)) }
	}
	if f := l.CheckpointCompleted; f != nil {
		e.CheckpointCompleted = func(info engine.CheckpointInfo) { f(CheckpointInfo(info)) }
	}
	return e
}
