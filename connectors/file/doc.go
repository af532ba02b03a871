// Package file reads and writes lines of local files: a source that
// streams the lines of one or more files (bounded, or watching a directory
// for new files), and an exactly-once sink that writes records as lines to
// files in a directory, committing them in two phases in step with weir's
// checkpoints.
//
// # The guarantee
//
// The source keeps its position (file, byte offset) in each checkpoint and
// resumes exactly after it, refusing input that changed since the job first
// started; the sink makes the records of an epoch visible only when the
// checkpoint that covers them is complete. A job reading and writing files
// therefore commits every input line's effect exactly once across crashes,
// and `cat DIR/*` reads only committed output. Both pass the connector
// conformance suite (weirtest/conformance).
//
// # The source: building
//
// NewSource expands SourceConfig.Paths, which may be plain paths or
// filepath.Match glob patterns, into one sorted, deduplicated list of files,
// once, when the pipeline is built. A pattern that matches nothing or a
// file that cannot be opened is an error that names it, so a typo fails at
// construction rather than producing an empty job. As in the shell, a
// wildcard does not match a leading dot in the last path element, so "out/*"
// reads the committed output of the file sink and skips its ".weir" staging
// directory. For example:
//
//	newSource, err := file.NewSource(file.SourceConfig{Paths: []string{"logs/*.log"}})
//	if err != nil { … }
//	lines := runtime.From(p, "lines", newSource)
//
// # The source: partitioning
//
// Each subtask runs its own source. File i of the sorted list belongs to
// subtask i % parallelism, and a subtask reads its files one after the other
// in list order (with SourceConfig.Timestamp, together: see event time). The assignment depends only on the list and the
// parallelism, so a restored job reads the same files in the same subtasks.
// A subtask with no files ends at once with runtime.ErrEndOfInput.
//
// # The source: event time
//
// A stream's watermark follows the largest timestamp its source subtask
// emitted (runtime.WatermarkStrategy). Read one after the other, two files
// with overlapping time ranges would make the second file's early lines
// late, and an event-time window downstream would drop them. Set
// SourceConfig.Timestamp and a subtask reads all its files together
// instead, a k-way merge that always emits the earliest pending line (ties
// to the file first in the list), at that time: the source's
// runtime.WatermarkStrategy may leave its own Timestamp function unset. A
// line is then late only if it is late within its own file, as with
// Flink's per-split watermarks, and windows downstream hold little state
// because the merged stream is nearly in time order. The cost: every
// unfinished file of a subtask is open at once, each with its own buffer
// (SourceConfig.BufferSize, 64 KiB by default in this mode). Without event
// time, leave Timestamp unset: reading in sequence needs one open file.
// With a parallelism of at least the number of files, every subtask reads
// at most one file and either way is right.
//
// # The source: records
//
// Every line becomes one string record without its trailing "\n" or "\r\n". A
// final line without a newline is still a record; an empty file has none; a
// lone "\r" not followed by "\n" is kept as data. Lines of any length are
// supported: the source reads through a large bufio.Reader and copies only
// lines that do not fit in it. Each Read emits at most MaxLinesPerRead lines
// (4096 by default) so that barriers are injected promptly; after the last
// line of the last file the next Read returns runtime.ErrEndOfInput.
//
// # The source: checkpoints
//
// The position of a subtask is (file index, byte offset of the next unread
// line), or with Timestamp the byte offset of the next line not emitted of
// each of its files. Snapshot encodes it with a version byte, the parallelism, the number
// of files, and a fingerprint of each of the subtask's files taken when the
// job first started: size, modification time and a CRC-32C of its first and
// last 64 KiB. Open with that snapshot checks every fingerprint, reopens the
// current file, seeks to the offset and continues, so every line is emitted
// exactly once across a restore. If the file list changed, or any of the
// subtask's files (read, being read or not opened yet) no longer matches its
// fingerprint, Open fails with ErrSnapshotMismatch naming the file and the
// change, instead of silently reading other data: the input files of a job
// must not change while it can still be restored. A file that
// changes while the job runs, before the job reaches it, fails the job the
// same way when it is opened. (Touching a file counts as a change; the
// fingerprint reads only the ends of a file, so that the job's first start
// does not read its input twice.) Timestamp may be set or unset between
// restarts: the merge resumes from the sequential position, and a
// sequential source reads each file of a merge on from its offset, one
// after the other.
//
// # The source: rescaling
//
// The source implements runtime.Rescalable, so a job may be restored with
// another parallelism. The states of the old subtasks together hold the
// fingerprint of every file and the offset of its next unread line; each
// new subtask takes those of the files it owns at the new parallelism
// (file i to subtask i % parallelism) and reads each on from its offset,
// so no line is lost or repeated. Several of a new subtask's files may then
// be part read, and its checkpoints keep an offset per file until they are
// read. The file list must be the one the job started with, as on any
// restore. A checkpoint written by a version of weir that kept no
// fingerprints of finished files (snapshot version 1) cannot be rescaled.
//
// # The source: watching a directory
//
// With SourceConfig.MonitorInterval the source is unbounded, as Flink's
// FileSource in continuous mode: every MonitorInterval each subtask expands
// Paths again and reads the files it has not seen, each once, in the order
// found (sorted by path within one scan). Files present at the start are
// read too. A file belongs to the subtask hash(path) % parallelism, since
// the list keeps growing. After a change of parallelism each new subtask
// takes, of the files the old subtasks found, those it owns now: the paths
// read to the end, not to read again, and the files queued, each with its
// fingerprint and offset; it finds the rest in its scans. A file is known
// by its path, and its content is what it held when it was found:
//
//   - a file that grows after it was found is read only up to the size it
//     had then; the lines appended later are never read. A producer should
//     write a file under a name the pattern does not match (a leading dot
//     is enough for a wildcard) and rename it into place when complete;
//   - a file renamed to a new path that the pattern matches is a new file
//     and is read again; renamed away, it is not followed;
//   - a file that shrinks before it is read to the end (truncated or
//     replaced) fails the job with ErrSnapshotMismatch.
//
// Each checkpoint keeps every path the subtask has read, its queue of
// files found and not finished (with their fingerprints and offsets), so a
// restore emits every line exactly once and reads no file
// twice. The set of paths read grows with the directory: remove or move
// away files that were read, or start the job afresh, when it gets large
// (Flink's continuous enumerator keeps its processed paths the same way).
// Watching cannot be combined with Timestamp: a file found later may hold
// lines older than the watermark.
//
// # The sink: records
//
// A user function formats each record: SinkConfig.Format appends exactly one
// line, terminator included, to a byte slice, and the sink writes those bytes
// and nothing else. StringLine is the Format for string records (rec + "\n")
// and LinesTo(dir) the matching SinkConfig:
//
//	newSink, err := file.NewSink(file.LinesTo("out"))
//	if err != nil { … }
//	runtime.To(counts, "output", newSink)
//
// # The sink: layout
//
// Readers see only committed data. Every file in Dir whose name does not
// start with a dot is committed and final:
//
//	DIR/<prefix>-<subtask:03d>-<checkpoint:010d>   committed output of one epoch
//	DIR/.weir/<subtask>/inprogress-<random>        records of the current epoch
//	DIR/.weir/<subtask>/pending-<checkpoint>       pre-committed, not yet committed
//
// so `cat DIR/*` (the glob skips dot-entries) reads exactly the committed
// output, each subtask's epochs in checkpoint order. NB: Go's filepath.Glob
// does match dot-entries; programs listing DIR must skip names starting with
// a dot themselves (the file source does so for wildcards). Each subtask only ever
// touches its own staging directory and its own visible names.
//
// # The sink: protocol
//
// Write appends the formatted record to the epoch's in-progress file through
// a 256 KiB buffer; the file is created by the epoch's first record, so an
// epoch without records leaves nothing behind.
//
// PreCommit(n) flushes, fsyncs and closes the in-progress file, renames it to
// pending-<n> and fsyncs the staging directory. It returns the state: every
// pending file not yet committed, including those of earlier checkpoints that
// never completed, each with its checkpoint id, final name and size.
//
// Commit(n) renames every pending file with a checkpoint ≤ n to its final
// name and fsyncs DIR. It is idempotent: a pending file that is gone while
// its final file exists with the recorded size was committed already. If
// both are missing the data is lost, and Commit fails with ErrDataLoss
// rather than continue with incomplete output. It never overwrites a visible
// file: a different file in the way is ErrConflict.
//
// Open(restored) recovers after a crash or a restart. The restored
// checkpoint is complete, so Open (a) commits every pending file the state
// lists, with the same idempotency rules, and (b) deletes everything else in
// the subtask's staging directory: in-progress files and pending files of
// checkpoints that never completed, whose records the runtime replays. On a
// fresh start (restored == nil) it cleans the staging directory too. Open
// never removes or changes a visible file.
//
// Close deletes the in-progress file (its records were never pre-committed)
// and keeps pending files for the next Open.
//
// The sink is a runtime.TwoPhaseWriter: runtime.NewTwoPhaseSink keeps the
// pending files in the checkpoint, commits those of a failed checkpoint with
// the next, and those of the restored checkpoint at Open (unless
// runtime.TaskInfo.RestoredCommitted); the sink itself knows only files,
// and describes each pending one (staged and final names, size) for weir
// checkpoints inspect. States written before that change are still
// restored (and described: DescribeLegacySinkState).
//
// Because the final name is derived from the checkpoint id, a job must not
// reuse a Dir and Prefix of an earlier job. A fresh start (no restored
// checkpoint) refuses, at Open and before any record is processed, an
// output directory that already holds files named <prefix>-*: every
// subtask opens before the first checkpoint can complete, so they are
// another run's. Committing over an existing file fails with ErrConflict
// too, instead of overwriting it.
//
// # The sink: rolling
//
// By default a file holds one subtask's records of one checkpoint epoch,
// visible when that checkpoint completes. SinkConfig.MaxFileSize and
// MaxFileAge make files span checkpoints instead, as Flink's rolling
// policy: the in-progress file (.weir/<subtask>/inprogress-<random>) is
// rolled (renamed to sealed-<random>) when the next record would take it
// past MaxFileSize, at the first checkpoint after it is MaxFileAge old
// (DefaultMaxFileAge, one minute, if only MaxFileSize is set), and at the
// end of a bounded input (runtime.EndOfInputHandler). Files rolled during
// epoch n are committed when checkpoint n completes, named
// <prefix>-<subtask>-<n>, then <prefix>-<subtask>-<n>-001, -002 … in
// order, so `cat DIR/*` still reads each subtask's records in order.
//
// Exactly-once holds because each checkpoint records the in-progress
// file's name, size and start time (the TwoPhaseWriter's writer state)
// after flushing and fsyncing it: a restore finds the file (under either
// name: it may have been rolled after the checkpoint), truncates it to the
// recorded size, which drops exactly the records the runtime replays, and
// appends to it again. The price is latency: records become visible when
// their file rolls, up to MaxFileAge plus a checkpoint interval after they
// are written. A job stopped with a final checkpoint (not at the end of
// its input) leaves its in-progress files staged until it is restarted.
//
// A restart with another parallelism does not append to an old subtask's
// in-progress file: the new subtask that takes the old one over (see
// runtime.TwoPhaseSealer) reopens it, truncated to the restored
// checkpoint's size, and commits it at once as
// <prefix>-<old subtask>-<checkpoint>-rescaled, after the checkpoint's
// other files in name order. The records written after the checkpoint are
// replayed into the new subtasks' files.
//
// # The sink: at-least-once mode
//
// With SinkConfig.Mode AtLeastOnce the sink appends records directly to a
// visible file <prefix>-<subtask:03d>-alo-<k>, a new k for each incarnation
// (each Open that writes), flushes and fsyncs at PreCommit, makes Commit a
// no-op and removes nothing on Open. After a crash the records since the last
// checkpoint appear twice. A process killed inside a write leaves its file
// ending in a partial line, which the restart trims: the record it cut
// comes after the restored checkpoint and is written again. The mode is
// at-least-once; it exists so that tests can show that their crash
// checkers detect duplicates.
package file
