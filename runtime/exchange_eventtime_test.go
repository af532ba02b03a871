package runtime_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/clustertest"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// tick is a record of the event-time tests: a key at an event time.
type tick struct {
	Key string
	TS  int64
}

// Steps of the paced source: step s holds perStep records of each subtask,
// of event time in [s*stepMs, (s+1)*stepMs); a tumbling window of stepMs
// holds one step.
const (
	steps   = 8
	perStep = 8
	stepMs  = 100
	keys    = 5
)

// pacedSource emits one step, then waits for a checkpoint to complete
// before the next: the input spans many checkpoints whatever the speed of
// the machine, so watermarks (which cross an exchange at checkpoints) have
// the time to fire windows before the input ends.
type pacedSource struct {
	subtask int
	step    int  // the next to emit
	wait    bool // a step was emitted and no checkpoint completed since
}

func newPaced() (runtime.Source[tick], error) { return &pacedSource{}, nil }

func (s *pacedSource) Open(_ context.Context, info runtime.TaskInfo, restored []byte) error {
	s.subtask = info.Subtask
	if len(restored) == 8 {
		s.step = int(binary.BigEndian.Uint64(restored))
	}
	return nil
}

func (s *pacedSource) Read(ctx context.Context, out runtime.Collector[tick]) error {
	if s.step == steps {
		return runtime.ErrEndOfInput
	}
	if s.wait {
		// Read returns to let the task take the checkpoint it waits for.
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
		return nil
	}
	for j := range perStep {
		out.Collect(tick{Key: fmt.Sprintf("k%d", (s.subtask*3+j)%keys), TS: int64(s.step*stepMs + j*stepMs/perStep)})
	}
	s.step++
	s.wait = true
	return nil
}

func (s *pacedSource) CheckpointComplete(context.Context, uint64) error {
	s.wait = false
	return nil
}

func (s *pacedSource) Snapshot() ([]byte, error) {
	return binary.BigEndian.AppendUint64(nil, uint64(s.step)), nil
}

func (s *pacedSource) Close() error { return nil }

// firings passes window results on, counting those fired before the end
// of the input (the watermark then is not MaxWatermark).
type firings struct {
	runtime.OperatorBase
	ctx   *runtime.OperatorContext
	out   runtime.Collector[string]
	early *atomic.Int64
}

func (f *firings) Open(ctx *runtime.OperatorContext, out runtime.Collector[string]) error {
	f.ctx, f.out = ctx, out
	return nil
}

func (f *firings) Process(s string) {
	if f.ctx.Watermark() != runtime.MaxWatermark {
		f.early.Add(1)
	}
	f.out.Collect(s)
}

// windowCount builds the event-time pipeline of these tests: ticks with
// monotonic timestamps, keyed, counted in tumbling windows of one step,
// as "key [start,end): n" lines to sink; early counts the windows that
// fired before the end of the input.
func windowCount(sink runtime.SinkFactory[string], early *atomic.Int64) *runtime.Pipeline {
	p := runtime.NewPipeline("windows")
	ticks := runtime.From(p, "ticks", newPaced, runtime.WithWatermarks(runtime.Monotonic(func(t tick) int64 { return t.TS })))
	counts, _ := operators.WindowAggregate(
		operators.Window(operators.KeyBy(ticks, func(t tick) string { return t.Key }), "per-key", operators.Tumbling(stepMs*time.Millisecond)),
		operators.WindowAggregateFunc[string, tick, int64, string]{
			Add:    func(n int64, _ tick, _ bool) int64 { return n + 1 },
			Result: func(k string, w operators.TimeWindow, n int64) string { return fmt.Sprintf("%s %v: %d", k, w, n) },
		}, state.Int64)
	fired := runtime.Apply(counts, "fired", func() runtime.Operator[string, string] { return &firings{early: early} })
	runtime.To(fired, "out", sink)
	return p
}

// windowsNormally runs windowCount in one process at parallelism tasks and
// returns what it committed.
func windowsNormally(t *testing.T, tasks int) []string {
	t.Helper()
	var out clustertest.Output[string]
	var early atomic.Int64
	cfg := runtime.Config{CheckpointDir: t.TempDir(), CheckpointInterval: 10 * time.Millisecond, Parallelism: tasks}
	if err := runtime.Run(t.Context(), windowCount(out.Sink(), &early), cfg); err != nil {
		t.Fatal(err)
	}
	return sorted(out.Records())
}

// windowResults is the number of window results of windowCount at
// parallelism tasks: one per key and step that has records of the key.
func windowResults(tasks int) uint64 {
	seen := map[string]bool{}
	for sub := range tasks {
		for j := range perStep {
			seen[fmt.Sprintf("k%d", (sub*3+j)%keys)] = true
		}
	}
	return uint64(len(seen) * steps)
}

// Tasks of an event-time job, windows downstream of a KeyBy, commit what
// the job commits in one process: records keep their event time across the
// exchange, and its watermarks cross it, so windows fire while the input
// runs (not only at its end, when every window fires whatever the
// watermark).
func TestEventTimeTasksMatchOneProcess(t *testing.T) {
	for _, tasks := range []int{1, 2, 3} {
		t.Run(fmt.Sprint(tasks), func(t *testing.T) {
			want := windowsNormally(t, tasks)
			var out clustertest.Output[string]
			var early atomic.Int64
			if err := runGroup(t, windowCount(out.Sink(), &early), tasks, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			compare(t, sorted(out.Records()), want, windowResults(tasks))
			if early.Load() == 0 {
				t.Fatalf("all %d windows fired at the end of the input: watermarks did not cross the exchange", len(want))
			}
			t.Logf("%d of %d windows fired before the end of the input", early.Load(), len(want))
		})
	}
}

// An event-time task killed between the pre-commit of its exchange writes
// (records and markers) and their checkpoint, then restarted from its last
// complete checkpoint, commits with the others what the job commits in one
// process.
func TestEventTimeKilledTaskResumesExactly(t *testing.T) {
	const tasks, victim = 3, 1
	want := windowsNormally(t, tasks)

	var out clustertest.Output[string]
	var early atomic.Int64
	p := windowCount(out.Sink(), &early)
	runWithKilledTask(t, p, tasks, victim)
	compare(t, sorted(out.Records()), want, windowResults(tasks))
	if early.Load() == 0 {
		t.Fatalf("all %d windows fired at the end of the input: watermarks did not cross the exchange", len(want))
	}
}
