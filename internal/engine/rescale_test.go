package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/file"
	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/internal/engine"
	"github.com/weirstream/weir/internal/jobtest"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// holding emits its source's records until one is reached, then calls
// held once and emits nothing more (the job is stopped meanwhile).
type holding[T any] struct {
	runtime.Source[T]
	reached func(T) bool
	held    func()
	done    bool
}

func (s *holding[T]) Read(ctx context.Context, out runtime.Collector[T]) error {
	if s.done {
		time.Sleep(time.Millisecond) // idle: let the barriers of the stop through
		return nil
	}
	return s.Source.Read(ctx, runtime.CollectorFunc[T](func(v T) {
		out.Collect(v) // the rest of the chunk too: the source's position is past it
		if !s.done && s.reached(v) {
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
		return &holding[event]{Source: src, reached: func(e event) bool { return e.TS >= until }, held: held}, err
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
	// The sources in a holding wrapper (that never holds) do not implement
	// runtime.Rescalable, as the bare generator now does.
	pipeline := func() *runtime.Pipeline {
		return rescaledWindowPipeline(&memOutput{}, 2, math.MaxInt64, func() {}, &violations)
	}
	if err := runtime.Run(context.Background(), pipeline(), cfg); err != nil {
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
		err := runtime.Run(context.Background(), pipeline(), c.cfg(cfg))
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

const (
	rsRecords = 6000
	rsKeys    = 40
)

// rescaledCountPipeline counts records per key (keyed state) and writes each
// running count to files (a two-phase sink), everything but its source
// (parallelism 1) at the job's parallelism. Its source holds once it has
// emitted record until (none if 0) and calls held.
func rescaledCountPipeline(sink runtime.SinkFactory[string], until uint64, held func()) *runtime.Pipeline {
	p := runtime.NewPipeline("counting")
	gen := must(generator.NewSource(generator.SourceConfig[uint64]{Record: func(i uint64) uint64 { return i }, Count: rsRecords, ChunkSize: 50}))
	nums := runtime.From(p, "nums", func() (runtime.Source[uint64], error) {
		src, err := gen()
		if until == 0 {
			return src, err
		}
		return &holding[uint64]{Source: src, reached: func(i uint64) bool { return i >= until }, held: held}, err
	}).SetParallelism(1)
	ones := operators.Map(nums, func(i uint64) [2]int64 { return [2]int64{int64(i % rsKeys), 1} })
	counts := operators.Reduce(operators.KeyBy(ones, func(v [2]int64) int64 { return v[0] }), "count",
		func(acc, v [2]int64) [2]int64 { return [2]int64{acc[0], acc[1] + v[1]} }, state.JSON[[2]int64]())
	runtime.To(operators.Map(counts, func(v [2]int64) string { return fmt.Sprintf("%d=%d", v[0], v[1]) }), "files", sink)
	return p
}

// committedLines returns the lines of the committed files in dir.
func committedLines(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // staging
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.Fields(string(data))...)
	}
	slices.Sort(lines)
	return lines
}

// TestSinkAndKeyedStateSurviveRescale stops a counting job three times and
// restarts it each time with another parallelism (2 → 3 → 1 → 2) for its
// keyed counts and its file sink: the sink subtasks of each run take over
// the pending commits of the old ones (those of removed subtasks
// included), and the committed output is exactly an uninterrupted run's:
// every running count of every key once.
func TestSinkAndKeyedStateSurviveRescale(t *testing.T) {
	dir, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	sink, err := file.NewSink(file.LinesTo(out))
	if err != nil {
		t.Fatal(err)
	}
	schedule := []int{2, 3, 1, 2}
	for i, par := range schedule {
		var until uint64 // the last run goes to the end
		if i < len(schedule)-1 {
			until = uint64(rsRecords * (i + 1) / len(schedule))
		}
		var job *jobtest.Job
		started := make(chan struct{})
		held := func() { go func() { <-started; job.Stop() }() } // once: one source subtask
		cfg := runtime.Config{CheckpointDir: dir, CheckpointInterval: 10 * time.Millisecond, Parallelism: par, BatchSize: 32}
		job, err := jobtest.Start(context.Background(), rescaledCountPipeline(sink, until, held), cfg)
		if err != nil {
			t.Fatalf("run %d (parallelism %d): %v", i, par, err)
		}
		close(started)
		if i > 0 && job.RestoredFrom() == 0 {
			t.Fatalf("run %d did not restore", i)
		}
		if err := job.Wait(); err != nil {
			t.Fatalf("run %d (parallelism %d): %v", i, par, err)
		}
	}
	if got, want := committedLines(t, out), wantRunningCounts(); !slices.Equal(got, want) {
		t.Fatalf("after rescales %v: %d committed lines, want %d\n%s", schedule, len(got), len(want), diffLines(got, want))
	}
}

// diffLines names a few lines missing from got and a few extra in it.
func diffLines(got, want []string) string {
	count := map[string]int{}
	for _, l := range want {
		count[l]++
	}
	for _, l := range got {
		count[l]--
	}
	var missing, extra []string
	for l, n := range count {
		switch {
		case n > 0:
			missing = append(missing, l)
		case n < 0:
			extra = append(extra, l)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	return fmt.Sprintf("missing %d, e.g. %v; duplicated %d, e.g. %v", len(missing), head(missing), len(extra), head(extra))
}

// batch is a committable of lineWriter: the lines one subtask prepared
// for one checkpoint.
type batch struct {
	ID    string // subtask/checkpoint
	Lines []string
}

// lineOutput is what lineWriters committed: each batch once, by ID.
type lineOutput struct {
	mu         sync.Mutex
	batches    map[string][]string
	failCommit atomic.Bool // Commit fails: the job stops between a checkpoint and its commit
}

func (o *lineOutput) lines() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, ls := range o.batches {
		out = append(out, ls...)
	}
	slices.Sort(out)
	return out
}

// lineWriter is a two-phase writer whose Commit can be made to fail.
type lineWriter struct {
	out     *lineOutput
	subtask int
	cur     []string
}

func (w *lineWriter) Open(_ context.Context, info runtime.TaskInfo) error {
	w.subtask = info.Subtask
	return nil
}
func (w *lineWriter) Recover(context.Context, runtime.Recovery[batch]) error { return nil }
func (w *lineWriter) Write(_ context.Context, line string) error {
	w.cur = append(w.cur, line)
	return nil
}
func (w *lineWriter) Prepare(_ context.Context, id uint64, _ bool) ([]batch, []byte, error) {
	b := batch{ID: fmt.Sprintf("%d/%d", w.subtask, id), Lines: w.cur}
	w.cur = nil
	return []batch{b}, nil, nil
}
func (w *lineWriter) Commit(_ context.Context, _ uint64, bs []runtime.Committable[batch]) error {
	if w.out.failCommit.Load() {
		return errors.New("commit failed on purpose")
	}
	w.out.mu.Lock()
	defer w.out.mu.Unlock()
	for _, b := range bs {
		w.out.batches[b.Value.ID] = b.Value.Lines
	}
	return nil
}
func (w *lineWriter) Close() error { return nil }

// TestPendingCommitsSurviveRescale stops a counting job three times between
// its final checkpoint and the sinks' commit of it (Commit fails), and
// restarts it each time with another parallelism (2 → 3 → 1 → 2): the new
// sink subtasks must commit what every old subtask's state promised, those
// of removed subtasks included, for the output to be exactly once.
func TestPendingCommitsSurviveRescale(t *testing.T) {
	dir := t.TempDir()
	out := &lineOutput{batches: map[string][]string{}}
	newSink := func() (runtime.Sink[string], error) {
		return runtime.NewTwoPhaseSink[string, batch](&lineWriter{out: out}, state.JSON[batch]()), nil
	}
	schedule := []int{2, 3, 1, 2}
	for i, par := range schedule {
		var until uint64 // the last run goes to the end
		if i < len(schedule)-1 {
			until = uint64(rsRecords * (i + 1) / len(schedule))
		}
		var job *jobtest.Job
		started := make(chan struct{})
		held := func() {
			out.failCommit.Store(true)
			go func() { <-started; job.Stop() }()
		}
		out.failCommit.Store(false)
		cfg := runtime.Config{CheckpointDir: dir, CheckpointInterval: 10 * time.Millisecond, Parallelism: par, BatchSize: 32}
		job, err := jobtest.Start(context.Background(), rescaledCountPipeline(newSink, until, held), cfg)
		if err != nil {
			t.Fatalf("run %d (parallelism %d): %v", i, par, err)
		}
		close(started)
		err = job.Wait()
		if last := i == len(schedule)-1; (err == nil) != last {
			t.Fatalf("run %d (parallelism %d): got %v, want the final commit to fail in every run but the last", i, par, err)
		}
	}
	if got, want := out.lines(), wantRunningCounts(); !slices.Equal(got, want) {
		t.Fatalf("after rescales %v: %d committed lines, want %d\n%s", schedule, len(got), len(want), diffLines(got, want))
	}
}

// wantRunningCounts is every running count of every key of
// rescaledCountPipeline, sorted.
func wantRunningCounts() []string {
	var want []string
	for k := range rsKeys {
		for n := range rsRecords / rsKeys {
			want = append(want, fmt.Sprintf("%d=%d", k, n+1))
		}
	}
	slices.Sort(want)
	return want
}
