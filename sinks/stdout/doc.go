// Package stdout is a sink that prints records as lines, to os.Stdout by
// default or to any io.Writer.
//
// A user function formats each record: Config.Format appends exactly one
// line, terminator included, and the sink writes those bytes and nothing
// else. StringLine is the Format for string records and Lines() the matching
// Config:
//
//	print, err := stdout.Factory(stdout.Lines())
//	// print is the per-subtask factory: func() runtime.Sink[string]
//
// Each subtask buffers its output and writes it when the buffer is full, at
// PreCommit and at Close. Writes contain whole lines only and the instances
// of one Factory (and all sinks printing to os.Stdout) write under one lock,
// so parallel subtasks interleave lines, never parts of lines.
//
// The sink is at-least-once. A terminal cannot hide output until a
// checkpoint completes, so PreCommit only flushes and Commit does nothing.
// After a crash the runtime replays the records since the last complete
// checkpoint, and those already printed are printed again. For exactly-once
// output use sinks/file.
package stdout
