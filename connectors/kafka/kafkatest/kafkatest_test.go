package kafkatest_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/connectors/kafka/kafkatest"
	"github.com/weirstream/weir/weirtest/verify"
)

// TestProduceThenRead checks that what Produce writes is what a
// read_committed reader of the topic sees, keys in one partition each.
func TestProduceThenRead(t *testing.T) {
	b, err := kafkatest.Start(kafkatest.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.CreateTopic("in", 2); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	msgs := []kafka.Message{
		{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("2")},
		{Key: []byte("a"), Value: []byte("3")}, {Value: []byte("4")},
	}
	if err := b.Produce(ctx, "in", msgs...); err != nil {
		t.Fatal(err)
	}
	got := map[string]int32{}
	err = verify.ReadTopic(ctx, verify.ReadConfig{Brokers: b.Brokers(), Topic: "in"}, func(r verify.Record) {
		got[string(r.Value)] = r.Partition
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(msgs) {
		t.Fatalf("read %v, want the values 1 to 4", got)
	}
	if got["1"] != got["3"] {
		t.Errorf("key a in partitions %d and %d, want one", got["1"], got["3"])
	}
}

func TestClosed(t *testing.T) {
	b, err := kafkatest.Start(kafkatest.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.CreateTopic("t", 1); !errors.Is(err, kafkatest.ErrClosed) {
		t.Fatalf("CreateTopic after Close: %v, want ErrClosed", err)
	}
}

func TestStartRejectsUnspecifiedHost(t *testing.T) {
	if _, err := kafkatest.Start(kafkatest.Config{Addr: "0.0.0.0:0"}); err == nil {
		t.Fatal("Start on 0.0.0.0 succeeded; clients could not dial the advertised host")
	}
}
