package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// Event is an input record of the counting job.
type Event struct {
	Key string `json:"key"`
	Seq int64  `json:"seq"`
}

// Count is an output record of the counting job: the running count and sum
// of seqs of Key after the record Seq.
type Count struct {
	Key   string `json:"key"`
	Seq   int64  `json:"seq"`
	Count int64  `json:"count"`
	Sum   int64  `json:"sum"`
}

// Check reports whether c is what a correct job emits for its input record.
func (c Count) Check() error {
	if c.Count != c.Seq+1 || c.Sum != c.Seq*(c.Seq+1)/2 {
		return fmt.Errorf("key %q seq %d: count %d sum %d, want count %d sum %d",
			c.Key, c.Seq, c.Count, c.Sum, c.Seq+1, c.Seq*(c.Seq+1)/2)
	}
	return nil
}

// JobConfig configures the counting job.
type JobConfig struct {
	Brokers               []string
	InputTopic            string
	OutputTopic           string
	SinkMode              kafka.SinkMode
	TransactionalIDPrefix string
	// SinkBatchSize is the sink's per-partition batch (default: the sink's).
	SinkBatchSize int
	// RatePerSecond, if positive, paces each source subtask to about this
	// many records per second, so that a test can kill the job mid-run.
	RatePerSecond int
	// MaxBytesPerRead bounds a source Read (default: the source's). Small
	// reads let barriers through often when the job is paced.
	MaxBytesPerRead int32
}

type accumulator struct{ Count, Sum int64 }

type accCodec struct{}

func (accCodec) Append(dst []byte, a accumulator) []byte {
	b, _ := json.Marshal(a)
	return append(dst, b...)
}

func (accCodec) Decode(b []byte) (accumulator, error) {
	var a accumulator
	err := json.Unmarshal(b, &a)
	return a, err
}

// BuildCountJob adds the counting job to p: source "input", an optional
// pacing operator, a Process "count" keyed by Event.Key, and sink "output".
func BuildCountJob(p *runtime.Pipeline, cfg JobConfig) {
	srcCfg := kafka.SourceConfig[Event]{
		Brokers:         cfg.Brokers,
		Topics:          []string{cfg.InputTopic},
		Mode:            kafka.StopAtEnd,
		Deserializer:    decodeEvent,
		RetryTimeout:    time.Minute,
		MaxBytesPerRead: cfg.MaxBytesPerRead,
	}
	sinkCfg := kafka.SinkConfig[Count]{
		Brokers:               cfg.Brokers,
		Topic:                 cfg.OutputTopic,
		Mode:                  cfg.SinkMode,
		TransactionalIDPrefix: cfg.TransactionalIDPrefix,
		TransactionTimeout:    5 * time.Minute,
		ExpectedRestartTime:   10 * time.Second,
		BatchSize:             cfg.SinkBatchSize,
		Encode: func(c Count) (kafka.Message, error) {
			v, err := json.Marshal(c)
			return kafka.Message{Key: []byte(c.Key), Value: v}, err
		},
	}
	newSource, err := kafka.NewSource(srcCfg)
	if err != nil {
		p.Fail(err)
		return
	}
	newSink, err := kafka.NewSink(sinkCfg)
	if err != nil {
		p.Fail(err)
		return
	}
	events := runtime.From(p, "input", newSource)
	if cfg.RatePerSecond > 0 {
		events = Pace(events, cfg.RatePerSecond)
	}
	counts := operators.Process(operators.KeyBy(events, func(e Event) string { return e.Key }), "count",
		func(sc *operators.SetupContext[string]) (operators.ProcessFunc[string, Event, Count], error) {
			acc, err := state.NewValue(sc.Scope, "acc", state.Codec[accumulator](accCodec{}))
			if err != nil {
				return nil, err
			}
			return func(ctx *operators.Context[string], e Event, out runtime.Collector[Count]) error {
				a, _ := acc.Get()
				a.Count++
				a.Sum += e.Seq
				acc.Put(a)
				out.Collect(Count{Key: ctx.Key(), Seq: e.Seq, Count: a.Count, Sum: a.Sum})
				return nil
			}, nil
		})
	runtime.To(counts, "output", newSink)
}

func decodeEvent(r kafka.Record) (Event, error) {
	var e Event
	if err := json.Unmarshal(r.Value, &e); err != nil {
		return e, err
	}
	if e.Key == "" {
		return e, errors.New("no key")
	}
	return e, nil
}

// Pace passes s through at about rate records per second per subtask.
func Pace[T any](s runtime.Stream[T], rate int) runtime.Stream[T] {
	return runtime.Apply(s, s.Pipeline().UniqueName("Pace"), func() runtime.Operator[T, T] {
		return &pacer[T]{per: time.Second / time.Duration(rate)}
	})
}

type pacer[T any] struct {
	runtime.OperatorBase
	per   time.Duration
	start time.Time
	n     int64
	out   runtime.Collector[T]
}

func (o *pacer[T]) Open(_ *runtime.OperatorContext, out runtime.Collector[T]) error {
	o.out = out
	return nil
}

func (o *pacer[T]) Process(rec T) {
	if o.start.IsZero() {
		o.start = time.Now()
	}
	o.n++
	// NB: pacing, not synchronization: the job is slowed down so that a
	// crash test can interrupt it at many points.
	if o.n%64 == 0 {
		if ahead := time.Duration(o.n)*o.per - time.Since(o.start); ahead > 0 {
			time.Sleep(ahead)
		}
	}
	o.out.Collect(rec)
}
