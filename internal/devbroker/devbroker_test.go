package devbroker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/weirstream/weir/internal/kafkatxn"
	"github.com/weirstream/weir/internal/kafkatxn/kafkatest"
)

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func start(t *testing.T, cfg Config) *Broker {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	cfg.Logger = quietLogger()
	b, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func produce(t *testing.T, addr, topic string, n int) {
	t.Helper()
	w := &kafka.Writer{
		Addr:                   kafka.TCP(addr),
		Topic:                  topic,
		Balancer:               &kafka.Hash{},
		RequiredAcks:           kafka.RequireAll,
		AllowAutoTopicCreation: true,
		BatchTimeout:           time.Millisecond,
	}
	defer w.Close()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%06d", i)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The first write may race the topic's auto-creation; kafka-go retries
	// internally, but the topic must exist before the writer caches metadata.
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("WriteMessages: %v", err)
	}
}

// consumeAll reads every partition of topic from offset 0 to its end with
// kafka-go and returns the values, sorted.
func consumeAll(t *testing.T, addr, topic string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatalf("ReadPartitions: %v", err)
	}
	var out []string
	for _, p := range parts {
		pc, err := kafka.DialLeader(ctx, "tcp", addr, topic, p.ID)
		if err != nil {
			t.Fatalf("DialLeader %d: %v", p.ID, err)
		}
		last, err := pc.ReadLastOffset()
		if err != nil {
			t.Fatalf("ReadLastOffset: %v", err)
		}
		next := int64(0)
		for next < last {
			if _, err := pc.Seek(next, kafka.SeekAbsolute); err != nil {
				t.Fatalf("Seek: %v", err)
			}
			_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
			batch := pc.ReadBatch(1, 1<<20)
			for {
				m, err := batch.ReadMessage()
				if err != nil {
					break
				}
				out = append(out, string(m.Value))
				next = m.Offset + 1
			}
			if err := batch.Close(); err != nil {
				t.Fatalf("partition %d batch: %v", p.ID, err)
			}
		}
		pc.Close()
	}
	sort.Strings(out)
	return out
}

func wantValues(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("v%06d", i)
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestProduceConsume(t *testing.T) {
	b := start(t, Config{Partitions: 4})
	if err := b.CreateTopic("events", 0); err != nil {
		t.Fatal(err)
	}
	produce(t, b.Addr(), "events", 500)
	if got := consumeAll(t, b.Addr(), "events"); !equal(got, wantValues(500)) {
		t.Fatalf("read back %d values, want 500", len(got))
	}
	conn, err := kafka.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions("events")
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 4 {
		t.Fatalf("topic has %d partitions, want the configured 4", len(parts))
	}
}

func TestAutoCreate(t *testing.T) {
	b := start(t, Config{Partitions: 2})
	produce(t, b.Addr(), "auto", 50)
	if got := consumeAll(t, b.Addr(), "auto"); !equal(got, wantValues(50)) {
		t.Fatalf("read back %d values, want 50", len(got))
	}
}

func TestDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b1 := start(t, Config{DataDir: dir})
	if err := b1.CreateTopic("durable", 3); err != nil {
		t.Fatal(err)
	}
	produce(t, b1.Addr(), "durable", 300)
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}

	b2 := start(t, Config{DataDir: dir})
	if got := consumeAll(t, b2.Addr(), "durable"); !equal(got, wantValues(300)) {
		t.Fatalf("after restart read back %d values, want 300", len(got))
	}
	// The restarted broker keeps appending after the reloaded data.
	produce(t, b2.Addr(), "durable", 10)
	if got := consumeAll(t, b2.Addr(), "durable"); len(got) != 310 {
		t.Fatalf("after restart and append read back %d values, want 310", len(got))
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{Addr: "nonsense"},
		{Addr: "0.0.0.0:0"},
		{Addr: "127.0.0.1:0", Partitions: -1},
		{Addr: "127.0.0.1:0", TransactionalIDExpiration: -time.Second},
		{Addr: "127.0.0.1:0", TransactionalIDExpiration: MaxTransactionalIDExpiration + time.Millisecond},
		{Addr: "127.0.0.1:0", GroupMinSessionTimeout: time.Millisecond},
		{Addr: "127.0.0.1:0", GroupMinSessionTimeout: 7 * time.Second},
	} {
		if _, err := Start(cfg); err == nil {
			t.Errorf("Start(%+v) succeeded, want an error", cfg)
		}
	}
}

// TestTransactionalIDExpiration checks that the broker forgets an idle
// transactional id after TransactionalIDExpiration, as Kafka does after
// transactional.id.expiration.ms: a commit resumed after that cannot find it.
func TestTransactionalIDExpiration(t *testing.T) {
	b := start(t, Config{TransactionalIDExpiration: 100 * time.Millisecond})
	if err := b.CreateTopic("expiring", 1); err != nil {
		t.Fatal(err)
	}
	cfg := kafkatxn.Config{Brokers: []string{b.Addr()}, TransactionalID: "idle", Logger: quietLogger()}
	p, err := kafkatxn.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Produce(t.Context(), "expiring", 0, []kafkatxn.Record{{Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitForgotten(t, []string{b.Addr()}, "idle")
	pid, epoch := p.ProducerID()
	if err := kafkatxn.ResumeCommit(t.Context(), cfg, pid, epoch); !errors.Is(err, kafka.InvalidProducerIDMapping) {
		t.Fatalf("commit resumed after the expiration: %v, want INVALID_PRODUCER_ID_MAPPING", err)
	}
}

func TestCloseTwice(t *testing.T) {
	b := start(t, Config{})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.CreateTopic("x", 1); err != ErrClosed {
		t.Fatalf("CreateTopic after Close = %v, want ErrClosed", err)
	}
}

// TestGroupMinSessionTimeout checks that a group member may ask for a
// session timeout below Kafka's 6s default only when the broker is
// configured to allow it.
func TestGroupMinSessionTimeout(t *testing.T) {
	for _, tc := range []struct {
		min  time.Duration
		want error
	}{
		{0, kafka.InvalidSessionTimeout},
		{time.Second, nil},
	} {
		b := start(t, Config{GroupMinSessionTimeout: tc.min})
		if got := joinGroup(t, b.Addr(), time.Second); !errors.Is(got, tc.want) {
			t.Errorf("broker with a minimum session timeout of %v: joining with 1s got %v, want %v", tc.min, got, tc.want)
		}
	}
}

// joinGroup joins a fresh group at addr with the given session timeout and
// returns the broker's error, if any.
func joinGroup(t *testing.T, addr string, session time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(addr)}
	req := &kafka.JoinGroupRequest{
		GroupID: "g", SessionTimeout: session, RebalanceTimeout: session, ProtocolType: "consumer",
		Protocols: []kafka.GroupProtocol{{Name: "range", Metadata: kafka.GroupProtocolSubscription{Topics: []string{"t"}}}},
	}
	for range 2 { // the first join of a new member may only hand out its member id
		resp, err := c.JoinGroup(ctx, req)
		if err != nil {
			t.Fatalf("join group: %v", err)
		}
		if !errors.Is(resp.Error, kafka.MemberIDRequired) {
			return resp.Error
		}
		req.MemberID = resp.MemberID
	}
	t.Fatal("join group: the broker kept asking for a member id")
	return nil
}
