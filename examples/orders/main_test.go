package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/connectors/kafka/kafkatest"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/weirtest/orders"
	"github.com/weirstream/weir/weirtest/verify"
)

var quiet = slog.New(slog.DiscardHandler)

// TestEmbedded runs the example as 'go run ./examples/orders' does, smaller,
// and checks what it reports against the sample data.
func TestEmbedded(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"--sample-orders", "500", "--sample-seed", "7",
		"--checkpoint-interval", "50ms", "--log-level", "warn"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	sample, err := orders.Generate(7, 500, 100, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	unique, dups := orders.Count(sample)
	if dups == 0 {
		t.Fatal("sample has no duplicates; the test proves nothing")
	}
	out := stdout.String()
	for _, want := range []string{
		fmt.Sprintf("orders in: %d, duplicates dropped: %d, totals written: %d\n", len(sample), dups, unique),
		fmt.Sprintf("count: %d records, as expected\nOK\n", unique),
		"final totals: all 100 customers match",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// broker starts a broker with single-partition input and output topics, so
// that the order of processing is the order of the input.
func broker(t *testing.T) *kafkatest.Broker {
	t.Helper()
	b, err := kafkatest.Start(kafkatest.Config{Partitions: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	for _, topic := range []string{"orders", "customer-totals", "dead"} {
		if err := b.CreateTopic(topic, 1); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func produceRaw(t *testing.T, b *kafkatest.Broker, values ...string) {
	t.Helper()
	msgs := make([]kafka.Message, len(values))
	for i, v := range values {
		msgs[i] = kafka.Message{Value: []byte(v)}
	}
	if err := b.Produce(t.Context(), "orders", msgs...); err != nil {
		t.Fatal(err)
	}
}

func order(id, customer string, cents int64) string {
	v, _ := json.Marshal(Order{OrderID: id, Customer: customer, AmountCents: cents})
	return string(v)
}

func testConfig(b *kafkatest.Broker) jobConfig {
	return jobConfig{
		Brokers: b.Brokers(), InputTopic: "orders", OutputTopic: "customer-totals",
		StopAtEnd: true, DedupTTL: 24 * time.Hour, TransactionalIDPrefix: "test-orders",
	}
}

func runJob(t *testing.T, cfg jobConfig, st *stats) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	return runtime.Run(ctx, buildPipeline(cfg, st), runtime.Config{
		CheckpointDir: t.TempDir(), CheckpointInterval: 50 * time.Millisecond, Logger: quiet,
	})
}

// output returns the committed output records in order.
func output(t *testing.T, b *kafkatest.Broker, topic string) []CustomerTotal {
	t.Helper()
	var out []CustomerTotal
	err := verify.ReadTopic(t.Context(), verify.ReadConfig{Brokers: b.Brokers(), Topic: topic}, func(r verify.Record) {
		var ct CustomerTotal
		if err := json.Unmarshal(r.Value, &ct); err != nil {
			ct.OrderID = "raw:" + string(r.Value)
		}
		out = append(out, ct)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDedup checks that copies of an order within the TTL are dropped and
// the running totals count each order once. (Expiry after the TTL is
// operators.Dedup's and tested there with a controlled clock.)
func TestDedup(t *testing.T) {
	b := broker(t)
	in := []string{order("A", "c1", 100), order("B", "c1", 10), order("B", "c1", 10)}
	for i := range 12 {
		in = append(in, order(fmt.Sprintf("F%02d", i), "c2", 1))
	}
	in = append(in, order("A", "c1", 100))
	produceRaw(t, b, in...)

	cfg := testConfig(b)
	cfg.DedupTTL = time.Hour
	var st stats
	if err := runJob(t, cfg, &st); err != nil {
		t.Fatal(err)
	}
	got := output(t, b, "customer-totals")
	var ids []string
	var lastC1 int64
	for _, ct := range got {
		ids = append(ids, ct.OrderID)
		if ct.Customer == "c1" {
			lastC1 = ct.TotalCents
		}
	}
	slices.Sort(ids)
	want := "A B F00 F01 F02 F03 F04 F05 F06 F07 F08 F09 F10 F11"
	if strings.Join(ids, " ") != want {
		t.Errorf("output order ids %q, want %q", strings.Join(ids, " "), want)
	}
	if lastC1 != 110 {
		t.Errorf("last total of c1 = %d, want 110 (A and B once each)", lastC1)
	}
	if st.dropped() != 2 {
		t.Errorf("dropped %d duplicates, want 2", st.dropped())
	}
}

// TestBadInput checks the three policies for input that is not an order.
func TestBadInput(t *testing.T) {
	good := []string{order("A", "c1", 5), order("B", "c2", 7)}
	bad := `{"order_id": 12`
	input := []string{good[0], bad, good[1], `{"customer": "c3"}`}

	t.Run("fail", func(t *testing.T) {
		b := broker(t)
		produceRaw(t, b, input...)
		var st stats
		err := runJob(t, testConfig(b), &st)
		var de *kafka.DecodeError
		if !errors.As(err, &de) || de.Topic != "orders" || de.Partition != 0 || de.Offset != 1 {
			t.Fatalf("job error %v, want a decode error of orders/0 at offset 1", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "orders/0 at offset 1") {
			t.Errorf("error %q does not name topic, partition and offset", msg)
		}
	})
	// runPolicy runs the job over input with o's bad-input policy and checks
	// that the good orders came through.
	runPolicy := func(t *testing.T, o *options) *kafkatest.Broker {
		b := broker(t)
		produceRaw(t, b, input...)
		cfg, err := o.jobConfig(b.Brokers(), runtime.Config{})
		if err != nil {
			t.Fatal(err)
		}
		merged := testConfig(b)
		merged.OnBadInput, merged.DeadLetterTopic = cfg.OnBadInput, cfg.DeadLetterTopic
		var st stats
		if err := runJob(t, merged, &st); err != nil {
			t.Fatal(err)
		}
		if got := output(t, b, "customer-totals"); len(got) != 2 {
			t.Errorf("output %+v, want the 2 good orders", got)
		}
		return b
	}
	t.Run("skip", func(t *testing.T) {
		runPolicy(t, &options{onBadInput: "skip", dedupTTL: time.Hour})
	})
	t.Run("dead-letter", func(t *testing.T) {
		b := runPolicy(t, &options{onBadInput: "dead-letter", deadLetter: "dead", dedupTTL: time.Hour})
		dead := output(t, b, "dead")
		if len(dead) != 2 || dead[0].OrderID != "raw:"+bad {
			t.Errorf("dead-letter topic holds %+v, want the 2 bad records, %q first", dead, bad)
		}
	})
	t.Run("flag", func(t *testing.T) {
		o := &options{onBadInput: "ignore", dedupTTL: time.Hour}
		if _, err := o.jobConfig(nil, runtime.Config{}); err == nil || !strings.Contains(err.Error(), "--on-bad-input") {
			t.Errorf("jobConfig accepted --on-bad-input ignore: %v", err)
		}
	})
}

// TestTransactionFlags checks that --transaction-timeout and
// --expected-restart-time reach the sink, and are checked against each other.
func TestTransactionFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.txnTimeout != kafka.DefaultTransactionTimeout || o.restartTime != kafka.DefaultExpectedRestartTime {
		t.Errorf("defaults %v and %v, want the sink's", o.txnTimeout, o.restartTime)
	}
	o, err = parseFlags([]string{"--transaction-timeout", "2m", "--expected-restart-time", "20s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := o.jobConfig([]string{"127.0.0.1:1"}, runtime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TransactionTimeout != 2*time.Minute || cfg.ExpectedRestartTime != 20*time.Second {
		t.Errorf("job config has %v and %v, want 2m and 20s", cfg.TransactionTimeout, cfg.ExpectedRestartTime)
	}
	// The sink gets them: it refuses a timeout within the restart time.
	cfg.ExpectedRestartTime = 2 * time.Minute
	if err := buildPipeline(cfg, &stats{}).Err(); err == nil || !strings.Contains(err.Error(), "TransactionTimeout 2m0s must exceed ExpectedRestartTime 2m0s") {
		t.Errorf("pipeline with the timeout equal to the restart time: %v", err)
	}
	_, err = parseFlags([]string{"--transaction-timeout", "30s"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--transaction-timeout 30s must exceed --expected-restart-time 1m0s") {
		t.Errorf("--transaction-timeout 30s with the default restart time: %v", err)
	}
}

// TestCommitGroup checks that --commit-group leaves the job's input
// offsets in the group, where lag tools read them.
func TestCommitGroup(t *testing.T) {
	b := broker(t)
	produceRaw(t, b, order("A", "c1", 1), order("B", "c1", 2), order("C", "c2", 3))
	o, err := parseFlags([]string{"--brokers", b.Addr(), "--commit-group", "orders-lag"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := o.jobConfig(b.Brokers(), runtime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.StopAtEnd, cfg.TransactionalIDPrefix = true, "test-orders"
	if err := runJob(t, cfg, &stats{}); err != nil {
		t.Fatal(err)
	}
	cl := &kafkago.Client{Addr: kafkago.TCP(b.Addr())}
	resp, err := cl.OffsetFetch(t.Context(), &kafkago.OffsetFetchRequest{GroupID: "orders-lag", Topics: map[string][]int{"orders": {0}}})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		t.Fatal(err)
	}
	if ps := resp.Topics["orders"]; len(ps) != 1 || ps[0].CommittedOffset != 3 {
		t.Fatalf("group orders-lag holds %+v for topic orders, want offset 3 (all input read)", ps)
	}
}

// TestGroupNeedsBrokers checks that --group without --brokers is refused
// with a reason: the embedded broker cannot be shared by processes.
func TestGroupNeedsBrokers(t *testing.T) {
	var stderr strings.Builder
	code := run(context.Background(), []string{"--group", "g", "--checkpoint-dir", t.TempDir()}, io.Discard, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), `--group "g" needs --brokers`) {
		t.Errorf("--group without --brokers: exit %d, stderr %q; want 2 and an error naming --brokers", code, stderr.String())
	}
}
