package engine_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/internal/jobtest"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

type event struct {
	Key int64
	TS  int64 // ms
}

const (
	etEvents   = 20000
	etKeys     = 7
	etDisorder = 200 // ms: timestamps arrive up to this much out of order
	etWindow   = 1000
)

// eventAt is event i: 10 ms apart, jittered by up to etDisorder.
func eventAt(i uint64) event {
	jitter := int64((i * 0x9E3779B97F4A7C15) >> 56 % etDisorder)
	return event{Key: int64(i % etKeys), TS: 1_000_000 + int64(i)*10 - jitter}
}

// expectedWindowCounts is the tumbling-window count per key computed
// directly.
func expectedWindowCounts() []string {
	counts := map[[2]int64]int{}
	for i := range uint64(etEvents) {
		e := eventAt(i)
		counts[[2]int64{e.Key, e.TS / etWindow * etWindow}]++
	}
	var out []string
	for k, c := range counts {
		out = append(out, fmt.Sprintf("%d@%d=%d", k[0], k[1], c))
	}
	slices.Sort(out)
	return out
}

// Where windowCountPipeline assigns event time.
type assignAt uint8

const (
	atSource      assignAt = iota // runtime.WithWatermarks
	afterDecoding                 // runtime.AssignTimestamps after an operator
)

func (a assignAt) String() string { return [...]string{"source", "after-decoding"}[a] }

// windowCountPipeline counts events per key and tumbling window with
// event-time timers: a window's count is emitted when the watermark passes
// its end.
func windowCountPipeline(out *memOutput, resume <-chan struct{}, violations *atomic.Int64, at assignAt) *runtime.Pipeline {
	p := runtime.NewPipeline("windows")
	gen := must(generator.NewSource(generator.SourceConfig[event]{Record: eventAt, Count: etEvents, ChunkSize: 50}))
	strategy := runtime.BoundedOutOfOrderness(func(e event) int64 { return e.TS }, etDisorder*time.Millisecond)
	newSource := func() (runtime.Source[event], error) {
		src, err := gen()
		return &pausing[event]{Source: src, resume: resume, half: etEvents / 2, seq: func(e event) uint64 { return uint64(e.TS) }}, err
	}
	var events runtime.Stream[event]
	switch at {
	case atSource:
		events = runtime.From(p, "events", newSource, runtime.WithWatermarks(strategy))
	case afterDecoding:
		// The source's records carry no event time until decoded; the
		// source's own watermarks (none here) would be replaced.
		encoded := runtime.From(p, "events", func() (runtime.Source[[2]int64], error) {
			src, err := newSource()
			return &mapSource[event, [2]int64]{src, func(e event) [2]int64 { return [2]int64{e.Key, e.TS} }}, err
		})
		decoded := runtime.Apply(encoded, "decode", func() runtime.Operator[[2]int64, event] {
			return &mapOperator[[2]int64, event]{f: func(v [2]int64) event { return event{Key: v[0], TS: v[1]} }}
		})
		events = runtime.AssignTimestamps(decoded, "timestamps", strategy)
	}
	counts := operators.ProcessWithTimers(operators.KeyBy(events, func(e event) int64 { return e.Key }), "window-count",
		func(setup *operators.SetupContext[int64]) (operators.TimedProcessFunc[int64, event, string], operators.TimerFunc[int64, string], error) {
			windows, err := state.NewMap(setup.Scope, "windows", state.Int64, state.Int64)
			if err != nil {
				return nil, nil, err
			}
			process := func(ctx *operators.TimerContext[int64], e event, _ runtime.Collector[string]) error {
				if e.TS <= ctx.Watermark() {
					violations.Add(1) // late: the strategy's bound was violated
				}
				start := e.TS / etWindow * etWindow
				n, _ := windows.Get(start)
				windows.Put(start, n+1)
				ctx.Timers().RegisterEventTime(start + etWindow - 1)
				return nil
			}
			onTimer := func(ctx *operators.TimerContext[int64], t runtime.Timer, out runtime.Collector[string]) error {
				key := ctx.Key()
				if t.Domain != runtime.EventTime || ctx.Watermark() < t.At {
					violations.Add(1) // fired before the watermark passed it
				}
				start := t.At + 1 - etWindow
				n, _ := windows.Get(start)
				windows.Delete(start)
				out.Collect(fmt.Sprintf("%d@%d=%d", key, start, n))
				return nil
			}
			return process, onTimer, nil
		})
	runtime.To(counts, "sink", newMemSink(out))
	return p
}

// mapSource emits f of its source's records.
type mapSource[In, Out any] struct {
	runtime.Source[In]
	f func(In) Out
}

