// Package e2e holds the pieces of weir's end-to-end tests that run real jobs
// against a Kafka-protocol broker: a counting job (Kafka → keyed running
// count and sum → Kafka) that both the job binary in kafkajob and in-process
// tests build, and helpers to fill an input topic with sequenced records, read
// a topic at either isolation level. The crash tests run the job binaries
// (kafkajob, eventtimejob) through the public crash-test kit, weirtest.
// The tests of state that moves drive the starts themselves, since each
// differs from the one before: kafkajob, eventtimejob and examples/orders
// killed and restarted with another --parallelism, orders resumed from a
// savepoint, and orders with its checkpoints in S3 (internal/s3dev), each
// start with a fresh --local-dir. The group test runs examples/orders as
// several processes with --group sharing one job's tasks: members killed,
// joining and paused past their session timeout while the input arrives.
//
// The counting job's input records are {"key":"k-7","seq":12}: Keys keys,
// and per key the sequence 0, 1, 2, … in partition order. Its output records
// are {"key":"k-7","seq":12,"count":13,"sum":78}, one per input record, where
// count and sum are the key's running count and sum of seqs including this
// record. Because a key's input is in order, a correct job emits, for every
// record, count = seq+1 and sum = seq·(seq+1)/2, whatever crashed and
// restarted in between: a check of restored keyed state, not only of output
// counts.
package e2e
