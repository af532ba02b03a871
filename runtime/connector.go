package runtime

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// ErrEndOfInput is returned by Source.Read when a bounded source has emitted
// its last record. The runtime then takes a final checkpoint, lets every sink
// commit, and ends the job cleanly.
var ErrEndOfInput = errors.New("weir: end of input")

// Collector receives the records an operator or source emits. Collect must not
// retain the record's memory beyond the call unless the record type is a value.
type Collector[T any] interface {
	Collect(T)
}

// CollectorFunc adapts a function to a Collector.
type CollectorFunc[T any] func(T)

// Collect calls f(rec).
func (f CollectorFunc[T]) Collect(rec T) { f(rec) }

// TaskInfo tells a source, operator or sink which parallel instance (subtask)
// it is.
type TaskInfo struct {
	Job         string // job name given to NewPipeline
	Operator    string // user-visible operator name
	Subtask     int    // index of this instance, 0 <= Subtask < Parallelism
	Parallelism int    // number of instances of the operator
	// Group is Config.Group of a job spread over processes, "" otherwise.
	// Subtask is then the task's index and Parallelism the number of
	// tasks: a source of partitioned input reads partition Subtask of
	// each topic (the topics are co-partitioned, Parallelism partitions
	// each), and a sink names what it commits after the group and the
	// task, unique across processes.
	Group string
	// Epoch, in a job spread over processes, numbers the task's owners:
	// each member that takes the task over runs it in the next epoch. It
	// is 0 otherwise. PriorEpochs are the task's older epochs whose owners
	// may still run (expelled but not yet told, or paused past the session
	// timeout). A sink whose commits are fenced by an id, as a Kafka
	// transactional id is, names its ids after the epoch, so that an older
	// owner still running cannot fence this one's (it would abort
	// transactions of completed checkpoints), and fences the ids of the
	// prior epochs when it opens, so that what their owners left open
	// is aborted.
	Epoch       uint64
	PriorEpochs []uint64
	Logger      *slog.Logger
	// RestoredCommitted is set for a sink subtask whose Commit of the
	// checkpoint being restored had returned before the job stopped (the
	// runtime records each successful Commit next to its checkpoint, see
	// package checkpoint): what the restored state promises is visible
	// already, and Open need not commit it again. A sink should not try: a
	// Kafka broker, for one, forgets a transactional id left idle for
	// transactional.id.expiration.ms (7 days), and then cannot say whether
	// its last transaction was committed.
	RestoredCommitted bool
	// CheckpointInterval is the job's time between checkpoints
	// (Config.CheckpointInterval, after defaults). Checkpoints cannot be
	// disabled, so in a running job it is always positive; a sink that
	// must keep data pre-committed until the next checkpoint completes (a
	// Kafka transaction, for one) derives its timeouts from it. It is zero
	// only in a TaskInfo built by hand (in a test, say), which a sink
	// should read as "unknown" and fall back to its own default.
	CheckpointInterval time.Duration
}

// SourceFactory makes the Source of one subtask. The runtime calls it once
// per subtask at every start of the job (the first and each restart), just
// before Open. An error fails that start with the operator named, through the
// job's normal failure path (and its restart strategy), like an error from
// Open. Connectors return a SourceFactory from a constructor that validates
// their configuration up front, so a factory error means something that can
// change between starts, not a bad configuration.
//
// The subtasks of a job open at the same time (as the tasks of a group
// member do), so the runtime may call a factory, and Open on what it made,
// from several goroutines at once, one a subtask: a factory that shares
// anything between its sources must guard it. So are SinkFactory and the
// operator factories of Apply and ApplyKeyed called.
type SourceFactory[T any] func() (Source[T], error)

// SinkFactory makes the Sink of one subtask. The runtime calls it once per
// subtask at every start of the job (the first and each restart), just
// before Open. An error fails that start with the operator named, through the
// job's normal failure path (and its restart strategy), like an error from
// Open. It may be called concurrently for different subtasks (see
// SourceFactory).
type SinkFactory[T any] func() (Sink[T], error)

