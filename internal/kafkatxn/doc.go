// Package kafkatxn is a minimal transactional (and idempotent) Kafka
// producer built on the protocol-level kafka.Client of
// github.com/segmentio/kafka-go, whose high-level Writer has neither.
//
// A Producer owns one transactional id. New finds the transaction
// coordinator and calls InitProducerID, which fences every older producer
// with the same id and makes the coordinator abort the transaction it left
// open. Then, repeatedly:
//
//	Produce … Produce → Commit (or Abort)
//
// The first Produce to a partition in a transaction registers it with
// AddPartitionsToTxn. Records are sent as Kafka v2 record batches encoded by
// this package, carrying the producer id, producer epoch, a per-partition base
// sequence and the transactional attribute bit, with acks=all; Produce returns
// only once the batch is acknowledged. ProducePartitions does the same for
// several partitions at once: one AddPartitionsToTxn for the new ones, then
// their batches concurrently.
//
// ResumeCommit finishes a transaction after a crash: it sends EndTxn(commit)
// with a producer id and epoch stored before the crash, without calling
// InitProducerID (which would abort the transaction). It is idempotent: the
// coordinator answers success to a commit of an already committed
// transaction, as long as no newer epoch has been issued for the id since.
// If one has, or the transaction was aborted, the promise to commit can no
// longer be kept and ResumeCommit returns an error wrapping ErrFenced or
// ErrAborted: that is data loss, and the caller must make it loud.
//
// IdempotentProducer writes the same record batches without transactions:
// NewIdempotent gets a producer id from InitProducerID without a
// transactional id, and each batch carries it and a per-partition sequence
// number, so the broker drops a batch resent after a lost acknowledgement.
// Partitions may be written concurrently.
//
// Config.Security secures the connections of a client built from Brokers.
// A request the broker refuses for lack of an ACL fails at once, without
// retries, with a kafkasec.AuthorizationError naming the operation and the
// resource (Write on the transactional id or the topic, IdempotentWrite on
// the cluster).
//
// NB: the package speaks EndTxn v0–v3 (what kafka-go implements), so it gets
// pre-KIP-890 semantics: EndTxn does not bump the epoch, and a Producer
// reuses its epoch across transactions.
package kafkatxn
