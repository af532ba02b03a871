package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/internal/devbroker"
	"github.com/weirstream/weir/runtime"
)

func startBroker(t *testing.T) *devbroker.Broker {
	t.Helper()
	b, err := devbroker.Start(devbroker.Config{Addr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// produce writes values to topic with kafka-go, batchSize records per
// produce request so that the log has many batches.
func produce(t *testing.T, addr, topic string, batchSize int, values ...string) {
	t.Helper()
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(addr),
		Topic:        topic,
		Balancer:     &kafkago.Hash{},
		RequiredAcks: kafkago.RequireAll,
		BatchSize:    batchSize,
		BatchTimeout: time.Millisecond,
	}
	defer w.Close()
	msgs := make([]kafkago.Message, len(values))
	for i, v := range values {
		msgs[i] = kafkago.Message{Key: []byte(v), Value: []byte(v)}
	}
	for len(msgs) > 0 {
		n := min(batchSize, len(msgs))
		if err := w.WriteMessages(testCtx(t), msgs[:n]...); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
		msgs = msgs[n:]
	}
}

func values(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return out
}

func asString(r Record) (string, error) { return string(r.Value), nil }

func task(subtask, parallelism int) runtime.TaskInfo {
	return runtime.TaskInfo{Job: "test", Operator: "kafka", Subtask: subtask, Parallelism: parallelism, Logger: quiet}
}

func openSource[T any](t *testing.T, cfg SourceConfig[T], info runtime.TaskInfo, restored []byte) *source[T] {
	t.Helper()
	s, err := newSourceInstance(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(testCtx(t), info, restored); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// drain reads until ErrEndOfInput, failing after too many Reads.
func drain[T any](t *testing.T, s *source[T]) []T {
	t.Helper()
	var out []T
	c := runtime.CollectorFunc[T](func(v T) { out = append(out, v) })
	for range 10_000 {
		switch err := s.Read(testCtx(t), c); {
		case errors.Is(err, runtime.ErrEndOfInput):
			return out
		case err != nil:
			t.Fatalf("Read: %v", err)
		}
	}
	t.Fatal("source did not end")
	return nil
}

// readExactlyOnce fails unless got holds every value of want exactly once.
func readExactlyOnce(t *testing.T, got, want []string) {
	t.Helper()
	count := map[string]int{}
	for _, v := range got {
		count[v]++
	}
	for _, v := range want {
		if count[v] != 1 {
			t.Errorf("%s read %d times, want once", v, count[v])
		}
		delete(count, v)
	}
	for v, n := range count {
		t.Errorf("unexpected record %q read %d times", v, n)
	}
}

func TestReadAllStopAtEnd(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("a", 3); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTopic("b", 2); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTopic("empty", 2); err != nil {
		t.Fatal(err)
	}
	wantA, wantB := values("a", 700), values("b", 300)
	produce(t, b.Addr(), "a", 50, wantA...)
	produce(t, b.Addr(), "b", 50, wantB...)

	cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"a", "b", "empty"}, Deserializer: asString, Mode: StopAtEnd}
	s := openSource(t, cfg, task(0, 1), nil)
	got := drain(t, s)
	readExactlyOnce(t, got, append(wantA, wantB...))
	// Records produced after Open are beyond the captured end.
	produce(t, b.Addr(), "a", 50, "late")
	if err := s.Read(testCtx(t), runtime.CollectorFunc[string](func(string) { t.Error("emitted after end") })); !errors.Is(err, runtime.ErrEndOfInput) {
		t.Fatalf("Read after end = %v, want ErrEndOfInput", err)
	}
}

func TestPartitionAssignment(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("a", 3); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTopic("b", 2); err != nil {
		t.Fatal(err)
	}
	cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"b", "a"}, Deserializer: asString, Mode: StopAtEnd}
	// Partition p of a topic goes to subtask (FNV-1a(topic) + p) mod 2:
	// the hash of "a" is even, that of "b" odd.
	want := [][]string{{"a/0", "a/2", "b/1"}, {"a/1", "b/0"}}
	for sub := range 2 {
		s := openSource(t, cfg, task(sub, 2), nil)
		var got []string
		for _, p := range s.parts {
			got = append(got, p.topicPartition.String())
		}
		if fmt.Sprint(got) != fmt.Sprint(want[sub]) {
			t.Errorf("subtask %d owns %v, want %v", sub, got, want[sub])
		}
	}
}

