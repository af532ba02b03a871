package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/internal/engine"
	"github.com/weirstream/weir/internal/jobtest"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// holding emits its source's records up to event time until, then calls
// held once and emits nothing more (the job is stopped meanwhile).
type holding struct {
	runtime.Source[event]
	until int64
	held  func()
	done  bool
}

func (s *holding) Read(ctx context.Context, out runtime.Collector[event]) error {
	if s.done {
		time.Sleep(time.Millisecond) // idle: let the barriers of the stop through
		return nil
	}
	return s.Source.Read(ctx, runtime.CollectorFunc[event](func(e event) {
		out.Collect(e)
		if e.TS >= s.until && !s.done {
			s.done = true
			s.held()
		}
	}))
}

// rescaledWindowPipeline is windowCountPipeline's job with the window
// operator at parallelism windows; its sources hold at event time until
// (none if 0) and call held once each has.
func rescaledWindowPipeline(out *memOutput, windows int, until int64, held func(), violations *atomic.Int64) *runtime.Pipeline {
	p := runtime.NewPipeline("windows")
	gen := must(generator.NewSource(generator.SourceConfig[event]{Record: eventAt, Count: etEvents, ChunkSize: 50}))
	strategy := runtime.BoundedOutOfOrderness(func(e event) int64 { return e.TS }, etDisorder*time.Millisecond)
	events := runtime.From(p, "events", func() (runtime.Source[event], error) {
		src, err := gen()
		if until == 0 {
			return src, err
		}
		return &holding{Source: src, until: until, held: held}, err
	}, runtime.WithWatermarks(strategy))
	counts := operators.ProcessWithTimers(operators.KeyBy(events, func(e event) int64 { return e.Key }), "window-count",
		func(setup *operators.SetupContext[int64]) (operators.TimedProcessFunc[int64, event, string], operators.TimerFunc[int64, string], error) {
			windows, err := state.NewMap(setup.Scope, "windows", state.Int64, state.Int64)
			if err != nil {
				return nil, nil, err
			}
			process := func(ctx *operators.TimerContext[int64], e event, _ runtime.Collector[string]) error {
				if e.TS <= ctx.Watermark() {
					violations.Add(1)
				}
				start := e.TS / etWindow * etWindow
				n, _ := windows.Get(start)
				windows.Put(start, n+1)
				ctx.Timers().RegisterEventTime(start + etWindow - 1)
				return nil
			}
			onTimer := func(ctx *operators.TimerContext[int64], t runtime.Timer, out runtime.Collector[string]) error {
				if ctx.Watermark() < t.At {
					violations.Add(1)
				}
				start := t.At + 1 - etWindow
				n, _ := windows.Get(start)
				windows.Delete(start)
				out.Collect(fmt.Sprintf("%d@%d=%d", ctx.Key(), start, n))
				return nil
			}
			return process, onTimer, nil
		}).SetParallelism(windows)
	runtime.To(counts, "sink", newMemSink(out))
	return p
}

// TestWindowsAndTimersSurviveRescale stops the event-time window job three
// times with windows and their timers pending, and restarts it each time
// with the window operator at another parallelism (2 → 3 → 1 → 2): the
// windows' counts (keyed Map state) and timers move by key group, and the
// combined output is exactly an uninterrupted run's.
func TestWindowsAndTimersSurviveRescale(t *testing.T) {
	dir := t.TempDir()
	out := &memOutput{}
	var violations atomic.Int64
	cfg := runtime.Config{CheckpointDir: dir, CheckpointInterval: 10 * time.Millisecond, Parallelism: 2, BatchSize: 32}
	schedule := []int{2, 3, 1, 2}
	for i, windows := range schedule {
		var until int64 // the last run goes to the end
		if i < len(schedule)-1 {
			until = eventAt(uint64(etEvents * (i + 1) / len(schedule))).TS
		}
		var job *jobtest.Job
		var heldCount atomic.Int32
		started := make(chan struct{})
		held := func() { // on a source's goroutine
			if heldCount.Add(1) == int32(cfg.Parallelism) {
				go func() { <-started; job.Stop() }()
			}
		}
		before := len(out.lines())
		job, err := jobtest.Start(context.Background(), rescaledWindowPipeline(out, windows, until, held, &violations), cfg)
		if err != nil {
			t.Fatalf("run %d (window parallelism %d): %v", i, windows, err)
		}
		close(started)
		if i > 0 && job.RestoredFrom() == 0 {
			t.Fatalf("run %d did not restore", i)
		}
		if err := job.Wait(); err != nil {
			t.Fatalf("run %d (window parallelism %d): %v", i, windows, err)
		}
		if len(out.lines()) == before {
			t.Fatalf("run %d (window parallelism %d) emitted no window", i, windows)
		}
	}
	if v := violations.Load(); v != 0 {
		t.Fatalf("%d watermark violations", v)
	}
	got := out.lines()
	slices.Sort(got)
	if want := expectedWindowCounts(); !slices.Equal(got, want) {
		t.Fatalf("after rescales %v, window counts differ: got %d lines, want %d\ngot  %v\nwant %v", schedule, len(got), len(want), head(got), head(want))
	}
}

// TestRescaleRefusals checks the restores that cannot be done: another
// --max-parallelism, and another parallelism of an operator with operator
// state (here the sources) that is not redistributed.
func TestRescaleRefusals(t *testing.T) {
	dir := t.TempDir()
	var violations atomic.Int64
	cfg := runtime.Config{CheckpointDir: dir, CheckpointInterval: 10 * time.Millisecond, Parallelism: 2, BatchSize: 32, MaxParallelism: 64}
	if err := runtime.Run(context.Background(), rescaledWindowPipeline(&memOutput{}, 2, 0, nil, &violations), cfg); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cfg  func(runtime.Config) runtime.Config
		want []string
	}{
		{"max-parallelism", func(c runtime.Config) runtime.Config { c.MaxParallelism = 128; return c },
			[]string{"--max-parallelism 64, not 128", "restart with --max-parallelism 64"}},
		{"operator state", func(c runtime.Config) runtime.Config { c.Parallelism = 3; return c },
			[]string{`operator "events" ran with parallelism 2`, "now 3", "restart it with parallelism 2"}},
	} {
		err := runtime.Run(context.Background(), rescaledWindowPipeline(&memOutput{}, 2, 0, nil, &violations), c.cfg(cfg))
		if !errors.Is(err, engine.ErrIncompatibleCheckpoint) {
			t.Fatalf("%s: got %v, want %v", c.name, err, engine.ErrIncompatibleCheckpoint)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
	}
}
