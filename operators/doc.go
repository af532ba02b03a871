// Package operators is weir's library of stream transformations: Map,
// Filter, FlatMap and Union on any stream; KeyBy to partition a stream by
// key; and Reduce, Aggregate and Process on keyed streams, whose state lives
// in package state and is checkpointed with the job.
//
// Each function takes a stream and returns a new one; nothing runs until the
// pipeline is handed to runtime.Run or runtime.Main. Operators without state
// get generated names; stateful operators take a name, which must be unique
// in the pipeline and stable across versions of the job, because their state
// is found by it after a restart.
//
// Operators with equal parallelism connected one to one run in the same
// goroutine as plain function calls (chaining); KeyBy, Union and changes of
// parallelism move records between goroutines in batches.
//
// # Event time
//
// Window groups a keyed stream into Tumbling, Sliding or Session windows of
// event time, evaluated by WindowAggregate, WindowReduce, WindowTopN or WindowProcess;
// each returns the results and a stream of the records too late for any
// window. PreAggregate folds records into per-pane accumulators before the
// partition by key (local-global aggregation), for aggregates over hot or
// few keys.
//
// Updating (unwindowed) operators emit upsert streams, in which a key's
// last record is its current value: TopNPerKey ranks each key's best
// records, KeepLast keeps each key's latest (Dedup keeps the first).
// LookupJoin joins a stream with a bounded table loaded when the job
// starts (a side input). WindowJoin and IntervalJoin join two streams; Dedup drops repeated
// ids. All are keyed operators whose state and event-time or processing-time
// timers are checkpointed, so their output is exactly-once across crashes,
// including what timers pending at a crash emit after recovery. Tumbling and
// sliding windows, which are the same for every key, need no timers: their
// state is organized by window (state.Namespaced), and a watermark fires a
// window for all its keys at once and drops it in one step.
//
// The runtime has one-input operators only. A join therefore tags the
// records of its inputs as Either, merges the tagged streams
// (runtime.Merge, whose watermark is the minimum of its inputs'), keys the
// union by the join key and runs one keyed operator with timers on it: the
// runtime needs no change for two-input operators.
package operators
