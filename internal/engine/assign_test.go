package engine_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/discard"
	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/internal/jobtest"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
)

// stallingSource emits its records in the first Read, then nothing, and
// never ends: an unbounded input that went quiet.
type stallingSource struct {
	recs []int64
	done bool
}

func (s *stallingSource) Open(context.Context, runtime.TaskInfo, []byte) error { return nil }
func (s *stallingSource) Snapshot() ([]byte, error)                            { return nil, nil }
func (s *stallingSource) Close() error                                         { return nil }

func (s *stallingSource) Read(ctx context.Context, out runtime.Collector[int64]) error {
	if !s.done {
		s.done = true
		for _, r := range s.recs {
			out.Collect(r)
		}
		return nil
	}
	select { // nothing to read: do not spin
	case <-ctx.Done():
	case <-time.After(5 * time.Millisecond):
	}
	return nil
}

// watermarkWatch closes reached once its input watermark reaches target.
type watermarkWatch struct {
	runtime.OperatorBase
	target  int64
	reached chan struct{}
}

func (w *watermarkWatch) Open(*runtime.OperatorContext, runtime.Collector[int64]) error { return nil }
func (w *watermarkWatch) Process(int64)                                                 {}

func (w *watermarkWatch) OnWatermark(wm int64) {
	if wm >= w.target && wm != runtime.MaxWatermark {
		select {
		case <-w.reached:
		default:
			close(w.reached)
		}
	}
}

