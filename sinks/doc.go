// Package sinks is the home of weir's sinks, one package each: file
// (exactly-once, two-phase), kafka (exactly-once with transactions, or
// at-least-once), postgres (exactly-once with prepared transactions, or
// with the epoch held in the checkpoint until it commits), stdout
// (at-least-once) and discard.
//
// A sink is a runtime.Sink: records written between two barriers form an
// epoch; at barrier n the sink pre-commits the epoch (durable, invisible)
// and returns what a restart needs to finish it; when checkpoint n is
// complete the runtime calls Commit(n) and the epoch becomes visible. After a
// crash the job restarts from the last complete checkpoint: the sink commits
// what that checkpoint promised and discards the rest, which the sources
// replay.
//
// Every exactly-once sink here passes the connector conformance suite
// (weirtest/conformance), which drives a sink as the runtime does with
// crashes between every step of this protocol; a sink of your own can run
// the same suite.
package sinks
