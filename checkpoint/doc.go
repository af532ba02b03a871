// Package checkpoint reads a job's checkpoints and savepoints: it lists,
// inspects and verifies them, as `weir checkpoints list|inspect|verify`
// does, for tools and scripts written in Go. It only reads: it takes no
// lock, changes nothing and can run beside the job that writes the
// checkpoints (the job writes them through its own store, inside the
// runtime).
//
// A location is a job's --checkpoint-dir: a directory, or
// s3://bucket/prefix in an S3-compatible object store, whose endpoint,
// region and credentials come from the standard AWS environment
// (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
// profiles). Both hold one directory (a key prefix in object storage) per
// checkpoint, named chk-<id> with a zero-padded decimal id:
//
//	chk-0000000042/
//	    state/<operator>/<subtask>/    keyed state (Pebble files) of a subtask
//	    operators/<operator>.<subtask> state of a source, sink or operator
//	    MANIFEST                       written last
//	    committed/<operator>.<subtask> a sink subtask finished committing it
//
// A checkpoint is complete exactly when its MANIFEST exists: the job writes
// it last, after every other file (in object storage, after every upload).
// The MANIFEST lists every file with its size and CRC-32C and carries its own
// checksum. In object storage a checkpoint shares the files that did not
// change since an earlier one (the manifest names the object that holds
// each). Any other directory in the location that holds a MANIFEST is a
// savepoint; a savepoint can also be the location itself.
//
// List returns the complete checkpoints and savepoints (Info: id, time,
// size, bytes added). Inspect describes one (Details: its operators, their
// parallelism, the key-group range and keyed state size of each subtask,
// its operator state as the operator encoded it, event times and commit
// records). Verify reads every file of one and checks its size and CRC-32C,
// listing the files that fail in the Verification; VerifyAll does so for
// each. Inspect and Verify pick by "latest" (or ""), an id, or a directory
// as Info.Dir names it.
//
// Errors wrap the package's sentinels: ErrNoCheckpoint when nothing matches
// what was asked for, ErrCorrupt when a manifest fails its checksum. A job
// meets ErrCorrupt too, when its newest checkpoint fails verification on
// start, and ErrUnusableDir and ErrLocked when its checkpoint directory
// cannot be used.
package checkpoint