func TestUnboundedReadReturnsPromptly(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("idle", 1); err != nil {
		t.Fatal(err)
	}
	cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"idle"}, Deserializer: asString, StartFrom: Latest}
	s := openSource(t, cfg, task(0, 1), nil)
	var got []string
	c := runtime.CollectorFunc[string](func(v string) { got = append(got, v) })
	for range 3 {
		start := time.Now()
		if err := s.Read(testCtx(t), c); err != nil {
			t.Fatal(err)
		}
		// 100 ms of broker wait plus scheduling slack on a loaded machine.
		if d := time.Since(start); d > time.Second {
			t.Fatalf("idle Read took %v", d)
		}
	}
	if len(got) != 0 {
		t.Fatalf("idle Read emitted %v", got)
	}
	produce(t, b.Addr(), "idle", 10, values("x", 5)...)
	for i := 0; len(got) < 5; i++ {
		if err := s.Read(testCtx(t), c); err != nil {
			t.Fatal(err)
		}
		if i > 100 {
			t.Fatalf("read %d of 5 records", len(got))
		}
	}
	readExactlyOnce(t, got, values("x", 5))
}

func TestStartFromTimestampAndLatest(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("ts", 1); err != nil {
		t.Fatal(err)
	}
	produce(t, b.Addr(), "ts", 10, values("old", 10)...)
	cfgLatest := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"ts"}, Deserializer: asString, StartFrom: Latest, Mode: StopAtEnd}
	if got := drain(t, openSource(t, cfgLatest, task(0, 1), nil)); len(got) != 0 {
		t.Fatalf("Latest read %v", got)
	}
	// Record timestamps are set by the producer; use one well in the future
	// for "nothing yet" and the epoch for "everything".
	cfgFuture := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"ts"}, Deserializer: asString, StartFrom: Timestamp(time.Now().Add(time.Hour)), Mode: StopAtEnd}
	if got := drain(t, openSource(t, cfgFuture, task(0, 1), nil)); len(got) != 0 {
		t.Fatalf("future timestamp read %v", got)
	}
	cfgPast := cfgFuture
	cfgPast.StartFrom = Timestamp(time.Unix(0, 0))
	readExactlyOnce(t, drain(t, openSource(t, cfgPast, task(0, 1), nil)), values("old", 10))
}

// TestReadCommittedHidesAborted produces with a transactional franz-go client
// and checks that read_committed emits committed records only, while
// read_uncommitted (proving the aborted records are really in the log) emits
// them too.
func TestReadCommittedHidesAborted(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("txn", 2); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.TransactionalID("weir-test"), kgo.DefaultProduceTopic("txn"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(t)
	txn := func(commit bool, vals []string) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		recs := make([]*kgo.Record, len(vals))
		for i, v := range vals {
			recs[i] = &kgo.Record{Key: []byte(v), Value: []byte(v)}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	committed1, aborted, committed2 := values("c1", 40), values("ab", 30), values("c2", 20)
	txn(true, committed1)
	txn(false, aborted)
	txn(true, committed2)
	plain := values("plain", 10)
	produce(t, b.Addr(), "txn", 10, plain...)

	want := append(append(append([]string{}, committed1...), committed2...), plain...)
	cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"txn"}, Deserializer: asString, Mode: StopAtEnd}
	readExactlyOnce(t, drain(t, openSource(t, cfg, task(0, 1), nil)), want)

	cfg.Isolation = ReadUncommitted
	readExactlyOnce(t, drain(t, openSource(t, cfg, task(0, 1), nil)), append(want, aborted...))

	// An open transaction is held back under read_committed, and the
	// bounded source still ends (at the last stable offset).
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cfg.Isolation = ReadCommitted
	readExactlyOnce(t, drain(t, openSource(t, cfg, task(0, 1), nil)), want)
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
}

var errBad = errors.New("bad record")

func strict(r Record) (string, error) {
	if strings.HasPrefix(string(r.Value), "bad") {
		return "", errBad
	}
	return string(r.Value), nil
}

