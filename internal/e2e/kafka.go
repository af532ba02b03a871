package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/weirtest/verify"
)

// ProduceEvents writes n events to topic, spread round robin over keys keys
// "k-0" … "k-<keys-1>" with per-key sequences from 0, keyed by the key so
// that a key's events are in order in one partition. Record batches hold at
// most 200 records. It returns the number of
// events per key.
func ProduceEvents(ctx context.Context, brokers []string, topic string, n, keys int) (map[string]int64, error) {
	per := make(map[string]int64, keys)
	msgs := make([]kafkago.Message, n)
	for i := range n {
		k := fmt.Sprintf("k-%d", i%keys)
		v, err := json.Marshal(Event{Key: k, Seq: per[k]})
		if err != nil {
			return nil, err
		}
		per[k]++
		msgs[i] = kafkago.Message{Key: []byte(k), Value: v}
	}
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafkago.Hash{},
		RequiredAcks: kafkago.RequireAll,
		BatchSize:    200, // NB: small record batches, so that fetches can be small
		BatchBytes:   4 << 20,
		BatchTimeout: time.Millisecond,
	}
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		return nil, fmt.Errorf("e2e: produce %d events to %q: %w", n, topic, err)
	}
	return per, w.Close()
}

// Isolation is the isolation level ReadTopic reads with.
type Isolation = kafka.Isolation

// Isolation levels.
const (
	ReadCommitted   = kafka.ReadCommitted
	ReadUncommitted = kafka.ReadUncommitted
)

// ReadTopic calls fn for every record of topic from the earliest offset to
// the end captured when reading starts (the last stable offset under
// ReadCommitted, the high watermark under ReadUncommitted). Values passed to
// fn must not be retained.
func ReadTopic(ctx context.Context, brokers []string, topic string, iso Isolation, fn func(verify.Record)) error {
	if iso == ReadCommitted {
		return verify.ReadTopic(ctx, verify.ReadConfig{Brokers: brokers, Topic: topic}, fn)
	}
	newSource, err := kafka.NewSource(kafka.SourceConfig[verify.Record]{
		Brokers:   brokers,
		Topics:    []string{topic},
		Isolation: iso,
		Mode:      kafka.StopAtEnd,
		Deserializer: func(r kafka.Record) (verify.Record, error) {
			return verify.Record{Position: verify.Position{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}, Value: r.Value}, nil
		},
		RetryTimeout: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	src, err := newSource()
	if err != nil {
		return err
	}
	defer src.Close()
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = src.Open(octx, runtime.TaskInfo{Job: "e2e", Operator: "read", Parallelism: 1}, nil)
	cancel()
	if err != nil {
		return fmt.Errorf("e2e: read %q: %w", topic, err)
	}
	out := runtime.CollectorFunc[verify.Record](fn)
	for {
		switch err := src.Read(ctx, out); {
		case errors.Is(err, runtime.ErrEndOfInput):
			return nil
		case err != nil:
			return fmt.Errorf("e2e: read %q: %w", topic, err)
		}
	}
}

// Outcome is what CheckCounts found in the counting job's output.
type Outcome struct {
	Report verify.Report
	// Wrong lists output records whose count or sum disagrees with their seq.
	Wrong []string
	// Short lists keys whose last count is not their number of inputs.
	Short []string
}

// OK reports whether the output is exactly the input, once each, with
// correct aggregates.
func (o *Outcome) OK() bool { return o.Report.OK() && len(o.Wrong) == 0 && len(o.Short) == 0 }

// CheckCounts reads the counting job's output topic read_committed and
// checks it against the input: every (key, seq) once and no other record
// (package verify), count and sum of every record consistent with its seq,
// and the last count of every key equal to the key's number of inputs.
func CheckCounts(ctx context.Context, brokers []string, topic string, perKey map[string]int64) (*Outcome, error) {
	total := 0
	for _, n := range perKey {
		total += int(n)
	}
	c := verify.NewChecker(verify.Options{Key: "key", Seq: "seq", Numeric: true, Expect: total})
	last := map[string]int64{}
	var o Outcome
	err := ReadTopic(ctx, brokers, topic, ReadCommitted, func(r verify.Record) {
		c.Add(r)
		var cnt Count
		if json.Unmarshal(r.Value, &cnt) != nil {
			return // reported as malformed by the checker
		}
		if err := cnt.Check(); err != nil && len(o.Wrong) < 10 {
			o.Wrong = append(o.Wrong, fmt.Sprintf("%s: %v", r.Position, err))
		}
		last[cnt.Key] = cnt.Count // a key is in one partition, read in offset order
	})
	if err != nil {
		return nil, err
	}
	o.Report = c.Report()
	for k, n := range perKey {
		if last[k] != n {
			o.Short = append(o.Short, fmt.Sprintf("%s: last count %d, want %d", k, last[k], n))
		}
	}
	return &o, nil
}

// CountRecords returns the number of records of topic visible at iso.
func CountRecords(ctx context.Context, brokers []string, topic string, iso Isolation) (int, error) {
	n := 0
	err := ReadTopic(ctx, brokers, topic, iso, func(verify.Record) { n++ })
	return n, err
}
