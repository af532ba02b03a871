// Package chkstore stores, verifies and restores the checkpoints of a
// running job: the engine's side of a checkpoint location. Tools read a
// location through package checkpoint instead, which needs no lock; both
// share the manifest's format and the layout's names (package manifest).
//
// A checkpoint directory (the job's --checkpoint-dir) holds one directory per
// checkpoint, named chk-<id> with a zero-padded decimal id, beside the job's
// live state and its lock:
//
//	LOCK                              flock of the running job; its pid
//	live/                             live Pebble state (package internal/engine)
//	chk-0000000042/
//	    state/<operator>/<subtask>/   Pebble checkpoint of a keyed subtask
//	    operators/<operator>.<subtask> state of a source, sink or operator
//	    MANIFEST                      written last
//	    committed/<operator>.<subtask> sink subtask finished committing it
//	incomplete/chk-0000000043/        moved aside at start: never restored
//
// Open takes an exclusive flock on LOCK and holds it until Close; the kernel
// releases it when the process dies, kill -9 included, so a crash leaves no
// stale lock. A second Open, from any process, fails at once with ErrLocked
// (and ErrUnusableDir) naming the directory and the pid written in LOCK:
// two jobs on one directory would delete each other's live state and write
// the same checkpoint ids. LOCK itself is never deleted, or two processes
// could lock two files of the same name.
//
// The engine's coordinator creates the directory when it triggers a
// checkpoint (fsyncing the parent, so the id survives a power loss); tasks
// write their keyed state into it (Pebble hard-links its immutable sstables,
// so unchanged files cost nothing); the coordinator writes operator state
// and, once every task has acknowledged, the MANIFEST. The MANIFEST lists
// every file with its size and CRC-32C and carries its own checksum; it is
// written to a temporary file, fsynced, renamed into place and the directory
// fsynced, so a checkpoint is complete exactly when its MANIFEST exists.
// Anything without one is debris of an aborted or interrupted checkpoint.
// After the MANIFEST, MarkCommitted records in committed/ each sink subtask
// that finished committing the checkpoint, so a restore from it does not
// commit again; the manifest does not list those files.
//
// On start the newest complete checkpoint is verified file by file before
// anything is restored; a missing or damaged file stops the job with an error
// that names the file and the checkpoint, and nothing is deleted. Incomplete
// checkpoints are then moved into incomplete/, each with a warning naming its
// new path, and only the newest five are kept there. Most were just
// interrupted by the crash, but one that lost its MANIFEST (a filesystem
// that broke its promises, a hand deletion) may hold the only record of what
// a sink committed, so none is deleted on sight. Older complete checkpoints
// beyond the retention count are deleted only after a newer one completes.
//
// Checkpoint ids are never reused. Sinks pre-commit under an id before its
// checkpoint completes, so NextID returns an id above every checkpoint in
// the directory, complete or not, incomplete/ included; an aborted checkpoint
// keeps its (emptied) directory until a later one completes, for the same
// reason.
//
// # Object storage
//
// OpenLocation also takes s3://bucket/prefix, and a checkpoint directory
// with a local directory (a shared filesystem, where live Pebble state would
// be slow and unsafe), which it then treats as object storage through a
// local object store, locking both directories. The layout of the keys is the
// one above (chk-<id>/MANIFEST, chk-<id>/<file>, chk-<id>/committed/…); the
// live state, the lock and a staging copy of each checkpoint stay in a local
// directory. Begin writes chk-<id>/RESERVED, the durable record of the id.
// Complete uploads the files new since the previous checkpoint (a file that is
// the same inode as the same path in the previous one is shared: the manifest,
// version 2, names in File.Object the key it was first uploaded under) and the
// MANIFEST last. A checkpoint is complete exactly when its MANIFEST object
// exists; one without it, a job killed mid-upload, is never restored and is
// deleted by Retain once a later checkpoint completes. Verify downloads a
// checkpoint into the local directory, verifying each object against the
// manifest; a damaged object is refused, named, with ErrCorrupt. Retain
// deletes the MANIFEST of a dropped checkpoint first, then only the objects no
// retained manifest references.
//
// A checkpoint directory can be opened either way from one run to the next.
// Opened with a local directory, it restores the checkpoints written without
// one (they share nothing by reference), NextID counts the checkpoints moved
// aside in incomplete/, and the live/ state left by such a run is deleted.
// Opened without one, Verify first hard-links into a checkpoint's own
// directory the files it shares with earlier checkpoints by reference, so it
// is self-contained as every checkpoint of a plain directory is before its
// files are checked, and later checkpoints name no shared objects.
//
// # Savepoints
//
// WriteSavepoint copies a complete checkpoint, every file (no hard links, no
// references to shared objects), into a directory savepoint-<id>-<time> of
// a savepoint location (a directory or s3://), verifying each file against
// the checkpoint's manifest, and writes the savepoint's own MANIFEST last.
// Nothing in a checkpoint location's retention looks at it. ReadSavepoint
// opens one; ImportSavepoint downloads it into a store with no complete
// checkpoint, verifying every object (a damaged one is refused, named, with
// ErrCorrupt), and completes it there as a checkpoint with Manifest.Savepoint
// set: it is then restored as any checkpoint is, and every later checkpoint
// of the run carries the same Manifest.Savepoint, which tells a restart of
// that run from a location of another.
//
// ReadCheckpoint opens a complete checkpoint of another location for the
// same import: a task of a job spread over processes starts, in a
// location of its own, from the checkpoint its previous owner left
// (package tasklineage). Such an import keeps the checkpoint's lineage and
// commit records, takes an id above every id the other location used, and
// hard-links the files between two local directories.
package chkstore
