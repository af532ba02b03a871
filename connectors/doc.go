// Package connectors is the home of weir's connectors, one package per
// external system, each with both directions where the system has them:
//
//   - kafka: a source that reads topics with exactly-once positions and a
//     sink that writes a topic exactly once with transactions (or at least
//     once), with the TLS and SASL configuration both share;
//   - file: a source of the lines of files and an exactly-once sink of
//     lines into a directory;
//   - postgres: an exactly-once sink into PostgreSQL;
//   - generator: a deterministic source, for tests and benchmarks;
//   - stdout: an at-least-once sink that prints lines;
//   - discard: a sink that drops everything.
//
// Every connector has one shape. NewSource(SourceConfig[T]) returns a
// runtime.SourceFactory[T] for runtime.From and NewSink(SinkConfig[T]) a
// runtime.SinkFactory[T] for runtime.To; both fill in defaults and validate
// the configuration first, so a bad configuration is an error when the
// pipeline is built, not when the job starts. A job that reads and writes
// Kafka imports one package:
//
//	newSource, err := kafka.NewSource(kafka.SourceConfig[Order]{ … })
//	…
//	newSink, err := kafka.NewSink(kafka.SinkConfig[Total]{ … })
//	…
//	runtime.To(totals(runtime.From(p, "orders", newSource)), "totals", newSink)
//
// A source is a runtime.Source: it reads a bounded chunk of records per
// call and describes its position in a snapshot that the runtime stores in
// each checkpoint. Restored from a snapshot, a source continues exactly
// after that position. A sink is a runtime.Sink: records written between two
// barriers form an epoch; at barrier n the sink pre-commits the epoch
// (durable, invisible) and returns what a restart needs to finish it; when
// checkpoint n is complete the runtime calls Commit(n) and the epoch becomes
// visible. After a crash the job restarts from the last complete
// checkpoint: the sinks commit what that checkpoint promised and discard the
// rest, which the sources replay. Together that is exactly-once output.
//
// Every source and every exactly-once sink here passes the connector
// conformance suite (weirtest/conformance), which drives a connector as the
// runtime does, with crashes between every step of the protocol; a
// connector of your own can run the same suite.
package connectors