func TestDecodeErrorPolicies(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("mixed", 1); err != nil {
		t.Fatal(err)
	}
	good := values("good", 20)
	all := append(append(append([]string{}, good[:10]...), "bad-1", "bad-2"), good[10:]...)
	produce(t, b.Addr(), "mixed", 5, all...)
	base := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"mixed"}, Deserializer: strict, Mode: StopAtEnd}

	t.Run("Fail", func(t *testing.T) {
		s := openSource(t, base, task(0, 1), nil)
		var err error
		for range 1000 {
			if err = s.Read(testCtx(t), runtime.CollectorFunc[string](func(string) {})); err != nil {
				break
			}
		}
		var de *DecodeError
		if !errors.As(err, &de) || !errors.Is(err, errBad) {
			t.Fatalf("Read = %v, want a *DecodeError wrapping errBad", err)
		}
		if de.Topic != "mixed" || de.Partition != 0 || de.Offset != 10 {
			t.Fatalf("DecodeError names %s/%d@%d, want mixed/0@10", de.Topic, de.Partition, de.Offset)
		}
		for _, part := range []string{"mixed/0", "offset 10"} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("error %q does not mention %q", err, part)
			}
		}
	})
	t.Run("Skip", func(t *testing.T) {
		s := openSource(t, func() SourceConfig[string] { c := base; c.OnDecodeError = Skip; return c }(), task(0, 1), nil)
		readExactlyOnce(t, drain(t, s), good)
		if n := s.DecodeErrors(); n != 2 {
			t.Fatalf("DecodeErrors = %d, want 2", n)
		}
	})
	t.Run("DeadLetter", func(t *testing.T) {
		cfg := base
		cfg.OnDecodeError = DeadLetter
		cfg.DeadLetterTopic = "mixed-dlq"
		s := openSource(t, cfg, task(0, 1), nil)
		readExactlyOnce(t, drain(t, s), good)
		if s.DecodeErrors() != 2 || s.DeadLettered() != 2 {
			t.Fatalf("DecodeErrors = %d, DeadLettered = %d, want 2, 2", s.DecodeErrors(), s.DeadLettered())
		}
		dlq := openSource(t, SourceConfig[Record]{
			Brokers: []string{b.Addr()}, Topics: []string{"mixed-dlq"}, Mode: StopAtEnd,
			Deserializer: func(r Record) (Record, error) { return r, nil },
		}, task(0, 1), nil)
		recs := drain(t, dlq)
		var vals []string
		for _, r := range recs {
			vals = append(vals, string(r.Value))
			h := map[string]string{}
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			if h["weir.source.topic"] != "mixed" || h["weir.source.partition"] != "0" || h["weir.decode.error"] != errBad.Error() {
				t.Errorf("dead letter %q has headers %v", r.Value, h)
			}
			if off := h["weir.source.offset"]; off != "10" && off != "11" {
				t.Errorf("dead letter %q has offset header %q", r.Value, off)
			}
		}
		readExactlyOnce(t, vals, []string{"bad-1", "bad-2"})
	})
}

func TestOpenErrors(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("one", 2); err != nil {
		t.Fatal(err)
	}
	cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"one"}, Deserializer: asString}
	tryOpen := func(c SourceConfig[string], info runtime.TaskInfo, restored []byte) error {
		s, err := newSourceInstance(c)
		if err != nil {
			return err
		}
		defer s.Close()
		return s.Open(testCtx(t), info, restored)
	}
	missing := cfg
	missing.Topics = []string{"nope"}
	if err := tryOpen(missing, task(0, 1), nil); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("missing topic: %v", err)
	}
	other := topicPartition{"one", 0}
	if owner(other, 2) == 0 {
		other.partition = 1
	}
	foreign := sourceEncodeState(sourceState{next: map[topicPartition]int64{other: 3}})
	if err := tryOpen(cfg, task(0, 2), foreign); err == nil || !strings.Contains(err.Error(), other.String()) || !strings.Contains(err.Error(), "parallelism") {
		t.Errorf("restoring a partition owned by another subtask: %v", err)
	}
	gone := sourceEncodeState(sourceState{next: map[topicPartition]int64{{"one", 2}: 3}})
	if err := tryOpen(cfg, task(0, 1), gone); err == nil || !strings.Contains(err.Error(), "one/2") || !strings.Contains(err.Error(), "no longer exists") {
		t.Errorf("restoring a partition that does not exist: %v", err)
	}
	if err := tryOpen(cfg, task(0, 1), []byte{9}); err == nil {
		t.Error("restoring corrupt state succeeded")
	}
	if err := tryOpen(cfg, task(2, 2), nil); err == nil {
		t.Error("subtask out of range accepted")
	}
}

