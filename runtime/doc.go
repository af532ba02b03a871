// Package runtime builds and runs weir jobs: the typed DSL on which package
// operators is built (Pipeline, Stream, KeyedStream, From, To, Apply,
// ApplyKeyed, Merge), the execution engine, the checkpoint coordinator and
// Main, which turns a pipeline into a job binary.
//
// # Building
//
// A pipeline is a graph of named operators built first and run later.
// Sources (From) produce a Stream[T]; every transformation takes a stream and
// returns a new one; sinks (To) end a branch. Errors found while building
// (a duplicate name, a key type without a codec) are kept and returned by
// Run, Start and Main before anything starts.
//
// # Execution
//
// Each operator runs as Parallelism subtasks. Operators connected one to one
// with equal parallelism form a chain that one goroutine, a task, runs as
// plain function calls. Other edges cross goroutines: a task's writers batch
// records per receiving subtask and hand the batches to the receiver's gate
// under credit-based flow control (see channel.go), so that a slow operator
// slows its inputs down and memory stays bounded. Records of a keyed stream
// are routed by key group (see package state), which is what makes state
// redistributable.
//
// # Checkpoints
//
// The coordinator triggers checkpoint n every CheckpointInterval, at most one
// at a time. Source tasks snapshot their position and send barrier n
// downstream, in order with the records. A task with several input
// connections aligns the barrier: a connection that delivered it is held back
// until all have. Then every operator of the task snapshots: sources their
// offsets, sinks pre-commit, keyed state freezes its epoch in constant time
// and is written to Pebble and checkpointed in the background (see package
// state). When every task has acknowledged, the coordinator writes the
// checkpoint's manifest (see package checkpoint), which completes it, and
// only then tells the sinks to commit; each sink subtask's successful commit
// is recorded next to the checkpoint (TaskInfo.RestoredCommitted). A
// checkpoint that times out or that a task declines is aborted; what the
// sinks pre-committed for it is committed with the next one. A sink whose
// pre-committed data could expire before its commit declines the checkpoint
// just before the manifest (PromiseChecker) and fails the job, which
// restarts from the last complete checkpoint.
//
// On start, Run restores the newest complete checkpoint of the checkpoint
// directory after verifying it; a bounded input ends with a final
// checkpoint and a clean exit, and Job.Stop (SIGINT/SIGTERM under Main) takes
// a final checkpoint before ending.
//
// # Failures
//
// An error of any operator subtask, returned or reported with Fail, stops
// the whole job: the failed task acknowledges no further checkpoint, so no
// checkpoint covers what it did after the error; the other tasks are
// cancelled, and Run returns the error. So does a panic of user code (an
// operator's function, a source, a sink, a codec, a timer handler): the task
// recovers it at its goroutine's boundary, so that records pay nothing for
// it, and fails with an error wrapping ErrPanic that names the operator, the
// subtask and the panic value.
//
// Run and Main restart a failed job in the process by Config.Restart (the
// --restart-* flags), like Flink's exponential-delay restart strategy: each
// attempt is a new Job that resumes from the last complete checkpoint, after
// a backoff that doubles with each restart in a row; a panic is restarted
// too, and a record that fails deterministically fails every attempt until
// they run out. Errors no restart can fix end the job at once: invalid
// configuration or pipeline, an unusable or locked checkpoint directory, a
// corrupt or incompatible checkpoint, and errors wrapping ErrUnrecoverable
// (see RestartStrategy). The zero Config.Restart never restarts, and Start
// always runs a single attempt. Main exits with status 1 after a failure it
// does not restart and 2 only for an invalid configuration or pipeline, or
// an unusable checkpoint directory; a signal during a backoff exits with 0.
//
// # Observability
//
// With Config.MetricsAddr (the --metrics-addr flag) a job serves Prometheus
// metrics at /metrics, /healthz, /readyz (unready when checkpoints stop
// completing) and a status page at / backed by /api/status, the JSON of
// Job.Status. Tasks count records in plain fields and publish them once per
// batch; the metrics are read at scrape time, so the hot path makes no
// atomic operation or map lookup per record. Sources and sinks may report
// more through LagReporter and TransactionReporter. Under a restart loop
// the server outlives the attempts and serves the latest one. It serves
// HTTPS with Config.MetricsTLSCertFile and requires Config.MetricsAuth (a
// bearer token or basic auth) on all but /healthz and /readyz when set;
// bound beyond loopback without auth, it warns at start and refuses any
// request that could change state.
//
// # Event time
//
// A source given WithWatermarks assigns event times and emits watermarks,
// which flow with the records; operators with several inputs forward the
// minimum, idle inputs excepted. Keyed operators that implement TimerHandler
// get event-time and processing-time timers, stored as keyed state. The
// watermark of every task is part of each checkpoint.
package runtime
