package kafka

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestReadCommittedSmallReadsHideAborted reads interleaved committed and
// aborted transactions over several partitions with reads far smaller than
// a transaction. A broker that stops at the request-wide byte limit in the
// middle of a partition may omit that partition's aborted-transaction list
// (kfake does); the source must not let aborted records through then.
func TestReadCommittedSmallReadsHideAborted(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("txn-small", 3); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	var want, aborted []string
	// Two producers whose transactions interleave in the partitions, as
	// two sink subtasks' do.
	var cls []*kgo.Client
	for i := range 2 {
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.TransactionalID(fmt.Sprintf("small-%d", i)),
			kgo.DefaultProduceTopic("txn-small"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		cls = append(cls, cl)
	}
	for round := range 6 {
		for _, cl := range cls {
			if err := cl.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 60 {
			for c, cl := range cls {
				v := fmt.Sprintf("r%d-c%d-%03d-%s", round, c, i, "padding-padding-padding")
				r := &kgo.Record{Value: []byte(v), Partition: int32(i % 3)}
				// One record per batch: many batches per transaction.
				if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
					t.Fatal(err)
				}
				if round%2 == 1 {
					aborted = append(aborted, v)
				} else {
					want = append(want, v)
				}
			}
		}
		for _, cl := range cls {
			if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(round%2 == 0)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, maxBytes := range []int32{300, 1000, 4096, 1 << 20} {
		t.Run(fmt.Sprint(maxBytes), func(t *testing.T) {
			cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"txn-small"}, Deserializer: asString,
				Mode: StopAtEnd, MaxBytesPerRead: maxBytes}
			readExactlyOnce(t, drain(t, openSource(t, cfg, task(0, 1), nil)), want)
		})
	}
	cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"txn-small"}, Deserializer: asString,
		Mode: StopAtEnd, MaxBytesPerRead: 1000, Isolation: ReadUncommitted}
	readExactlyOnce(t, drain(t, openSource(t, cfg, task(0, 1), nil)), append(append([]string{}, want...), aborted...))
}
