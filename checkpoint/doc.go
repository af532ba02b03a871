// Package checkpoint stores, verifies and restores weir checkpoints.
//
// A checkpoint directory (the job's --checkpoint-dir) holds one directory per
// checkpoint, named chk-<id> with a zero-padded decimal id:
//
//	chk-0000000042/
//	    state/<operator>/<subtask>/   Pebble checkpoint of a keyed subtask
//	    operators/<operator>.<subtask> state of a source, sink or operator
//	    MANIFEST                      written last
//
// The runtime's coordinator creates the directory when it triggers a
// checkpoint; tasks write their keyed state into it (Pebble hard-links its
// immutable sstables, so unchanged files cost nothing); the coordinator writes
// operator state and, once every task has acknowledged, the MANIFEST. The
// MANIFEST lists every file with its size and CRC-32C and carries its own
// checksum; it is written to a temporary file, fsynced, renamed into place and
// the directory fsynced, so a checkpoint is complete exactly when its
// MANIFEST exists. Anything without one is debris of an aborted or
// interrupted checkpoint.
//
// On start the newest complete checkpoint is verified file by file before
// anything is restored; a missing or damaged file stops the job with an error
// that names the file and the checkpoint, and nothing is deleted. Older
// complete checkpoints beyond the retention count are deleted only after a
// newer one completes.
package checkpoint
