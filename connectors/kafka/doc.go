// Package kafka reads and writes Kafka topics exactly once: a source that
// keeps its partitions' offsets in weir's checkpoints, and a sink that ties
// one Kafka transaction to each checkpoint epoch (or writes at least once,
// without transactions). Both share one Security (TLS and SASL), so a
// Kafka→Kafka job imports this package alone:
//
//	newSource, err := kafka.NewSource(kafka.SourceConfig[Order]{
//		Brokers: brokers, Topics: []string{"orders"}, Deserializer: decodeOrder,
//	})
//	if err != nil { … }
//	newSink, err := kafka.NewSink(kafka.SinkConfig[Total]{
//		Brokers: brokers, Topic: "totals", TransactionalIDPrefix: "totals-job",
//		Encode: encodeTotal,
//	})
//	if err != nil { … }
//	runtime.To(totals(runtime.From(p, "orders", newSource)), "totals", newSink)
//
// NewSource and NewSink validate their configuration and return the
// factories runtime.From and runtime.To take; the runtime makes one source or
// sink per subtask at every start of the job.
//
// # The guarantee
//
// The source's offsets and the sink's pre-committed transactions are part of
// every checkpoint. After a failure the job restores its last complete
// checkpoint: the source reads again from the offsets it holds, and the sink
// commits the transactions it promised and aborts everything written since.
// A read_committed consumer of the output topic therefore sees the effect of
// every input record exactly once, and sees it when the checkpoint that
// covers it completes.
//
// # The source
//
// The source does not use a consumer group. Every subtask is given a fixed,
// deterministic share of the partitions of the configured topics (partition
// p of topic t to subtask (FNV-1a(t) + p) mod parallelism, as in Flink's
// KafkaTopicPartitionAssigner: a partition's owner depends neither on other
// topics nor on partitions added later), reads them with plain Fetch requests, and reports in each
// checkpoint the next offset to read for every partition it owns. Restoring
// a checkpoint resumes at exactly those offsets, so a record is neither
// emitted twice nor skipped across a failure: the checkpoint, not a committed
// group offset, is the source of truth (DescribeSourceState decodes a
// subtask's offsets for tools: weir checkpoints inspect). A checkpoint may
// be restored with another parallelism: the source is runtime.Rescalable,
// and each new subtask takes from the old subtasks' states the offsets of
// the partitions it owns at its parallelism (Redistribute), so every
// partition resumes where it stood, in one subtask. Only a checkpoint of
// state version 1 (see below) must be restored with the parallelism it was
// taken with.
//
// In a job spread over processes (runtime.TaskInfo.Group set; see "The
// cluster" below) the rule is simpler: task i reads partition i of every
// topic, and Open refuses a topic whose partition count is not the task
// count (the error wraps ErrPartitionCount), as does the discovery of
// partitions added while the job runs. The task count of a group is thus
// its topics' partition count; rescaling a group (restoring it with
// another task count) is not supported yet.
//
// For monitoring only, SourceConfig.CommitGroup names a consumer group to
// which each subtask commits, once a checkpoint is complete, the offsets
// that checkpoint holds (as a simple consumer: generation -1, no members),
// so that kafka-consumer-groups --describe, kcat or a lag exporter show how
// far the job has read. weir never restores from the group; a failed
// commit is logged and the next checkpoint's commit catches up.
//
// SourceConfig.StartFrom positions the partitions found at the job's first start.
// An unbounded source looks for partitions added to its topics every
// SourceConfig.PartitionDiscoveryInterval (default 10 s) and reads those its
// subtask owns from their earliest offset: they were created after the job
// started, so everything in them is new. A restored source reads partitions
// its checkpoint does not know (added since) from their earliest offset too,
// whatever StartFrom says, so a Latest job does not skip them.
//
// By default records are read with isolation level read_committed: records of
// open transactions are held back until the transaction ends, and records of
// aborted transactions are never emitted. (Reading goes through franz-go's
// kgo record decoder, which filters aborted transactions; segmentio/kafka-go's
// readers stop at the last stable offset but do not drop aborted records, so
// they cannot implement read_committed on their own.)
//
// Event time: with runtime.WithWatermarks and a strategy without a
// Timestamp function (runtime.WatermarkStrategy[T]{MaxOutOfOrderness: d}),
// a record's event time is its Kafka timestamp (the producer's CreateTime
// or the broker's LogAppendTime, as the topic is configured), as in
// Flink's Kafka source; a Timestamp function, when given, decides instead.
//
// Records that the user's Deserializer rejects are handled by the
// OnDecodeError policy: fail the job (the default), skip and count them, or
// copy the raw record to a dead-letter topic and count them.
//
// A source is bounded when Mode is StopAtEnd: it captures the end of every
// partition it owns at the job's first start, keeps the ends in its
// checkpoints, and returns runtime.ErrEndOfInput after reading up to there,
// so a restarted bounded job emits what an uninterrupted one would: neither
// records appended since the first start nor partitions added since. That is
// the natural mode for tests, backfills and verification.
//
// Checkpoints of state version 1 (before the ends were kept) are restored:
// their partitions keep the assignment of that version (entry i of the
// sorted list of all partitions to subtask i mod parallelism), and only
// partitions added since follow the rule above. A bounded source restored
// from one captures its ends at that Open, as version 1 did.
//
// # The sink: one transaction per subtask per checkpoint epoch
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
// it has pre-committed and not yet committed (kept by
// runtime.NewTwoPhaseSink, each transaction encoded as JSON and described
// by its transactional id, producer id and epoch for weir checkpoints
// inspect; states written before, one JSON object, are still restored). Commit(n), called once
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
// # The sink: the transaction timeout
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
// three times the job's checkpoint interval (runtime.TaskInfo) plus
// ExpectedRestartTime. The broker caps
// TransactionTimeout at its transaction.max.timeout.ms, 15 minutes by
// default.
//
// # The sink: recovery
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
// # The sink: the topic
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
// In a job spread over processes (runtime.TaskInfo.Group set) the ids are
// <TransactionalIDPrefix>-<group>-<task>-e<epoch>-<slot>, where the epoch
// numbers the task's owners (runtime.TaskInfo.Epoch): jobs of different
// groups sharing a broker and a prefix do not fence each other, and a
// former owner that has not yet learnt it lost the task (expelled, or
// paused past the session timeout) cannot fence the new owner when it
// initializes its next slot, which with ids shared across owners would
// abort the new owner's transaction of a completed checkpoint. The new
// owner fences the ids of the task's prior epochs instead
// (runtime.TaskInfo.PriorEpochs) when it opens: what a former owner left
// open is aborted, and its next commit fails as fenced. Each takeover
// thus leaves PoolSize new ids on the broker, which it forgets after
// transactional.id.expiration.ms (7 days by default).
//
// The pool ids depend on the subtask index. A restart with another
// parallelism first completes, for every old subtask, what its state
// promised (runtime.NewTwoPhaseSink's rescaling): its transactions are
// committed and its other ids fenced, those of subtasks that no longer
// exist included. Limitations: shrinking PoolSize leaves the transactions
// of vanished ids open until TransactionTimeout expires. An exactly-once
// sink writes partitions one after another, synchronously.
//
// # The sink: at least once
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
// # The cluster: one job over many processes
//
// NewCluster returns the runtime.Cluster of a job started in several
// processes with the same runtime.Config.Group (--group). Kafka provides
// what a cluster manager would:
//
//   - Membership: each process joins the consumer group Group over the first
//     of ClusterConfig.Topics. Task i is partition i of that topic; every
//     input topic must have the same partition count, the job's task count
//     (Membership.Tasks), or Join fails naming the topics and their counts.
//     The group uses the cooperative-sticky balancer, so a rebalance moves
//     only the tasks that must move; JoinRequest.InstanceID makes the member
//     static (KIP-345), so a restart within the session timeout gets its
//     tasks back without a rebalance. The member never polls records (its
//     partitions are paused; the tasks' own sources read them, with offsets
//     in their checkpoints) and commits no offsets: kgo heartbeats in a
//     goroutine of its own, whether or not the client polls, every tenth
//     of the session timeout (at most 3 s): the other members learn of a
//     dead member's expiry at their next heartbeat, so a failover waits
//     for at most 1.1 session timeouts, not Kafka's customary 1.33.
//   - Assignment: the group's partition assignments become the JoinRequest's
//     callbacks. Assigned gives tasks; Revoked takes them back in a
//     rebalance, and the group waits for it to return (the tasks' final
//     checkpoints) up to ClusterConfig.RebalanceTimeout before it expels the
//     member; Lost says the member was expelled (its session timed out, as
//     after a long pause) and another may run its tasks already. The member
//     then rejoins under a new member id and gets tasks through Assigned.
//   - Leaving: Membership.Leave revokes the member's tasks, then leaves the
//     group, whose other members get them at once. A static member does not
//     leave the group (as Kafka's clients do not): its tasks wait for it
//     until the session timeout.
//
// The group goes through franz-go's kgo client. segmentio/kafka-go, which
// the sink uses, has a ConsumerGroup too, but its JoinGroup sends no group
// instance id (ConsumerGroupConfig has no field for one) and its balancers
// are the eager range, round-robin and rack-affinity ones: every rebalance
// would stop every task of every member, and a restart would always
// rebalance.
//
// Cluster.Exchange carries the records of a keyed exchange between tasks
// through the repartition topic <group>-<name>-repartition, which it
// creates with one partition per task (ClusterConfig.ReplicationFactor) if
// it is missing. An existing one with another partition count (left by an
// earlier job of the group) is refused, naming both counts. The exchange's
// sink is the exactly-once sink above: each record goes to the partition of
// its receiving task, in the writing task's transaction of the checkpoint,
// under the transactional ids <group>-<name>-repartition-<task>-<slot>. The
// exchange's source is the source above, read_committed, subtask i reading
// partition i, with its offsets in the task's checkpoint. A record's event
// time is its Kafka timestamp, runtime.NoTimestamp travelling as Kafka's
// "no timestamp" (-1), so an event time of exactly -1 ms reads back as none.
// As Kafka Streams does, the topic keeps records until the job purges them
// (retention.ms=-1, retention.bytes=-1, cleanup.policy=delete, set also on a
// topic that exists, with a warning if that fails), so old event times or a
// long stop lose nothing: when a checkpoint completes, each receiving task
// deletes the records of its partition below the offset of the checkpoint
// completed before it (DeleteRecords). A restore from an older checkpoint
// fails with OffsetOutOfRange, never skips records.
//
// The ACLs of a job spread over processes, besides its sources' and sinks':
// Read on the group; Create, Write, Read, Describe, Delete and AlterConfigs
// on the topics <group>-*-repartition; Write and Describe on the transactional ids
// <group>-* (and <TransactionalIDPrefix>-<group>-* of the job's Kafka
// sinks).
//
// # Security
//
// SourceConfig.Security and SinkConfig.Security take a Security: TLS (system
// roots or a CA file, an optional client certificate, a server name) and
// SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512). RegisterSecurityFlags binds
// the standard flags (--kafka-tls, --kafka-tls-ca, --kafka-tls-cert,
// --kafka-tls-key, --kafka-tls-server-name, --kafka-sasl-mechanism,
// --kafka-sasl-user, --kafka-sasl-password-file) to a flag set. The password
// is never a flag value, so it never shows in a process list: it comes from
// the file or from the environment variable WEIR_KAFKA_SASL_PASSWORD
// (PasswordEnv). Its type, Password, prints as [REDACTED] through fmt, slog
// and JSON, so a logged or served Security does not leak it.
//
// Open authenticates first and asks the broker (Metadata v8+) whether the
// job may do what it needs, so that a wrong password or a missing ACL fails
// the job at once, naming the operation and the resource, instead of a
// client library retrying a closed connection. A broker's refusal is
// permanent: authentication errors wrap ErrAuthentication, authorization
// errors wrap ErrAuthorization (an AuthorizationError names what is
// missing), and both wrap runtime.ErrUnrecoverable, so the job fails instead
// of restarting. The ACLs: the source needs Read and Describe on its topics
// and Write and Describe on the dead-letter topic; it uses no consumer
// group, so it needs no group ACL. The sink needs Write on Topic, and Write
// on the transactional ids (prefix TransactionalIDPrefix) in exactly-once
// mode, or IdempotentWrite on the cluster in at-least-once mode where the
// broker asks for it (Kafka 3.0+ accepts Write on a topic instead).
package kafka
