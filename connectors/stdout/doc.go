// Package stdout is a sink that prints records as lines, to os.Stdout by
// default or to any io.Writer. It has no source: a job reads files with
// package connectors/file.
//
// A user function formats each record: SinkConfig.Format appends exactly one
// line, terminator included, and the sink writes those bytes and nothing
// else. StringLine is the Format for string records and Lines() the matching
// SinkConfig:
//
//	print, err := stdout.NewSink(stdout.Lines())
//	if err != nil { … }
//	runtime.To(lines, "print", print)
//
// Each subtask buffers its output and writes it when the buffer is full, at
// PreCommit and at Close. Writes contain whole lines only and the instances
// of one NewSink (and all sinks printing to os.Stdout) write under one lock,
// so parallel subtasks interleave lines, never parts of lines.
//
// The sink is at-least-once. A terminal cannot hide output until a
// checkpoint completes, so PreCommit only flushes and Commit does nothing.
// After a crash the runtime replays the records since the last complete
// checkpoint, and those already printed are printed again. For exactly-once
// output use connectors/file.
package stdout
