package verify

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/internal/devbroker"
)

func TestReadTopicReadCommitted(t *testing.T) {
	b, err := devbroker.Start(devbroker.Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.CreateTopic("out", 3); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	w := &kafkago.Writer{Addr: kafkago.TCP(b.Addr()), Topic: "out", Balancer: &kafkago.Hash{}, BatchTimeout: time.Millisecond}
	var msgs []kafkago.Message
	for i := range 100 {
		k := fmt.Sprintf("k%d", i%5)
		msgs = append(msgs, kafkago.Message{Key: []byte(k), Value: fmt.Appendf(nil, `{"k":%q,"n":%d}`, k, i/5)})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	// An aborted transaction re-sends a record: read_committed must not see it.
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.TransactionalID("verify-test"), kgo.DefaultProduceTopic("out"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("k0"), Value: []byte(`{"k":"k0","n":0}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}

	c := NewChecker(Options{Key: "k", Seq: "n", Numeric: true, Expect: 100})
	if err := ReadTopic(ctx, ReadConfig{Brokers: []string{b.Addr()}, Topic: "out"}, c.Add); err != nil {
		t.Fatal(err)
	}
	if r := c.Report(); !r.OK() {
		var sb strings.Builder
		_ = r.Write(&sb, 10)
		t.Fatalf("clean topic failed verification:\n%s", sb.String())
	}
}

func TestReadTopicUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	start := time.Now()
	err = ReadTopic(context.Background(), ReadConfig{Brokers: []string{addr}, Topic: "x", DialTimeout: 500 * time.Millisecond, RetryTimeout: time.Second}, func(Record) {})
	if err == nil {
		t.Fatal("ReadTopic from a closed port succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("ReadTopic took %v to fail", d)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name the broker", err)
	}
	if testing.Verbose() {
		t.Logf("error: %v", err)
	}
}
