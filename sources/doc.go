// Package sources is the home of weir's sources, one package each:
// generator (a deterministic sequence), file (lines of files) and kafka.
//
// A source is a runtime.Source: it reads a bounded chunk of records per call
// and describes its position in a snapshot that the runtime stores in each
// checkpoint. Restored from a snapshot, a source continues exactly after
// that position, which is half of exactly-once; the sinks' two-phase commit
// is the other half.
package sources
