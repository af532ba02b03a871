// Package nexmark is the framework-independent half of weir's Nexmark
// benchmark harness: the data model, a deterministic replayable event
// generator, and plain single-threaded reference implementations of queries
// q0–q5, q7 and q8 whose output a streaming job's output is compared against.
//
// # Generator
//
// The generator follows the Apache Beam / nexmark-flink generator: events come
// in the fixed proportion person:auction:bid = 1:3:46 per block of 50 event
// ids, person and auction ids are derived from the event id (the first person
// and the first auction both have id 1000), auctions are mostly sold by "hot"
// sellers and bids mostly go to "hot" auctions from "hot" bidders with the
// reference's ratios (Config.HotSellersRatio etc., batch size 100), and event
// n has the event time
//
//	BaseTime + a*1000/FirstEventRate   (ms, integer division)
//
// where a is n itself, or n shuffled inside its group of OutOfOrderGroupSize
// events exactly as the reference's "adjusted event number". With the default
// group size 1 timestamps are non-decreasing in n.
//
// Unlike the references, randomness does not come from a shared random
// generator: event n is produced by a small PRNG seeded from (Config.Seed, event
// id), so [Generator.EventAt] is a pure function of (config, n). A source can
// therefore use the event number as its offset: checkpoint n, and after a
// restore call [Generator.SetOffset](n) to replay exactly the same events. Strings
// are slices of pools built once per process from a fixed seed, so the hot path
// neither formats nor allocates. Values are not bit-identical to the Java
// generators (different PRNG); distributions and id relationships are.
//
// # Reference queries and their semantics
//
// Each QnReference consumes a finite event sequence and returns its complete
// output. The streaming engine's output is compared to it as a multiset of
// canonical lines (each result type has a String method). Rules shared by all
// queries:
//
//   - Time is event time: the DateTime field of the person, auction or bid, in
//     milliseconds.
//   - Windows are aligned to time 0. A tumbling window of size S containing time
//     t is [floor(t/S)*S, floor(t/S)*S+S); a sliding window of size S and slide P
//     has starts at multiples of P and contains t iff start <= t < start+S.
//     Only windows that received at least one relevant event exist.
//   - No event is ever late: every event counts towards its windows regardless
//     of its position in the input. A streaming job reproduces this if its
//     watermark never passes an event that is still to come (bounded
//     out-of-orderness at least the generator's). A window fires when the
//     watermark passes its end; at end of input every window fires.
//   - Results are returned in a deterministic order (window end, then a
//     per-query key), which the comparison does not rely on.
//
// Per-query decisions are documented on each QnReference function.
package nexmark
