// Package kafkatest runs an in-process Kafka cluster (franz-go's kfake),
// reads topics back with franz-go's consumer, makes a broker forget
// transactional ids as after a long outage, and loses a produce
// acknowledgement as a network failure does, for the tests of the Kafka
// producer, the sink and the development broker.
package kafkatest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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

// ExpireTransactionalIDs makes the broker at brokers forget txids, as a
// broker does after transactional.id.expiration.ms (7 days by default)
// without use: it sets the broker's expiration to 1ms, waits until none of
// txids is known (see WaitForgotten), and removes the setting again.
func ExpireTransactionalIDs(t testing.TB, brokers []string, txids ...string) {
	t.Helper()
	setBrokerConfig(t, brokers, "transactional.id.expiration.ms", kmsg.StringPtr("1"))
	WaitForgotten(t, brokers, txids...)
	setBrokerConfig(t, brokers, "transactional.id.expiration.ms", nil)
}

// setBrokerConfig sets (or, with a nil value, deletes) a dynamic broker
// config with IncrementalAlterConfigs.
func setBrokerConfig(t testing.TB, brokers []string, name string, value *string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	rc.Name, rc.Value, rc.Op = name, value, kmsg.IncrementalAlterConfigOpSet
	if value == nil {
		rc.Op = kmsg.IncrementalAlterConfigOpDelete
	}
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeBroker
	res.Configs = append(res.Configs, rc)
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.Resources = append(req.Resources, res)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err == nil && len(resp.Resources) == 1 {
		err = kerr.ErrorForCode(resp.Resources[0].ErrorCode)
	}
	if err != nil {
		t.Fatalf("set broker config %s: %v", name, err)
	}
}

// WaitForgotten waits until the broker at brokers no longer knows any of
// txids, as after transactional.id.expiration.ms without use: until
// DescribeTransactions answers TRANSACTIONAL_ID_NOT_FOUND for each. (Asking
// does not count as use.) It fails the test after 30 seconds.
func WaitForgotten(t testing.TB, brokers []string, txids ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req := kmsg.NewPtrDescribeTransactionsRequest()
		req.TransactionalIDs = txids
		resp, err := req.RequestWith(ctx, cl)
		known := map[string]int16{}
		if err == nil {
			for _, st := range resp.TransactionStates {
				if st.ErrorCode != kerr.TransactionalIDNotFound.Code {
					known[st.TransactionalID] = st.ErrorCode
				}
			}
			if len(known) == 0 {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the broker still knows transactional ids %v after 30s (last error %v)", known, err)
		case <-tick.C:
		}
	}
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

// LoseProduceAck makes the cluster write the next produce request and then
// close the connection instead of answering, as when a network failure
// loses the acknowledgement: the producer cannot know that the records were
// written, and sends them again. The returned function reports whether that
// happened. The cluster must have one broker.
func LoseProduceAck(t testing.TB, c *kfake.Cluster) (lost func() bool) {
	t.Helper()
	var taken, done atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if !taken.CompareAndSwap(false, true) {
			return nil, nil, false // the write below, or a later request
		}
		// NB: the cluster cannot handle the request and drop the
		// answer, so the request is written through another
		// connection while this one sleeps.
		preq := req.(*kmsg.ProduceRequest)
		c.SleepControl(func() { writeAgain(t, c, preq) })
		done.Store(true)
		return nil, errors.New("kafkatest: acknowledgement lost"), true
	})
	return done.Load
}

// writeAgain produces the record batches of preq, unchanged, through a new
// connection.
func writeAgain(t testing.TB, c *kfake.Cluster, preq *kmsg.ProduceRequest) {
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...), Timeout: 10 * time.Second, Transport: tr}
	txid := ""
	if preq.TransactionID != nil {
		txid = *preq.TransactionID
	}
	for _, pt := range preq.Topics {
		for _, pp := range pt.Partitions {
			set := binary.BigEndian.AppendUint32(nil, uint32(len(pp.Records)))
			set = append(set, pp.Records...)
			res, err := cl.RawProduce(context.Background(), &kafka.RawProduceRequest{
				Topic:           pt.Topic,
				Partition:       int(pp.Partition),
				RequiredAcks:    kafka.RequiredAcks(preq.Acks),
				TransactionalID: txid,
				RawRecords:      protocol.RawRecordSet{Reader: bytes.NewReader(set)},
			})
			if err == nil {
				err = res.Error
			}
			if err != nil {
				t.Errorf("kafkatest: write %s/%d again: %v", pt.Topic, pp.Partition, err)
			}
		}
	}
}
