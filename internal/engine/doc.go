// Package engine runs weir jobs: tasks, channels and gates, the checkpoint
// coordinator, recovery, the restart loop, metrics and the status server.
// It is the machinery behind package runtime, which users see; runtime
// builds the job graph from its typed DSL and hands it over, and the engine
// never imports runtime.
//
// # The boundary
//
// A Graph holds Nodes (sources, operators, sinks) and the Edges between
// them, with record types erased: each node's Out is a StreamType (TypeOf
// instantiates the typed batches, writers and fan-outs for a record type),
// and its Build opens one subtask, returning a Subtask: an Instance (the
// type-independent lifecycle the task drives: Snapshot at barriers,
// NotifyComplete after a checkpoint, Watermark, ProcessingTime, Finish,
// Close; a source's Instance is also a Reader), In, the Collector[T] that
// feeds the subtask its records (a Flusher if it holds records back), and
// the optional Reports of a source or sink (lag, transactions, promise
// checks). Build gets an Env: the subtask's identity, its restored state,
// its keyed state backend, its output collector and the task's failure and
// watermark hooks. The adapters from the user's contracts (Source, Sink,
// Operator, KeyedOperator, timers, watermark strategies) to these live in
// runtime, so the engine knows no user type; Collector has the method set
// of runtime.Collector, so collectors pass between the two as they are.
// Run takes a Config that runtime derives from runtime.Config after filling
// in defaults and validating it.
//
// # Execution
//
// Each node runs as Parallelism subtasks. Nodes connected one to one with
// equal parallelism form a chain that one goroutine, a task, runs as plain
// function calls. Other edges cross goroutines: a task's writers batch
// records per receiving subtask and hand the batches to the receiver's gate
// under credit-based flow control (see channel.go), so that a slow operator
// slows its inputs down and memory stays bounded. Records of a Hashed edge
// are routed by key group (see package state), which is what makes state
// redistributable.
//
// In task mode (Config.Task, taskmode.go) the job is one task of a job
// spread over processes: only subtask Task.Index of every node runs, every
// node at parallelism Config.Parallelism (the task count), and its
// checkpoints hold that subtask only. Package runtime has cut the graph's
// Hashed edges into exchanges, which cross processes, so the task's
// subtasks connect among themselves only. A node with a parallelism of its
// own, a Hashed edge, and a checkpoint of another task or task count are
// refused.
//
// # Checkpoints
//
// The coordinator triggers checkpoint n every CheckpointInterval, at most
// one at a time. A restored job triggers its first one sooner: as soon as
// every source that reports its lag has read to the end of its input (lag
// 0), so that the output of the backlog that piled up while the job was
// down (or while a task of a group moved to another member) becomes visible
// without waiting for the interval. Source tasks snapshot their position and send barrier n
// downstream, in order with the records. A task with several input
// connections aligns the barrier: a connection that delivered it is held
// back until all have. Then every member of the task snapshots: sources
// their offsets, sinks pre-commit, keyed state freezes its epoch in
// constant time and is written to Pebble and checkpointed in the background
// (see package state). When every task has acknowledged, the coordinator
// asks the sinks that check promises whether they still can keep them,
// writes the checkpoint's manifest (see package chkstore), which completes
// it, and only then tells the sinks to commit; each sink subtask's
// successful commit is recorded next to the checkpoint (Env.RestoredCommitted
// on restore). A checkpoint that times out or that a task declines is
// aborted; what the sinks pre-committed for it is committed with the next
// one. A bounded input ends with a final checkpoint and a clean exit, and
// closing Config.Stop takes a final checkpoint before ending.
//
// A savepoint (savepoint.go) is a completed checkpoint that the coordinator
// copies into a savepoint location before telling the sinks to commit it:
// the final checkpoint of a stop with Config.SavepointDir, and the next
// checkpoint, triggered at once, when POST /api/savepoint asks. A job with
// Config.FromSavepoint and no checkpoint yet imports the savepoint into its
// checkpoint location first and then restores it like any checkpoint.
//
// # Failures
//
// An error of any subtask, returned or reported with Env.Fail, stops the
// whole job: the failed task acknowledges no further checkpoint, the other
// tasks are cancelled, and the job ends with the error. So does a panic of
// user code: the task recovers it at its goroutine's boundary, so that
// records pay nothing for it, and fails with an error wrapping ErrPanic
// that names the operator (found after the fact, see panic.go). Run
// restarts a failed job by Config.Restart, each attempt a new job resumed
// from the last complete checkpoint, except after errors no restart can fix
// (an unusable or locked checkpoint directory, a corrupt or incompatible
// checkpoint, ErrUnrecoverable).
//
// # Observability
//
// With Config.MetricsAddr a job serves Prometheus metrics at /metrics,
// /healthz, /readyz (unready when checkpoints stop completing) and a status
// page at / backed by /api/status (Status). Tasks count records in plain
// fields and publish them once per batch; the metrics are read at scrape
// time, so the hot path makes no atomic operation or map lookup per record.
// Under Run the server outlives the attempts and serves the latest one.
// A member of a job spread over processes runs each task as a job without
// a server of its own, on a Board that one server shows (ServeBoard): the
// metrics of every task, each labelled with its task.
package engine
