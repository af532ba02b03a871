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
package operators
