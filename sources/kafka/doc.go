// Package kafka is a weir source that reads Kafka topics with exactly-once
// positions.
//
// The source does not use a consumer group. Every subtask is given a fixed,
// deterministic share of the partitions of the configured topics (partition
// p of topic t to subtask (FNV-1a(t) + p) mod parallelism, as in Flink's
// KafkaTopicPartitionAssigner: a partition's owner depends neither on other
// topics nor on partitions added later), reads them with plain Fetch requests, and reports in each
// checkpoint the next offset to read for every partition it owns. Restoring
// a checkpoint resumes at exactly those offsets, so a record is neither
// emitted twice nor skipped across a failure: the checkpoint, not a committed
// group offset, is the source of truth. The parallelism of a restored source
// must be the one the checkpoint was taken with.
//
// Config.StartFrom positions the partitions found at the job's first start.
// An unbounded source looks for partitions added to its topics every
// Config.PartitionDiscoveryInterval (default 10 s) and reads those its
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
// Records that the user's Deserializer rejects are handled by the
// OnDecodeError policy: fail the job (the default), skip and count them, or
// copy the raw record to a dead-letter topic and count them.
//
// A Source is bounded when Mode is StopAtEnd: it captures the end of every
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
// Config.Security (package kafkasec) sets TLS and SASL for the reader and
// the dead-letter writer. Open authenticates first and checks, where the
// broker says (Metadata v8+), that the job may Read its topics and Write
// the dead-letter topic: a wrong password or a missing ACL fails the job at
// once, naming the operation and the resource, with an error wrapping
// runtime.ErrUnrecoverable. The source uses no consumer group, so it needs
// no group ACL.
package kafka
