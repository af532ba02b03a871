// Package kafkatest runs an in-process Kafka cluster (franz-go's kfake) and
// reads topics back with franz-go's consumer, for the tests of the Kafka
// producer and sink.
package kafkatest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// NewCluster starts a one-broker cluster with the given topics, each with
// partitions partitions, and closes it when the test ends.
func NewCluster(t testing.TB, partitions int32, topics ...string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Record is a consumed record.
type Record struct {
	Partition int32
	Offset    int64
	Key       string
	Value     string
}

func (r Record) String() string {
	return fmt.Sprintf("%d@%d %s=%s", r.Partition, r.Offset, r.Key, r.Value)
}

// Consume reads topic from the start, with isolation level read_committed if
// committed is set and read_uncommitted otherwise, until done returns true
// for the records read so far; it fails the test after 15 seconds.
func Consume(t testing.TB, c *kfake.Cluster, topic string, committed bool, done func([]Record) bool) []Record {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(iso),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var recs []Record
	for !done(recs) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume %s (committed=%v): timed out with %d records: %v", topic, committed, len(recs), recs)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("consume %s: partition %d: %v", topic, e.Partition, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, Record{r.Partition, r.Offset, string(r.Key), string(r.Value)})
		})
	}
	return recs
}

// Count returns a done function for Consume that is satisfied by n records.
func Count(n int) func([]Record) bool {
	return func(recs []Record) bool { return len(recs) >= n }
}

// UntilValues returns a done function for Consume that is satisfied once,
// for every partition in partitions, a record with value marker was read.
func UntilValues(marker string, partitions ...int32) func([]Record) bool {
	return func(recs []Record) bool {
		seen := make(map[int32]bool)
		for _, r := range recs {
			if r.Value == marker {
				seen[r.Partition] = true
			}
		}
		for _, p := range partitions {
			if !seen[p] {
				return false
			}
		}
		return true
	}
}

// Values returns the values of recs, without those equal to drop.
func Values(recs []Record, drop string) []string {
	var vs []string
	for _, r := range recs {
		if r.Value != drop {
			vs = append(vs, r.Value)
		}
	}
	return vs
}