func TestSourceConfigValidate(t *testing.T) {
	ok := SourceConfig[string]{Brokers: []string{"x:1"}, Topics: []string{"t"}, Deserializer: asString}
	if _, err := newSourceInstance(ok); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*SourceConfig[string]){
		"no brokers":                  func(c *SourceConfig[string]) { c.Brokers = nil },
		"no topics":                   func(c *SourceConfig[string]) { c.Topics = nil },
		"dup topic":                   func(c *SourceConfig[string]) { c.Topics = []string{"t", "t"} },
		"no deserializer":             func(c *SourceConfig[string]) { c.Deserializer = nil },
		"dlq without name":            func(c *SourceConfig[string]) { c.OnDecodeError = DeadLetter },
		"dlq is source":               func(c *SourceConfig[string]) { c.OnDecodeError = DeadLetter; c.DeadLetterTopic = "t" },
		"name without dlq":            func(c *SourceConfig[string]) { c.DeadLetterTopic = "d" },
		"bad mode":                    func(c *SourceConfig[string]) { c.Mode = 7 },
		"negative discovery interval": func(c *SourceConfig[string]) { c.PartitionDiscoveryInterval = -time.Second },
	} {
		c := ok
		mut(&c)
		if _, err := newSourceInstance(c); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// BenchmarkReadAll measures reading 100k records of 100 bytes from a local
// devbroker, 4 partitions, one subtask.
func BenchmarkReadAll(b *testing.B) {
	br, err := devbroker.Start(devbroker.Config{Addr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	if err := br.CreateTopic("bench", 4); err != nil {
		b.Fatal(err)
	}
	const n = 100_000
	w := &kafkago.Writer{Addr: kafkago.TCP(br.Addr()), Topic: "bench", Balancer: &kafkago.RoundRobin{}, BatchSize: 5000, BatchTimeout: time.Millisecond}
	msgs := make([]kafkago.Message, n)
	for i := range msgs {
		msgs[i] = kafkago.Message{Value: fmt.Appendf(nil, "%0100d", i)}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		b.Fatal(err)
	}
	w.Close()
	cfg := SourceConfig[int]{Brokers: []string{br.Addr()}, Topics: []string{"bench"}, Mode: StopAtEnd,
		Deserializer: func(r Record) (int, error) { return len(r.Value), nil }}
	b.SetBytes(n * 100)
	b.ResetTimer()
	for range b.N {
		s, err := newSourceInstance(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Open(context.Background(), task(0, 1), nil); err != nil {
			b.Fatal(err)
		}
		got := 0
		c := runtime.CollectorFunc[int](func(int) { got++ })
		for {
			err := s.Read(context.Background(), c)
			if errors.Is(err, runtime.ErrEndOfInput) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
		if got != n {
			b.Fatalf("read %d records, want %d", got, n)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}

// newSourceInstance makes one source instance of cfg, as the runtime does
// for a subtask.
func newSourceInstance[T any](cfg SourceConfig[T]) (*source[T], error) {
	newSource, err := NewSource(cfg)
	if err != nil {
		return nil, err
	}
	s, err := newSource()
	if err != nil {
		return nil, err
	}
	return s.(*source[T]), nil
}

// timesCollector records the event times a source gives with CollectAt, as
// the collector of a source with runtime.WithWatermarks does.
type timesCollector struct {
	at    map[string]int64
	plain int // records emitted with Collect, without a time
}

func (c *timesCollector) Collect(string)               { c.plain++ }
func (c *timesCollector) CollectAt(v string, ts int64) { c.at[v] = ts }

// TestEventTimeIsKafkaTimestamp checks that a source whose collector takes
// event times gives each record's Kafka timestamp.
func TestEventTimeIsKafkaTimestamp(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("times", 2); err != nil {
		t.Fatal(err)
	}
	base := time.UnixMilli(1_700_000_000_000)
	vs := values("t", 20)
	msgs := make([]kafkago.Message, len(vs))
	want := map[string]int64{}
	for i, v := range vs {
		at := base.Add(time.Duration(i*7) * time.Second)
		msgs[i] = kafkago.Message{Key: []byte(v), Value: []byte(v), Time: at}
		want[v] = at.UnixMilli()
	}
	w := &kafkago.Writer{Addr: kafkago.TCP(b.Addr()), Topic: "times", Balancer: &kafkago.Hash{}, RequiredAcks: kafkago.RequireAll, BatchTimeout: time.Millisecond}
	if err := w.WriteMessages(testCtx(t), msgs...); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	s := openSource(t, SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"times"}, Deserializer: asString, Mode: StopAtEnd}, task(0, 1), nil)
	c := &timesCollector{at: map[string]int64{}}
	for err := error(nil); !errors.Is(err, runtime.ErrEndOfInput); {
		if err = s.Read(testCtx(t), c); err != nil && !errors.Is(err, runtime.ErrEndOfInput) {
			t.Fatalf("Read: %v", err)
		}
	}
	if c.plain != 0 {
		t.Errorf("%d records emitted without their time", c.plain)
	}
	if !maps.Equal(c.at, want) {
		t.Errorf("event times %v, want the records' Kafka timestamps %v", c.at, want)
	}
}
