// Package file is an exactly-once sink that writes records as lines to files
// in a directory, committing them in two phases in step with weir's
// checkpoints.
//
// # Records
//
// A user function formats each record: Config.Format appends exactly one
// line, terminator included, to a byte slice, and the sink writes those bytes
// and nothing else. StringLine is the Format for string records (rec + "\n")
// and Lines(dir) the matching Config:
//
//	sink, err := file.Factory(file.Lines("out"))
//	// sink is the per-subtask factory: func() runtime.Sink[string]
//
// # Layout
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
// a dot themselves (sources/file does so for wildcards). Each subtask only ever
// touches its own staging directory and its own visible names.
//
// # Protocol
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
// Because the final name is derived from the checkpoint id, a job must not
// reuse a Dir and Prefix of an earlier job: committing over an existing file
// fails with ErrConflict instead of overwriting it.
//
// # At-least-once mode
//
// With Config.AtLeastOnce the sink appends records directly to a visible file
// <prefix>-<subtask:03d>-alo-<k>, a new k for each incarnation (each Open
// that writes), flushes and fsyncs at PreCommit, makes Commit a no-op and
// removes nothing on Open. After a crash the records since the last
// checkpoint appear twice, and a file can end in a partial line. The mode
// is at-least-once; it exists so that tests can show that their crash
// checkers detect duplicates.
package file
