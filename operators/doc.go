// Package operators is weir's library of stream transformations: Map,
// Filter and FlatMap on any stream (runtime.Merge joins streams of one
// type); KeyBy to partition a stream by
// key; and Reduce, Aggregate and Process on keyed streams, whose state lives
// in package state and is checkpointed with the job.
//
// Each function takes a stream and returns a new one; nothing runs until the
// pipeline is handed to runtime.Run or runtime.Main. Operators without state
// get generated names; stateful operators take a name, which must be unique
// in the pipeline and stable across versions of the job, because their state
// is found by it after a restart.
//
// # Process functions and side outputs
//
// Process and ProcessWithTimers run user functions in two steps, as
// Flink's open and processElement: a setup, once per subtask, creates the
// state handles on its SetupContext's Scope and returns the function
// called per record. That function gets a per-call Context: the record's
// key, the clocks and the side outputs; ProcessWithTimers' functions get a
// TimerContext, which adds Timers (Process has none, a compile-time
// matter). WindowProcess's functions get a WindowContext, which adds the
// window. Side outputs are typed: an OutputTag[T] is declared on an
// operator (WithSideOutputs), a function emits with tag.Emit(ctx, v), and
// SideOutput(main, tag) returns the tag's stream; the late stream of a
// window is such a side output.
//
// Operators with equal parallelism connected one to one run in the same
// goroutine as plain function calls (chaining); KeyBy, runtime.Merge and changes of
// parallelism move records between goroutines in batches.
//
// # Event time
//
// The event-time operators (windows, WindowJoin, IntervalJoin, Dedup with
// DedupEventTime) read the timestamp each record carries
// (runtime.OperatorContext.Timestamp), given where event time is assigned:
// runtime.AssignTimestamps on any stream, or a source's
// runtime.WithWatermarks. Applied to a stream without event time, they
// fail the pipeline with ErrNoEventTime. What they emit carries a
// timestamp too: a window's results its End-1 (as Flink's), so windows
// cascade; a window join's its window's End-1; an interval join's the
// later of its two records'.
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
// records, KeepLast keeps each key's latest (Dedup keeps the first), at
// every change or, with KeepLastAtCheckpoints, once per checkpoint.
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
// records of its inputs with one type (a left or a right record), merges
// the tagged streams (runtime.Merge, whose watermark is the minimum of its
// inputs'), keys the union by the join key and runs one keyed operator with
// timers on it: the runtime needs no change for two-input operators.
package operators
