package kafkatxn

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/internal/kafkatxn/kafkatest"
)

func newIdempotent(t *testing.T, c *kfake.Cluster) *IdempotentProducer {
	t.Helper()
	p, err := NewIdempotent(t.Context(), testConfig(c, ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// TestIdempotentProducerWritesOnceAfterLostAck shows what the producer id
// buys: a batch resent because its acknowledgement was lost is written once.
func TestIdempotentProducerWritesOnceAfterLostAck(t *testing.T) {
	c := kafkatest.NewCluster(t, 1, topic)
	p := newIdempotent(t, c)
	lost := kafkatest.LoseProduceAck(t, c)
	if err := p.Produce(t.Context(), topic, 0, values("a", "b")); err != nil {
		t.Fatal(err)
	}
	if !lost() {
		t.Fatal("no acknowledgement was lost")
	}
	if err := p.Produce(t.Context(), topic, 0, values("c")); err != nil {
		t.Fatal(err)
	}
	checkValues(t, "read_uncommitted", kafkatest.Consume(t, c, topic, false, kafkatest.UntilValues("c", 0)), "a", "b", "c")
}

// TestIdempotentProducerPartitionsInParallel produces batches to several
// partitions from several goroutines, and batches split by MaxBatchBytes:
// each partition keeps its order and its sequence numbers.
func TestIdempotentProducerPartitionsInParallel(t *testing.T) {
	const parts, batches = 3, 20
	c := kafkatest.NewCluster(t, parts, topic)
	cfg := testConfig(c, "")
	cfg.MaxBatchBytes = 200 // a few records a request
	p, err := NewIdempotent(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var wg sync.WaitGroup
	for part := range parts {
		wg.Go(func() {
			for b := range batches {
				vs := make([]string, 5)
				for i := range vs {
					vs[i] = fmt.Sprintf("%d-%03d", part, b*len(vs)+i)
				}
				if err := p.Produce(t.Context(), topic, part, values(vs...)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := kafkatest.Consume(t, c, topic, false, kafkatest.Count(parts*batches*5))
	for part := range parts {
		var vs, want []string
		for _, r := range got {
			if r.Partition == int32(part) {
				vs = append(vs, r.Value)
			}
		}
		for i := range batches * 5 {
			want = append(want, fmt.Sprintf("%d-%03d", part, i))
		}
		if !slices.Equal(vs, want) {
			t.Errorf("partition %d: got %q, want %q", part, vs, want)
		}
	}
}

// TestIdempotentProducerFailsAfterError: once a batch may or may not have
// been written, no later batch may take its sequence numbers.
func TestIdempotentProducerFailsAfterError(t *testing.T) {
	c := kafkatest.NewCluster(t, 2, topic)
	p := newIdempotent(t, c)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		preq := req.(*kmsg.ProduceRequest)
		resp := preq.ResponseKind().(*kmsg.ProduceResponse)
		resp.SetVersion(preq.GetVersion())
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = preq.Topics[0].Topic
		rp := kmsg.NewProduceResponseTopicPartition()
		rp.Partition = preq.Topics[0].Partitions[0].Partition
		rp.ErrorCode = kerr.MessageTooLarge.Code
		rt.Partitions = append(rt.Partitions, rp)
		resp.Topics = append(resp.Topics, rt)
		return resp, nil, true
	})
	if err := p.Produce(t.Context(), topic, 0, values("a")); !errors.Is(err, kafka.MessageSizeTooLarge) {
		t.Fatalf("produce: %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := p.Produce(t.Context(), topic, 1, values("b")); !errors.Is(err, kafka.MessageSizeTooLarge) {
		t.Fatalf("produce after a failure: %v, want the first failure", err)
	}
}

func TestNewIdempotentRejectsTransactionalID(t *testing.T) {
	if _, err := NewIdempotent(t.Context(), Config{Brokers: []string{"b:1"}, TransactionalID: "x"}); err == nil {
		t.Fatal("NewIdempotent with a transactional id succeeded")
	}
}
