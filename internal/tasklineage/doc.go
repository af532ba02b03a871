// Package tasklineage keeps the checkpoints of the tasks of a job spread
// over processes (runtime.Config.Group): which location each task
// checkpoints into, where a task's new owner starts from, and how a stale
// owner (a zombie: paused past the group's session timeout, then woken) is
// kept from being restored.
//
// Under the job's checkpoint location (a shared directory or s3://) each
// task has its own prefix, and each owner of a task its own epoch:
//
//	task-3/
//	    claims/epoch-7          the claim of epoch 7: owner, base, time
//	    claims/epoch-8
//	    epoch-7/                a checkpoint location (package chkstore)
//	        chk-0000000041/…
//	    epoch-8/
//	        chk-0000000045/…    the base, imported at the claim
//	        chk-0000000046/…
//
// Claim takes the task for a new owner. It finds the newest epoch n and the
// start point: the newest complete checkpoint of epoch n, or, if n has none
// (its owner died before its first), the base recorded in n's claim. It then
// creates claims/epoch-<n+1> exclusively (link(2) in a directory, a
// conditional put in S3: of two claimers, one wins and the other fails with
// ErrSuperseded), recording the start point as the new epoch's base, and
// imports that checkpoint into epoch-<n+1> (hard links in a directory, a
// copy in S3), where the engine restores it as the newest checkpoint.
//
// Restore never looks at an older epoch but through a recorded base, so what
// a zombie writes into its own, stale epoch after a newer one was claimed
// is never restored. Epoch.Current, called before every manifest is written
// and again before its sinks commit (see below), keeps a zombie from
// committing what the new owner does not restore: its checkpoint is
// declined and its task fails with ErrSuperseded. (The zombie's output is
// fenced by its sinks: transactional ids are per task, so the new owner's
// fences it.)
//
// Epoch.Cleanup, called once the new epoch completed a checkpoint of its
// own, deletes the older epochs that no start point needs any more.
//
// Lineage.WriteSavepoint copies every task's start point into a group
// savepoint (group-savepoint-<time>/task-<i>/, then GROUP), and
// ReadGroupSavepoint checks one before a group starts from it: each task
// with no checkpoint yet then imports its own savepoint (see savepoint.go).
//
// NB: an S3-compatible server that ignores If-None-Match on PUT (S3 itself
// honours it since 2024, as do MinIO and gofakes3, the development server of
// weir s3) would let two simultaneous claimers of one epoch both think they
// won. The group gives a task to one member at a time, so that takes two
// members that both believe they were assigned the task (a rebalance racing
// with an expelled member's old assignment) claiming within the same
// moment; their sinks' transactions still fence each other.
//
// The start point is read before the claim is written, and the previous
// owner, if still running, may complete a checkpoint between the two (its
// Current passed before the claim existed) and commit its output. Claim
// reads the start point again once its claim is written, and if it moved,
// claims the next epoch from the newer checkpoint, whose restore commits
// that checkpoint's transactions (again: idempotent).
//
// A checkpoint whose Current passed before the claim can still have its
// manifest written after that second read, and the new owner does not
// restore it. So the engine calls Current a second time, once the manifest
// is written and before the sinks commit (engine.Config.BeforeCommit):
//
//	stale owner:  write manifest, then list the claims  (Current)
//	new owner:    write claim,    then list the manifests (Claim's second read)
//
// Each side writes, then reads what the other writes, so at least one read
// sees the other's write. If the stale owner's check sees the newer claim,
// it does not commit: the task fails with ErrSuperseded, its manifest stays
// (the new owner may have seen it and be importing it), and its open
// transactions are aborted when the new owner's sinks fence their ids. If
// the check sees no newer claim, the claim was written after the manifest,
// so Claim's second read sees the manifest and the new owner starts from it
// (or a newer one), whose restore commits its transactions again,
// idempotently. Either way nothing the stale owner commits is replayed by
// the new owner, and what it leaves uncommitted the new owner either
// restores (and commits) or replays from an earlier checkpoint.
//
// The argument needs a location whose listings show every write completed
// before them: a local file system and S3 (strongly consistent since
// December 2020) are; a shared file system that caches
// directory listings (NFS with attribute caching, the default; mount with
// lookupcache=none,actimeo=0) is not, and neither is an S3-compatible
// server with eventually consistent listings. Current is one listing of
// the task's claims (BenchmarkEpochCurrent), so the second check costs a
// checkpoint one listing more. The previous owner may be deleting its
// older checkpoints (retention) while a new owner lists its epoch: a
// listing leaves out what vanished during it (package objstore) rather than
// failing the claim.
package tasklineage
