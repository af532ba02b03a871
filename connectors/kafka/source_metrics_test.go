package kafka

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/runtime"
)

func TestSourceLag(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("lag", 1); err != nil {
		t.Fatal(err)
	}
	produce(t, b.Addr(), "lag", 50, values("v", 500)...)
	cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"lag"}, Deserializer: asString, MaxBytesPerRead: 1}
	s := openSource(t, cfg, task(0, 1), nil)
	if lag := s.SourceLag(); len(lag) != 0 {
		t.Fatalf("lag before the first fetch: %v", lag)
	}
	emitted := 0
	c := runtime.CollectorFunc[string](func(string) { emitted++ })
	if err := s.Read(testCtx(t), c); err != nil {
		t.Fatal(err)
	}
	lag := s.SourceLag()
	if emitted == 0 || emitted == 500 || len(lag) != 1 || lag[0].Partition != "lag/0" || lag[0].Records != int64(500-emitted) {
		t.Fatalf("after reading %d of 500: lag %+v, want lag/0 %d", emitted, lag, 500-emitted)
	}
	for range 1000 {
		if emitted == 500 {
			break
		}
		if err := s.Read(testCtx(t), c); err != nil {
			t.Fatal(err)
		}
	}
	if lag := s.SourceLag(); emitted != 500 || len(lag) != 1 || lag[0].Records != 0 {
		t.Fatalf("after reading %d of 500: lag %+v, want 0", emitted, lag)
	}
}

// TestSourceLagReadCommitted checks that under read_committed the records
// of an open transaction are not lag: a read_committed reader cannot read
// them yet, and a lag that counted them would never reach 0 on a topic that
// transactional writers keep busy (an exchange's repartition topic). Read
// uncommitted, they are lag until read.
func TestSourceLagReadCommitted(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("open", 1); err != nil {
		t.Fatal(err)
	}
	produce(t, b.Addr(), "open", 10, values("v", 20)...)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.TransactionalID("lag-test"), kgo.DefaultProduceTopic("open"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(t)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, v := range values("open", 5) {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	defer func() { _ = cl.EndTransaction(context.Background(), kgo.TryAbort) }()

	for _, tc := range []struct {
		iso      Isolation
		readable int
	}{
		{ReadCommitted, 20},   // the open transaction holds the rest back
		{ReadUncommitted, 25}, // everything is readable
	} {
		cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"open"}, Deserializer: asString, Isolation: tc.iso}
		s := openSource(t, cfg, task(0, 1), nil)
		emitted := 0
		c := runtime.CollectorFunc[string](func(string) { emitted++ })
		for range 1000 {
			if emitted >= tc.readable {
				break
			}
			if err := s.Read(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if lag := s.SourceLag(); emitted != tc.readable || len(lag) != 1 || lag[0].Records != 0 {
			t.Fatalf("isolation %v: read %d records (want %d), lag %+v: want lag 0 once all that is readable was read", tc.iso, emitted, tc.readable, lag)
		}
	}
}