// TestAssignTimestampsIdleInput merges a stream whose records stop with
// one that never has any, each given event time mid-pipeline with an idle
// timeout: the quiet one's assigner receives no batch to act on, so only
// its clock can mark it idle and let the merged watermark advance.
func TestAssignTimestampsIdleInput(t *testing.T) {
	p := runtime.NewPipeline("idle")
	strategy := runtime.Monotonic(func(v int64) int64 { return v }).WithIdleTimeout(20 * time.Millisecond)
	busy := runtime.From(p, "busy", func() (runtime.Source[int64], error) {
		return &stallingSource{recs: []int64{10, 20, 100}}, nil
	})
	quiet := runtime.From(p, "quiet", func() (runtime.Source[int64], error) { return &stallingSource{}, nil })
	merged := runtime.Merge(runtime.AssignTimestamps(busy, "busy-ts", strategy), "merged",
		runtime.AssignTimestamps(quiet, "quiet-ts", strategy))
	reached := make(chan struct{})
	runtime.Apply(merged, "watch", func() runtime.Operator[int64, int64] {
		return &watermarkWatch{target: 99, reached: reached}
	})
	job, err := jobtest.Start(context.Background(), p, runtime.Config{
		CheckpointDir: t.TempDir(), CheckpointInterval: 10 * time.Millisecond, Parallelism: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		job.Stop()
		if err := job.Wait(); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-reached:
	case <-time.After(time.Minute): // 3000 idle timeouts: a stuck watermark, not a slow machine
		t.Fatal("the merged watermark never reached 99: the quiet input's assigner never turned idle")
	}
}

// lateDropper drops the odd records as if they were late.
type lateDropper struct {
	runtime.OperatorBase
	ctx *runtime.OperatorContext
	out runtime.Collector[int64]
}

func (d *lateDropper) Open(ctx *runtime.OperatorContext, out runtime.Collector[int64]) error {
	d.ctx, d.out = ctx, out
	return nil
}

func (d *lateDropper) Process(v int64) {
	if v%2 == 1 {
		d.ctx.DroppedLate(1)
		return
	}
	d.out.Collect(v)
}

// TestLateRecordsDroppedMetric checks that what operators count through
// OperatorContext.DroppedLate is exported per operator subtask.
func TestLateRecordsDroppedMetric(t *testing.T) {
	p := runtime.NewPipeline("late")
	recs := make([]int64, 100)
	for i := range recs {
		recs[i] = int64(i)
	}
	src := runtime.From(p, "src", func() (runtime.Source[int64], error) { return &stallingSource{recs: recs}, nil })
	kept := runtime.Apply(src, "drop", func() runtime.Operator[int64, int64] { return &lateDropper{} })
	runtime.Apply(kept, "after", func() runtime.Operator[int64, int64] { return &lateDropper{} })
	j := startJob(t, p, runtime.Config{CheckpointDir: t.TempDir(), MetricsAddr: "127.0.0.1:0", Parallelism: 1})
	eventually(t, time.Minute, "50 late records counted", func() bool {
		v, _ := value(scrape(t, j.MetricsAddr()), "weir_late_records_dropped_total", "operator", "drop", "subtask", "0")
		return v == 50
	})
	m := scrape(t, j.MetricsAddr())
	if v, ok := value(m, "weir_late_records_dropped_total", "operator", "after"); !ok || v != 0 {
		t.Errorf("operator after: weir_late_records_dropped_total = %v (present %v), want 0", v, ok)
	}
	if _, ok := value(m, "weir_late_records_dropped_total", "operator", "src"); ok {
		t.Error("a source has weir_late_records_dropped_total")
	}
}

// stampCheck counts the records whose OperatorContext.Timestamp differs
// from want(rec), then emits them with the timestamp set(rec).
type stampCheck struct {
	runtime.OperatorBase
	want, set func(event) int64
	wrong     *atomic.Int64
	ctx       *runtime.OperatorContext
	out       runtime.Collector[event]
}

func (c *stampCheck) Open(ctx *runtime.OperatorContext, out runtime.Collector[event]) error {
	c.ctx, c.out = ctx, out
	return nil
}

func (c *stampCheck) Process(e event) {
	if c.ctx.Timestamp() != c.want(e) {
		c.wrong.Add(1)
	}
	if c.set != nil {
		c.ctx.SetTimestamp(c.set(e))
	}
	c.out.Collect(e)
}

// windowEnds checks the timestamps of keyed records (which crossed a hashed
// edge and the keyed operator's prefetch group) and emits, per key and
// second, one event when the watermark passes the second's end.
type windowEnds struct {
	runtime.OperatorBase
	wrong *atomic.Int64
	ctx   *runtime.KeyedContext[int64]
	out   runtime.Collector[event]
}

func (w *windowEnds) Open(ctx *runtime.KeyedContext[int64], out runtime.Collector[event]) error {
	w.ctx, w.out = ctx, out
	return nil
}

func (w *windowEnds) Process(_ int64, e event) {
	if w.ctx.Timestamp() != e.TS+1 {
		w.wrong.Add(1)
	}
	w.ctx.Timers.RegisterEventTime(e.TS/etWindow*etWindow + etWindow - 1)
}

func (w *windowEnds) OnTimer(key int64, t runtime.Timer) { w.out.Collect(event{Key: key, TS: t.At}) }

// TestRecordTimestampsTravel checks that a record's event timestamp goes
// with it across a channel from AssignTimestamps, along chained calls, over
// a hashed edge into a keyed operator, and that records a timer emits carry
// the timer's time.
func TestRecordTimestampsTravel(t *testing.T) {
	for _, par := range []int{1, 3} {
		t.Run(fmt.Sprintf("parallelism=%d", par), func(t *testing.T) {
			var wrong atomic.Int64
			var fired discard.Counter
			p := runtime.NewPipeline("stamps")
			src := runtime.From(p, "events", must(generator.NewSource(generator.SourceConfig[event]{Record: eventAt, Count: 5000, ChunkSize: 50})))
			stamped := runtime.AssignTimestamps(src, "ts", runtime.BoundedOutOfOrderness(func(e event) int64 { return e.TS }, etDisorder*time.Millisecond))
			checked := runtime.Apply(stamped, "check", func() runtime.Operator[event, event] {
				return &stampCheck{wrong: &wrong, want: func(e event) int64 { return e.TS }, set: func(e event) int64 { return e.TS + 1 }}
			})
			keyed := operators.KeyBy(checked, func(e event) int64 { return e.Key })
			ends := runtime.ApplyKeyed(keyed, "windows", func() runtime.KeyedOperator[int64, event, event] {
				return &windowEnds{wrong: &wrong}
			})
			fromTimers := runtime.Apply(ends, "check-timers", func() runtime.Operator[event, event] {
				return &stampCheck{wrong: &wrong, want: func(e event) int64 { return e.TS }}
			})
			runtime.To(fromTimers, "sink", must(discard.NewSink(discard.SinkConfig[event]{Counter: &fired})))
			err := runtime.Run(context.Background(), p, runtime.Config{CheckpointDir: t.TempDir(), Parallelism: par, BatchSize: 32})
			if err != nil {
				t.Fatal(err)
			}
			if n := wrong.Load(); n != 0 {
				t.Fatalf("%d records with a wrong timestamp", n)
			}
			if fired.Count() == 0 {
				t.Fatal("no timer fired")
			}
		})
	}
}
