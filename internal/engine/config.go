package engine

import (
	"crypto/tls"
	"log/slog"
	"time"
)

// Config configures the engine. Package runtime derives it from
// runtime.Config after filling in defaults and validating it, so the engine
// takes it as it is.
type Config struct {
	CheckpointDir string // a directory or s3://bucket/prefix
	// LocalDir holds the live state and stages checkpoints when
	// CheckpointDir is in object storage, or is a directory given with a
	// LocalDir (package chkstore, OpenLocation); Run creates a temporary
	// one for object storage if it is empty. A directory without one holds
	// both itself.
	LocalDir           string
	CheckpointInterval time.Duration
	CheckpointTimeout  time.Duration
	RetainCheckpoints  int
	// SavepointDir (a directory or s3://) receives a savepoint of the final
	// checkpoint, and of the checkpoints POST /api/savepoint asks for
	// without a directory of their own.
	SavepointDir string
	// FromSavepoint is a savepoint to start from when CheckpointDir holds
	// no checkpoint yet (see savepoint.go).
	FromSavepoint string
	// AllowNonRestoredState drops, rather than refuses, the state of
	// operators the pipeline no longer has.
	AllowNonRestoredState bool
	Parallelism           int // of nodes that do not set their own
	MaxParallelism        int
	BatchSize             int
	ChannelBuffers        int
	StateCacheBytes       int64 // over all keyed subtasks; see stateCacheShare
	Logger                *slog.Logger
	Events                Events
	MetricsAddr           string      // "": no status server
	MetricsTLS            *tls.Config // nil: plain HTTP
	MetricsAuth           Auth
	ReadyCheckpointFactor float64
	Restart               RestartStrategy
	// Stop, when closed, stops the job with a final checkpoint.
	Stop <-chan struct{}
	// BeforeManifest, if set, is called before the manifest of each
	// checkpoint is written, from the coordinator's goroutine. An error
	// declines the checkpoint and fails the job without a restart: in
	// group mode, a newer owner claimed the task (package tasklineage).
	BeforeManifest func(checkpoint uint64) error
	// BeforeCommit, if set, is called once the manifest of each checkpoint
	// is written and before the operators are told that it completed (the
	// sinks commit), from the coordinator's goroutine. An error leaves the
	// checkpoint uncommitted (its manifest stays: a new owner of the task
	// may be restoring it) and fails the job without a restart: in group
	// mode, a newer owner claimed the task and may start from an older
	// checkpoint (package tasklineage).
	BeforeCommit func(checkpoint uint64) error
	// BeforeRestart, if set, is called before each restart of the job. An
	// error ends the job with it, wrapping the failure, instead of the
	// restart: in group mode, a newer owner claimed the task, and a
	// restart would open the sinks again, fencing the new owner's.
	BeforeRestart func() error
	// Board, if set, shows the job on a status server shared with other
	// jobs of the process (ServeBoard): the tasks of a group member, under
	// Task.Index. MetricsAddr is then normally "".
	Board *Board
	// Task, if set, runs one task of a job spread over processes
	// (runtime.Cluster): subtask Task.Index of every node, each of
	// parallelism Parallelism, with checkpoints holding that subtask only.
	// The graph has no Hashed edges: package runtime cut them into
	// exchanges.
	Task *TaskScope
}

// TaskScope is the task a job runs in group mode (Config.Task).
type TaskScope struct {
	Index int    // the task, 0 <= Index < Config.Parallelism
	Group string // runtime.Config.Group, for TaskInfo.Group
	// Exchanges: the graph has exchanges, whose read offsets in the
	// checkpoints are in the group's repartition topics, so a checkpoint
	// of another group is refused.
	Exchanges bool
	// Epoch and PriorEpochs are the task's epoch (its owner's claim, see
	// package tasklineage) and the older ones whose owners may still
	// run, for TaskInfo.Epoch and TaskInfo.PriorEpochs.
	Epoch       uint64
	PriorEpochs []uint64
}

// Events are the hooks of runtime.EventListener; nil ones are not called.
type Events struct {
	// Started runs when an attempt has started: its checkpoint restored,
	// its operators opened and its status server bound.
	Started             func(StartInfo)
	CheckpointCompleted func(CheckpointInfo)
	CheckpointFailed    func(id uint64, err error)
}

// StartInfo describes a started attempt.
type StartInfo struct {
	Attempt      int    // 0 for the first start, n for the n-th restart
	RestoredFrom uint64 // id of the restored checkpoint, 0 for a fresh start
	MetricsAddr  string // the status server's address, "" without one
}

// CheckpointInfo describes a completed checkpoint.
type CheckpointInfo struct {
	ID           uint64
	Final        bool
	Duration     time.Duration // from trigger to durable manifest
	MaxSyncPause time.Duration // longest synchronous part of a task
	BytesWritten int64         // bytes this checkpoint added to storage
	Files        int
}

// RestartStrategy is runtime.RestartStrategy with its defaults filled in.
type RestartStrategy struct {
	Attempts            int
	Backoff, MaxBackoff time.Duration
	ResetAfter          time.Duration
}

// next returns the backoff after d.
func (r *RestartStrategy) next(d time.Duration) time.Duration {
	if d > r.MaxBackoff/2 {
		return r.MaxBackoff
	}
	return 2 * d
}
