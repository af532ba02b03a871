// Package generator is a deterministic source: record n of the stream is a
// pure function of n (SourceConfig.Record), so the position of a subtask is
// simply its next sequence number and a restored source replays exactly.
//
//	newSource, err := generator.NewSource(generator.SourceConfig[uint64]{
//		Record: func(seq uint64) uint64 { return seq },
//		Count:  1000,
//	})
//	if err != nil { … }
//	nums := runtime.From(p, "numbers", newSource)
//
// The generator has no sink: it only produces. Subtask s of p emits the
// sequence numbers s, s+p, s+2p, …; restored from a checkpoint, it continues
// after the last number the checkpoint covers, so its part of the guarantee
// (every record exactly once in the state and the committed output) holds
// across any number of crashes. It passes the connector conformance suite
// (weirtest/conformance).
//
// The parallelism may change on a restore (runtime.Rescalable): the
// sequence numbers the old subtasks had still to emit, as arithmetic
// progressions (one per old subtask at first), are cut into finer
// interleaved ones when there are fewer than new subtasks, and dealt out
// among the new subtasks, so every record is still emitted once. A subtask
// with several progressions emits them in sequence order. Sequence itself
// keeps one progression: a source built on it (the Nexmark generator)
// cannot be rescaled.
//
// Sequence is the position-keeping part on its own, for sources of other
// shapes (the Nexmark generator uses it).
package generator
