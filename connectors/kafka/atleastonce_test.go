package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/internal/kafkatxn"
	"github.com/weirstream/weir/internal/kafkatxn/kafkatest"
)

func atLeastOnceConfig(c *kfake.Cluster) SinkConfig[Message] {
	cfg := testConfig(c)
	cfg.Mode = AtLeastOnce
	cfg.TransactionalIDPrefix = ""
	return cfg
}

// heldProduce is a produce request the broker holds until release is
// closed.
type heldProduce struct {
	records int
	release chan struct{}
}

// holdProduces makes the broker hold every produce request and send it to
// the returned channel; it handles the request once the receiver closes its
// release. After stop, the broker handles requests as usual.
func holdProduces(t *testing.T, c *kfake.Cluster) (arrived <-chan heldProduce, stop func()) {
	ch := make(chan heldProduce)
	stopped := make(chan struct{})
	stop = sync.OnceFunc(func() { close(stopped) })
	t.Cleanup(stop) // before the cluster closes
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		select {
		case <-stopped:
			return nil, nil, false
		default:
		}
		h := heldProduce{records: produceRecords(t, req.(*kmsg.ProduceRequest)), release: make(chan struct{})}
		c.SleepControl(func() {
			select {
			case ch <- h:
				select {
				case <-h.release:
				case <-stopped:
				}
			case <-stopped:
			}
		})
		return nil, nil, false
	})
	return ch, stop
}

// produceRecords returns the number of records in a produce request.
func produceRecords(t *testing.T, req *kmsg.ProduceRequest) int {
	n := 0
	for _, pt := range req.Topics {
		for _, pp := range pt.Partitions {
			var b kmsg.RecordBatch
			if err := b.ReadFrom(pp.Records); err != nil {
				t.Errorf("produce request with an unreadable record batch: %v", err)
			}
			n += int(b.NumRecords)
		}
	}
	return n
}

// TestAtLeastOnceBoundsUnacknowledgedBytes holds every produce request
// until the records written and not acknowledged reach MaxInFlightBytes
// (or the writes are done): Write must block there, never beyond, and the
// waits must not split the stream into small batches.
func TestAtLeastOnceBoundsUnacknowledgedBytes(t *testing.T) {
	for _, tc := range []struct {
		partitions int32
		bound      int // records
	}{
		{partitions: 1, bound: 25},
		{partitions: 4, bound: 100},
	} {
		t.Run(fmt.Sprintf("partitions=%d", tc.partitions), func(t *testing.T) {
			const n, batch = 300, 10
			c := kafkatest.NewCluster(t, tc.partitions, topic)
			value := bytes.Repeat([]byte("v"), 100)
			cfg := atLeastOnceConfig(c)
			cfg.BatchSize = batch
			cfg.MaxInFlightBytes = tc.bound * (&kafkatxn.Record{Value: value}).Size()
			s := open(t, cfg, 0, nil) // nil keys: round robin
			defer s.Close()
			maxOut, requests := writeHeld(t, c, s, n, value, int64(tc.bound))
			if maxOut != int64(tc.bound) {
				t.Fatalf("at most %d records were written and not acknowledged, want MaxInFlightBytes' worth, %d", maxOut, tc.bound)
			}
			// Full batches, but for the last of each partition.
			if limit := n/batch + int(tc.partitions); requests > limit {
				t.Fatalf("%d records went in %d produce requests, want at most %d of BatchSize %d", n, requests, limit, batch)
			}
			if got := len(kafkatest.Consume(t, c, topic, false, kafkatest.Count(n))); got != n {
				t.Fatalf("read %d records, want %d", got, n)
			}
		})
	}
}

// writeHeld writes n records with value through s, then pre-commits, while
// the broker holds each produce request until the records written and not
// let through reach bound, or the writes are done. It returns the most
// records that were written and not acknowledged after a Write, and the
// number of produce requests.
func writeHeld(t *testing.T, c *kfake.Cluster, s *sink[Message], n int, value []byte, bound int64) (maxOut int64, requests int) {
	arrived, _ := holdProduces(t, c)
	// released counts the records of the requests let through, before
	// they are: at least those acknowledged.
	var written, released atomic.Int64
	wrote := make(chan struct{}, 1)
	writesDone, finished := make(chan struct{}), make(chan error, 1)
	go func() {
		for range n {
			if err := s.Write(t.Context(), Message{Value: value}); err != nil {
				finished <- err
				return
			}
			maxOut = max(maxOut, written.Add(1)-released.Load())
			select {
			case wrote <- struct{}{}:
			default:
			}
		}
		close(writesDone)
		_, err := s.PreCommit(t.Context(), 1)
		finished <- err
	}()

	var held []heldProduce
	for writing := writesDone; ; {
		if len(held) > 0 && (writing == nil || written.Load()-released.Load() >= bound) {
			released.Add(int64(held[0].records))
			close(held[0].release)
			held = held[1:]
			continue
		}
		select {
		case h := <-arrived:
			held = append(held, h)
			requests++
		case <-wrote:
		case <-writing:
			writing = nil
		case err := <-finished:
			if err != nil {
				t.Fatal(err)
			}
			return maxOut, requests
		}
	}
}

