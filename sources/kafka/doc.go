// Package kafka is a weir source that reads Kafka topics with exactly-once
// positions.
//
// The source does not use a consumer group. Every subtask is given a fixed,
// deterministic share of the partitions of the configured topics (the sorted
// list of (topic, partition) pairs, entry i to subtask i % parallelism), reads
// them with plain Fetch requests, and reports in each checkpoint the next
// offset to read for every partition it owns. Restoring a checkpoint resumes
// at exactly those offsets, so a record is neither emitted twice nor skipped
// across a failure: the checkpoint, not a committed group offset, is the
// source of truth.
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
// partition it owns at Open and returns runtime.ErrEndOfInput after reading up
// to there. That is the natural mode for tests, backfills and verification.
package kafka
