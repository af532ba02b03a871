// Package sources is the home of weir's sources, one package each:
// generator (a deterministic sequence), file (lines of files) and kafka.
//
// A source is a runtime.Source: it reads a bounded chunk of records per call
// and describes its position in a snapshot that the runtime stores in each
// checkpoint. Restored from a snapshot, a source continues exactly after
// that position, which is half of exactly-once; the sinks' two-phase commit
// is the other half.
//
// Every source here passes the connector conformance suite
// (weirtest/conformance): restored from a snapshot taken at any point and
// after any crash, it continues with exactly the records an uninterrupted
// read would have given. A source of your own can run the same suite.
package sources
