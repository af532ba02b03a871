// Package kafka is a sink that writes a stream to a Kafka topic, exactly once
// by default, by tying one Kafka transaction to each checkpoint epoch.
//
// # Exactly once: one transaction per subtask per checkpoint epoch
//
// The runtime drives a sink through
//
//	Open(restored) → Write … → PreCommit(n) → Write … → Commit(n) … → Close
//
// (see runtime.Sink). Each subtask writes the records of an epoch (the
// records between two barriers) in one Kafka transaction. PreCommit(n) sends
// every buffered record and waits until all are acknowledged by all in-sync
// replicas: the data is durable, but read_committed consumers do not see it
// yet. It returns, as the sink's checkpoint state, the list of transactions
// it has pre-committed and not yet committed. Commit(n), called once
// checkpoint n is complete, ends every pending transaction of a checkpoint
// ≤ n with EndTxn(commit), which makes them visible at once.
//
// A pre-committed transaction stays open until its checkpoint completes,
// while the next epoch is already writing, and a failed checkpoint leaves it
// open for longer. A transactional id can carry only one open transaction,
// so each subtask owns a small pool of transactional ids
//
//	<TransactionalIDPrefix>-<subtask>-<slot>, slot = 0 … PoolSize-1
//
// An epoch writes through one free slot, initialized by InitProducerID just
// before (which gives it a new producer epoch). PreCommit records the slot
// as pending with {checkpoint, transactional id, producer id, producer
// epoch}; the next epoch takes another free slot. Commit(n) commits the
// pending transactions of checkpoints ≤ n. A committed slot becomes free
// only once a later checkpoint, whose state no longer lists it, has
// completed: until then a restore may ask to commit it again, and that
// re-commit is idempotent only while the transactional id keeps the same
// producer epoch. When too many transactions are pending (several
// checkpoints in a row failed), Write returns an error rather than let a
// checkpoint's state name every slot.
//
// # Recovery
//
// Open(restored) first commits every transaction listed in the restored
// state, by EndTxn(commit) with the stored producer id and epoch and without
// InitProducerID (which would abort it). The restored checkpoint is
// complete, so these transactions were promised; committing one that is
// already committed succeeds. Then Open calls InitProducerID on every other
// slot id of the subtask's pool, which fences zombie producers of a previous
// attempt and aborts the transactions they left open: the data written after
// the restored checkpoint disappears, and the replayed input writes it again.
//
// If the broker says a promised transaction can no longer be committed (a
// newer epoch fenced it, typically because the coordinator aborted it when
// TransactionTimeout expired, or it was aborted), its data is lost. Open
// logs an error and fails with an error wrapping ErrFenced or ErrAborted; it
// does not silently continue. To keep this from happening, TransactionTimeout
// must comfortably exceed the checkpoint interval plus the time a restart
// takes; Open warns when it is less than three times their sum
// (CheckpointInterval and ExpectedRestartTime are configuration for this
// check only). The broker caps TransactionTimeout at its
// transaction.max.timeout.ms, 15 minutes by default.
//
// Read the topic with isolation level read_committed to see each record
// once. An open transaction holds back read_committed consumers of its
// partitions (the last stable offset) until it ends, so output becomes
// visible at checkpoint completion, not earlier.
//
// Limitations: the pool ids depend on the subtask index, so changing the
// parallelism (or shrinking PoolSize) leaves the transactions of vanished ids
// open until TransactionTimeout expires. The sink writes partitions one after
// another, synchronously.
//
// # At least once
//
// With Mode AtLeastOnce the sink writes through kafka-go's Writer with
// acks=all, asynchronously; PreCommit waits until every message written so
// far is acknowledged (a failed write fails the checkpoint) and Commit does
// nothing. After a failure the
// records written since the last checkpoint are written again: consumers may
// see duplicates. The sink is then at-least-once, and says so here.
package kafka
