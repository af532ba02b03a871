// Package file is a bounded source that streams the lines of one or more
// files.
//
// # Building
//
// Lines (or New with a Config) expands its arguments, which may be plain paths
// or filepath.Match glob patterns, into one sorted, deduplicated list of
// files, once, when the pipeline is built. A pattern that matches nothing or a
// file that cannot be opened is an error that names it, so a typo fails at
// construction rather than producing an empty job. As in the shell, a
// wildcard does not match a leading dot in the last path element, so "out/*"
// reads the committed output of sinks/file and skips its ".weir" staging
// directory. For example:
//
//	in, err := file.Lines("logs/*.log")
//	// in.NewSource is the per-subtask source factory.
//
// # Partitioning
//
// Each subtask runs its own Source. File i of the sorted list belongs to
// subtask i % parallelism, and a subtask reads its files one after the other
// in list order. The assignment depends only on the list and the
// parallelism, so a restored job reads the same files in the same subtasks.
// A subtask with no files ends at once with runtime.ErrEndOfInput.
//
// # Records
//
// Every line becomes one string record without its trailing "\n" or "\r\n". A
// final line without a newline is still a record; an empty file has none; a
// lone "\r" not followed by "\n" is kept as data. Lines of any length are
// supported: the source reads through a large bufio.Reader and copies only
// lines that do not fit in it. Each Read emits at most MaxLinesPerRead lines
// (4096 by default) so that barriers are injected promptly; after the last
// line of the last file the next Read returns runtime.ErrEndOfInput.
//
// # Checkpoints
//
// The position of a subtask is (file index, byte offset of the next unread
// line). Snapshot encodes it with a version byte, the parallelism, the number
// of files, and a fingerprint of each of the subtask's files taken when the
// job first started: size, modification time and a CRC-32C of its first and
// last 64 KiB. Open with that snapshot checks every fingerprint, reopens the
// current file, seeks to the offset and continues, so every line is emitted
// exactly once across a restore. If the file list or the parallelism changed,
// or any of the subtask's files (read, being read or not opened yet) no
// longer matches its fingerprint, Open fails with ErrSnapshotMismatch naming
// the file and the change, instead of silently reading other data: the input
// files of a job must not change while it can still be restored. A file that
// changes while the job runs, before the job reaches it, fails the job the
// same way when it is opened. (Touching a file counts as a change; the
// fingerprint reads only the ends of a file, so that the job's first start
// does not read its input twice.)
package file