func (s *mapSource[In, Out]) Read(ctx context.Context, out runtime.Collector[Out]) error {
	return s.Source.Read(ctx, runtime.CollectorFunc[In](func(v In) { out.Collect(s.f(v)) }))
}

// mapOperator emits f of each record, through the runtime's own Operator
// contract (package operators is not needed for a decode step).
type mapOperator[In, Out any] struct {
	runtime.OperatorBase
	f   func(In) Out
	out runtime.Collector[Out]
}

func (o *mapOperator[In, Out]) Open(_ *runtime.OperatorContext, out runtime.Collector[Out]) error {
	o.out = out
	return nil
}
func (o *mapOperator[In, Out]) Process(v In) { o.out.Collect(o.f(v)) }

// pausing is pausingSource for any record type: it holds back records past
// half (by seq) until resume is closed.
type pausing[T any] struct {
	runtime.Source[T]
	resume <-chan struct{}
	half   uint64
	seq    func(T) uint64
	held   bool
}

func (s *pausing[T]) Read(ctx context.Context, out runtime.Collector[T]) error {
	if s.held {
		select {
		case <-s.resume:
		case <-time.After(10 * time.Millisecond):
			return nil
		}
	}
	return s.Source.Read(ctx, runtime.CollectorFunc[T](func(v T) {
		if s.seq(v) >= 1_000_000+s.half*10 {
			s.held = true
		}
		out.Collect(v)
	}))
}

func TestEventTimeTimersFireWithWatermarks(t *testing.T) {
	for _, at := range []assignAt{atSource, afterDecoding} {
		for _, par := range []int{1, 3} {
			t.Run(fmt.Sprintf("at=%s/parallelism=%d", at, par), func(t *testing.T) {
				out := &memOutput{}
				var violations atomic.Int64
				resume := make(chan struct{})
				close(resume)
				err := runtime.Run(context.Background(), windowCountPipeline(out, resume, &violations, at), runtime.Config{
					CheckpointDir: t.TempDir(), CheckpointInterval: 10 * time.Millisecond, Parallelism: par, BatchSize: 32,
				})
				if err != nil {
					t.Fatal(err)
				}
				if v := violations.Load(); v != 0 {
					t.Fatalf("%d watermark violations", v)
				}
				got := out.lines()
				slices.Sort(got)
				if want := expectedWindowCounts(); !slices.Equal(got, want) {
					t.Fatalf("window counts differ: got %d lines, want %d\ngot  %v\nwant %v", len(got), len(want), head(got), head(want))
				}
			})
		}
	}
}

// TestTimersSurviveRestart stops the job while windows are pending (their
// timers registered, not fired), restarts it from the final checkpoint, and
// checks that the combined output is exactly an uninterrupted run's.
func TestTimersSurviveRestart(t *testing.T) {
	for _, at := range []assignAt{atSource, afterDecoding} {
		t.Run("at="+at.String(), func(t *testing.T) { testTimersSurviveRestart(t, at) })
	}
}

func testTimersSurviveRestart(t *testing.T, at assignAt) {
	dir := t.TempDir()
	out := &memOutput{}
	var violations atomic.Int64
	cfg := runtime.Config{CheckpointDir: dir, CheckpointInterval: 10 * time.Millisecond, Parallelism: 2, BatchSize: 32}

	var job *jobtest.Job
	var once sync.Once
	stopped := make(chan struct{})
	cfg.Events.CheckpointCompleted = func(runtime.CheckpointInfo) {
		once.Do(func() { go func() { <-stopped; job.Stop() }() })
	}
	job, err := jobtest.Start(context.Background(), windowCountPipeline(out, make(chan struct{}), &violations, at), cfg)
	if err != nil {
		t.Fatal(err)
	}
	close(stopped)
	if err := job.Wait(); err != nil {
		t.Fatal(err)
	}
	first := len(out.lines())
	if first == 0 || first >= len(expectedWindowCounts()) {
		t.Fatalf("first run emitted %d windows: the stop did not fall in the middle", first)
	}

	resume := make(chan struct{})
	close(resume)
	cfg.Events = runtime.EventListener{}
	job, err = jobtest.Start(context.Background(), windowCountPipeline(out, resume, &violations, at), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if job.RestoredFrom() == 0 {
		t.Fatal("second run did not restore")
	}
	if err := job.Wait(); err != nil {
		t.Fatal(err)
	}
	if v := violations.Load(); v != 0 {
		t.Fatalf("%d watermark violations", v)
	}
	got := out.lines()
	slices.Sort(got)
	if want := expectedWindowCounts(); !slices.Equal(got, want) {
		t.Fatalf("after a restart, window counts differ: got %d lines, want %d\ngot  %v\nwant %v", len(got), len(want), head(got), head(want))
	}
}

func head(s []string) []string { return s[:min(len(s), 8)] }
