package kafka

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/kafkatxn/kafkatest"
	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/state"
)

// TestDecodeValue reads JSON values with a JSONCodec's Decode method as
// DecodeValue, and applies the decode error policy to bad ones.
func TestDecodeValue(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("json", 2); err != nil {
		t.Fatal(err)
	}
	var vals, want []string
	for i := range 300 {
		vals = append(vals, fmt.Sprintf(`{"ID":%d,"Item":"o%d"}`, i, i))
		want = append(want, fmt.Sprintf("%d:o%d", i, i))
	}
	vals = append(vals, `{"ID":`, `{"ID":"x"}`)
	produce(t, b.Addr(), "json", 50, vals...)
	cfg := SourceConfig[order]{
		Brokers: []string{b.Addr()}, Topics: []string{"json"}, Mode: StopAtEnd,
		DecodeValue: state.JSON[order]().Decode, OnDecodeError: Skip,
	}
	s := openSource(t, cfg, task(0, 1), nil)
	var got []string
	for _, o := range drain(t, s) {
		got = append(got, fmt.Sprintf("%d:%s", o.ID, o.Item))
	}
	readExactlyOnce(t, got, want)
	if n := s.DecodeErrors(); n != 2 {
		t.Fatalf("DecodeErrors = %d, want 2", n)
	}

	cfg.Deserializer = func(Record) (order, error) { return order{}, nil }
	if _, err := NewSource(cfg); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("NewSource with Deserializer and DecodeValue = %v, want an error", err)
	}
	cfg.Deserializer, cfg.DecodeValue = nil, nil
	if _, err := NewSource(cfg); err == nil || !strings.Contains(err.Error(), "DecodeValue") {
		t.Fatalf("NewSource without a decoder = %v, want an error naming DecodeValue", err)
	}
}

// TestEncodeValue writes values of random sizes, some larger than the
// sink's value buffers, with a JSONCodec's Encode method as EncodeValue:
// every value committed must be the one written (a value appended later to
// the same buffer must not overwrite an earlier one).
func TestEncodeValue(t *testing.T) {
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	c := kafkatest.NewCluster(t, partitions, topic)
	codec := state.JSON[order]()
	cfg := SinkConfig[order]{
		Brokers: c.ListenAddrs(), Topic: topic, TransactionalIDPrefix: "json", Logger: quiet,
		EncodeValue: codec.Encode,
	}
	s := open(t, cfg, 0, nil)
	defer s.Close()
	var want []string
	for i := range 400 {
		n := rng.IntN(2000)
		if i%50 == 0 {
			n = valueBuffer + rng.IntN(1000)
		}
		o := order{ID: i, Item: strings.Repeat(string(rune('a'+i%26)), n)}
		want = append(want, string(codec.Append(nil, o)))
		if err := s.Write(t.Context(), o); err != nil {
			t.Fatal(err)
		}
	}
	preCommit(t, s, 1)
	commit(t, s, 1)
	slices.Sort(want)
	got := kafkatest.Values(readRecords(t, c, true), "")
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("seed %d: committed values differ from those written (%d read, %d written)", seed, len(got), len(want))
	}

	errEncode := errors.New("cannot encode")
	cfg.EncodeValue = func(dst []byte, o order) ([]byte, error) { return dst, errEncode }
	bad := open(t, cfg, 1, nil)
	defer bad.Close()
	if err := bad.Write(t.Context(), order{}); !errors.Is(err, errEncode) || !strings.Contains(err.Error(), topic) {
		t.Fatalf("Write with a failing EncodeValue = %v, want an error naming the topic and wrapping the cause", err)
	}

	cfg.Encode = func(order) (Message, error) { return Message{}, nil }
	if _, err := NewSink(cfg); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("NewSink with Encode and EncodeValue = %v, want an error", err)
	}
}
