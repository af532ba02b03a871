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
// # The transaction timeout
//
// The broker aborts a transaction TransactionTimeout after it began (at its
// first AddPartitionsToTxn), whatever a checkpoint promised. So a checkpoint
// must complete, and its transactions be committed, in time, even if the
// process is paused (SIGSTOP, a paused VM, a stalled disk) between the
// pre-commit and the checkpoint's manifest. The sink implements
// runtime.PromiseChecker: just before the manifest is written, CheckPromise
// declines the checkpoint if, for a transaction it would promise, less than
// ExpectedRestartTime is left before the timeout, the time needed to commit
// it after a crash right after the manifest. The job then fails (the sink's
// next Write or PreCommit returns an error wrapping ErrTransactionTimeout)
// and restarts from the previous checkpoint; the records are written again,
// none lost and none twice. Open warns when TransactionTimeout is less than
// three times CheckpointInterval plus ExpectedRestartTime (CheckpointInterval
// is configuration for this warning only). The broker caps
// TransactionTimeout at its transaction.max.timeout.ms, 15 minutes by
// default.
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
// Open does not commit the listed transactions when the runtime recorded
// that this subtask's Commit of the restored checkpoint had returned
// (runtime.TaskInfo.RestoredCommitted), as after a clean stop: they are
// committed, and the broker may no longer know their ids (it forgets a
// transactional id idle for transactional.id.expiration.ms, 7 days by
// default), so a restart after a long outage works.
//
// If the broker says a promised transaction can no longer be committed (a
// newer epoch fenced it, typically because the coordinator aborted it when
// TransactionTimeout expired before a restart could commit it, or it was
// aborted, or the broker forgot the id), its data may be lost. Open logs an
// error and fails with an error wrapping ErrFenced or ErrAborted; it does not
// silently continue.
//
// # The topic
//
// Open asks the broker to create a missing topic, as Kafka's producers do;
// brokers with auto.create.topics.enable (and weir's development broker)
// create it with their default partition count. Otherwise Open fails with
// an error naming the topic and how to create it.
//
// Read the topic with isolation level read_committed to see each record
// once. An open transaction holds back read_committed consumers of its
// partitions (the last stable offset) until it ends, so output becomes
// visible at checkpoint completion, not earlier.
//
// Limitations: the pool ids depend on the subtask index, so changing the
// parallelism (or shrinking PoolSize) leaves the transactions of vanished ids
// open until TransactionTimeout expires. An exactly-once sink writes
// partitions one after another, synchronously.
//
// # At least once
//
// With Mode AtLeastOnce the sink writes without transactions, with acks=all,
// through an idempotent producer: a producer id from InitProducerID and a
// sequence number on every batch, so that a batch resent after a lost
// acknowledgement is written once. It sends a partition's records once
// BatchSize of them (or 512 KiB) are buffered, asynchronously: each partition
// has one request in flight, which keeps its order, while other partitions
// and Write carry on. The records written and not yet acknowledged, buffered
// or sent, are bounded by MaxInFlightBytes (16 MiB per subtask by default,
// counted by encoded size): Write blocks while the bound is reached.
// PreCommit sends every buffered record and waits until all are acknowledged
// (a failed write fails the checkpoint, and the sink), so everything written
// before a barrier is in the log before its checkpoint completes; Commit does
// nothing. After a failure the records written since the last completed
// checkpoint are written again: consumers may see duplicates. The sink is
// then at-least-once, and says so here.
//
// # Security
//
// Config.Security (package kafkasec) sets TLS and SASL for every connection.
// Open first authenticates and asks the broker whether the job may write
// Topic, so that a wrong password or a missing ACL fails the job at once
// with an error naming the operation and the resource; authentication and
// authorization errors, at Open or later, wrap runtime.ErrUnrecoverable.
// The ACLs: Write on Topic, and Write on the transactional ids (prefix
// TransactionalIDPrefix) in exactly-once mode, IdempotentWrite on the
// cluster in at-least-once mode where the broker asks for it (Kafka 3.0+
// accepts Write on a topic instead).
package kafka
