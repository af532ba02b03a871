// Package discard is a sink that drops every record, for benchmarks and for
// pipelines whose effect is their state.
//
//	var dropped discard.Counter
//	newSink, err := discard.NewSink(discard.SinkConfig[string]{Counter: &dropped})
//	if err != nil { … }
//	runtime.To(lines, "discard", newSink)
//
// It has no source. There is no output to be exactly-once about; the Counter
// counts what the sinks dropped (at pre-commits and Close), so after a crash
// it includes the records the restarted job replays.
package discard