// TestAtLeastOncePreCommitWaitsForAcknowledgements holds every produce
// request until PreCommit has been called, then lets them through one by
// one: PreCommit must return only after the last, with every record in the
// log, visible read_uncommitted.
func TestAtLeastOncePreCommitWaitsForAcknowledgements(t *testing.T) {
	const n = 10
	c := kafkatest.NewCluster(t, partitions, topic)
	cfg := atLeastOnceConfig(c)
	cfg.BatchSize = 2
	s := open(t, cfg, 0, nil)
	defer s.Close()
	arrived, stop := holdProduces(t, c)
	write(t, s, "a", n)
	done := make(chan error, 1)
	go func() {
		_, err := s.PreCommit(t.Context(), 1)
		done <- err
	}()
	released := 0
	for {
		select {
		case h := <-arrived:
			released += h.records
			close(h.release)
			continue
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		}
		break
	}
	if released != n {
		t.Fatalf("PreCommit returned when the broker had let %d of %d records through", released, n)
	}
	stop()
	if got := endOffsets(t, c); got != n {
		t.Fatalf("the log holds %d records after PreCommit, want %d", got, n)
	}
	check(t, "read_uncommitted", readAll(t, c, false), want("a*10"))
}

// endOffsets returns the sum of the topic's high watermarks.
func endOffsets(t *testing.T, c *kfake.Cluster) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range int32(partitions) {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1 // latest
		rt.Partitions = append(rt.Partitions, rp)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				t.Fatalf("list offsets of partition %d: %v", rp.Partition, err)
			}
			sum += rp.Offset
		}
	}
	return sum
}

// TestAtLeastOnceWritesOnceAfterLostAck: the sink's producer is idempotent,
// so a batch resent after a lost acknowledgement is not duplicated.
func TestAtLeastOnceWritesOnceAfterLostAck(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	cfg := atLeastOnceConfig(c)
	cfg.BatchSize = 4
	s := open(t, cfg, 0, nil)
	defer s.Close()
	lost := kafkatest.LoseProduceAck(t, c)
	write(t, s, "a", 10)
	preCommit(t, s, 1)
	if !lost() {
		t.Fatal("no acknowledgement was lost")
	}
	check(t, "read_uncommitted", readAll(t, c, false), want("a*10"))
}

// TestAtLeastOnceFailedProduceFailsCheckpoint: a batch the broker rejects
// fails the pre-commit, and the sink stays failed.
func TestAtLeastOnceFailedProduceFailsCheckpoint(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	s := open(t, atLeastOnceConfig(c), 0, nil)
	defer s.Close()
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		preq := req.(*kmsg.ProduceRequest)
		resp := preq.ResponseKind().(*kmsg.ProduceResponse)
		for _, pt := range preq.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = pt.Topic
			for _, pp := range pt.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode = pp.Partition, kerr.MessageTooLarge.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	write(t, s, "a", 3)
	if _, err := s.PreCommit(t.Context(), 1); !errors.Is(err, kafkago.MessageSizeTooLarge) {
		t.Fatalf("pre-commit: %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := s.Write(t.Context(), Message{Value: []byte("b")}); !errors.Is(err, kafkago.MessageSizeTooLarge) {
		t.Fatalf("write after a failed produce: %v, want the failure", err)
	}
}

// TestAtLeastOnceBlockedWriteEndsWithContext: a Write blocked on the bound
// returns when its context ends, and Close does not wait for the broker.
func TestAtLeastOnceBlockedWriteEndsWithContext(t *testing.T) {
	c := kafkatest.NewCluster(t, 1, topic)
	cfg := atLeastOnceConfig(c)
	cfg.BatchSize = 1
	cfg.MaxInFlightBytes = 1 // one record at a time
	s := open(t, cfg, 0, nil)
	arrived, _ := holdProduces(t, c) // and never released
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		for range 1000 {
			if err := s.Write(ctx, Message{Value: []byte("v")}); err != nil {
				errc <- err
				return
			}
		}
		errc <- errors.New("1000 writes did not block")
	}()
	<-arrived // the first record is in flight: the second Write must block
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("blocked write: %v, want context.Canceled", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