// Source produces the records of a stream. The runtime creates one Source per
// subtask through the factory given to From and calls it from one goroutine:
//
//	Open(restored) → Read … Read [Snapshot at each barrier, between Reads] … → Close
//
// restored is what Snapshot returned for the same subtask in the checkpoint
// being restored, or nil on a fresh start; the source must resume exactly
// after the position it describes. Read emits a bounded chunk of records
// (typically up to a few thousand) and returns so that the runtime can inject
// barriers; a source with nothing to read should wait briefly (at most about
// 100 ms) and return with nothing emitted. Read returns ErrEndOfInput when a
// bounded source is exhausted; it is not called again after that.
type Source[T any] interface {
	Open(ctx context.Context, info TaskInfo, restored []byte) error
	Read(ctx context.Context, out Collector[T]) error
	Snapshot() ([]byte, error)
	Close() error
}

// CheckpointListener is an optional interface of a Source that must learn
// when a checkpoint is complete: a source whose broker redelivers what is
// not acknowledged (acknowledge what checkpoint n covers), or one that
// reports its progress elsewhere (commit Kafka offsets to a consumer group
// for monitoring). CheckpointComplete(n) runs on the source's goroutine,
// between Reads, after Snapshot(n) and once checkpoint n is durable:
//
//	… Snapshot(n) → Read … → CheckpointComplete(n) → Read …
//
// It is not called for a checkpoint that fails, may be skipped for one
// that a later complete checkpoint subsumes (CheckpointComplete(n+1) then
// covers n), and is not called again for the restored checkpoint after a
// restart: what it does must be idempotent and covered by the state, never
// needed for correctness of the job's own output. An error fails the job.
type CheckpointListener interface {
	CheckpointComplete(ctx context.Context, checkpointID uint64) error
}

// Sink consumes the records of a stream, committing them in two phases so that
// output is exactly-once across crashes. The runtime creates one Sink per
// subtask and calls it from one goroutine:
//
//	Open(restored) → Write … Write → PreCommit(n) → Write … → Commit(n) … → Close
//
// PreCommit(n) runs when barrier n reaches the sink: everything written so far
// must become durable but not yet visible, and the returned state must let a
// later Open finish the job. Commit(n) runs once checkpoint n is complete
// (durable) and must make visible everything pre-committed at or before n;
// Commit may run again for the same data after a crash, so it must be
// idempotent. Checkpoints can fail, so PreCommit(n+1) may arrive without
// Commit(n); the next Commit covers both.
//
// Open receives the state returned by PreCommit in the checkpoint being
// restored (nil on a fresh start). That checkpoint is complete, so Open must
// commit what the state promises (unless TaskInfo.RestoredCommitted says
// that its Commit returned already) and discard anything written after it.
//
// NewTwoPhaseSink builds a Sink from a smaller TwoPhaseWriter and keeps the
// pre-committed data's bookkeeping for it.
//
// Sinks that cannot hide uncommitted data (stdout, for example) make PreCommit
// a flush and Commit a no-op; they are at-least-once and must say so.
type Sink[T any] interface {
	Open(ctx context.Context, info TaskInfo, restored []byte) error
	Write(ctx context.Context, rec T) error
	PreCommit(ctx context.Context, checkpointID uint64) ([]byte, error)
	Commit(ctx context.Context, checkpointID uint64) error
	Close() error
}

// EndOfInputHandler is an optional interface of a Sink that holds data
// back across checkpoints (a file sink rolling files, say) and must let go
// of it when a bounded input ends. EndOfInput runs once, on the sink's
// goroutine, after the last Write and before the PreCommit of the final
// checkpoint, which must then cover everything written:
//
//	… Write → EndOfInput → PreCommit(final) → Commit(final) → Close
//
// A job stopped with a final checkpoint (Config.Stop) does not call it:
// its input has not ended, and a restart continues from that checkpoint.
type EndOfInputHandler interface {
	EndOfInput()
}

// PromiseChecker is an optional interface of a Sink whose pre-committed data
// can expire before Commit: a Kafka transaction, for example, is aborted by
// the broker once it has been open for the transaction timeout. A checkpoint
// must never promise what may already be gone, so once every task has
// acknowledged checkpoint n the coordinator calls CheckPromise(n) on every
// subtask of such a sink immediately before it writes n's manifest, the last
// moment it can still back out (a process paused between PreCommit and the
// manifest is what this catches).
//
// An error declines checkpoint n: it is aborted, and the previous complete
// checkpoint remains the one a restart restores. A sink that declines because
// data it pre-committed may be lost must also fail its next Write and
// PreCommit, so that the job fails and restarts from that checkpoint and the
// input is replayed. CheckPromise runs on the coordinator's goroutine,
// concurrently with the sink's other methods, so it must be safe for
// concurrent use, and quick.
type PromiseChecker interface {
	CheckPromise(checkpointID uint64) error
}
