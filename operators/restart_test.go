package operators_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/jobtest"
	"github.com/weirstream/weir/runtime"
)

// pausingSource wraps a deterministic source. Once it has emitted pauseAt
// records it calls onPause and emits nothing more (the job keeps running:
// barriers pass), so that the test can stop or kill the job in the middle of
// its input; once every subtask has paused and a checkpoint has completed, it
// signals reached. Each subtask pauses on its own count: with a shared one,
// a subtask the scheduler favoured could emit everything before the pause
// while another emitted nothing, holding the job's watermark back.
type pausingSource struct {
	runtime.Source[uint64]
	emitted int64 // by this subtask
	pauseAt int64 // 0: never pause
	paused  bool
	*pauses
}

// pauses is what the subtasks of a pausingSource share.
type pauses struct {
	subtasks       int64
	pausedSubtasks atomic.Int64
	completed      *atomic.Int64
	onPause        func()
	reached        func()
}

func (s *pausingSource) Read(ctx context.Context, out runtime.Collector[uint64]) error {
	if s.pauseAt > 0 && s.emitted >= s.pauseAt {
		if !s.paused {
			s.paused = true
			s.pausedSubtasks.Add(1)
		}
		s.onPause()
		if s.pausedSubtasks.Load() == s.subtasks && s.completed.Load() > 0 {
			s.reached()
		}
		// Nothing to read: wait briefly, as the Source contract asks.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
		return nil
	}
	return s.Source.Read(ctx, runtime.CollectorFunc[uint64](func(v uint64) {
		s.emitted++
		out.Collect(v)
	}))
}

// restartRun is one run of the counting job on a checkpoint directory.
type restartRun struct {
	job          *jobtest.Job
	checkpointed chan struct{} // a checkpoint completed
	out          *output[string]
	reached      chan struct{}
	cancel       context.CancelFunc
}

// restartJob is a job over the numbers 0..n-1 read through a pausingSource:
// build adds the rest of the pipeline, ending in a sink that commits to out.
type restartJob struct {
	name  string
	par   int
	n     uint64
	build func(p *runtime.Pipeline, src runtime.SourceFactory[uint64], out *output[string])
}

// start runs the job on dir. out stands for the external system the sink
// commits to, so it is shared by the runs.
func (rj restartJob) start(t *testing.T, dir string, out *output[string], pauseAt int64, onPause func()) *restartRun {
	t.Helper()
	r := &restartRun{out: out, reached: make(chan struct{}), checkpointed: make(chan struct{}, 1)}
	var once sync.Once
	var completed atomic.Int64
	shared := &pauses{subtasks: int64(rj.par), completed: &completed, onPause: onPause,
		reached: func() { once.Do(func() { close(r.reached) }) }}
	gen := numbers(rj.n)
	p := runtime.NewPipeline(rj.name)
	rj.build(p, func() (runtime.Source[uint64], error) {
		src, err := gen()
		return &pausingSource{Source: src, pauseAt: pauseAt / int64(rj.par), pauses: shared}, err
	}, r.out)
	cfg := testConfig(t, rj.par)
	cfg.CheckpointDir = dir
	cfg.StateCacheBytes = 1 << 10 // restored state that does not fit is read from Pebble
	cfg.Events.CheckpointCompleted = func(runtime.CheckpointInfo) {
		completed.Add(1)
		select {
		case r.checkpointed <- struct{}{}:
		default:
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	j, err := jobtest.Start(ctx, p, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r.job = j
	return r
}

// interrupt runs the job on dir until its source pauses at pauseAt, then
// stops it with a final checkpoint (mode "stop") or crashes it (mode
// "crash": the next checkpoint completes and the process dies before out's
// sink commits it). It returns how many records out held afterwards.
func (rj restartJob) interrupt(t *testing.T, dir string, out *output[string], pauseAt int64, mode string) int {
	t.Helper()
	first := rj.start(t, dir, out, pauseAt, func() {})
	first.await(t, first.reached, "the source paused")
	if mode == "stop" {
		first.job.Stop()
		if err := first.job.Wait(); err != nil {
			t.Fatalf("first run: %v", err)
		}
	} else {
		out.down.Store(true)
		first.await(t, out.crashed, "the crash")
		first.cancel()
		first.job.Wait()
	}
	first.cancel()
	out.down.Store(false)
	return len(out.records())
}

// resume runs the job on dir again, to the end of its input, from the
// checkpoint an interrupted run left.
func (rj restartJob) resume(t *testing.T, dir string, out *output[string]) {
	t.Helper()
	second := rj.start(t, dir, out, 0, nil)
	if second.job.RestoredFrom() == 0 {
		t.Fatal("second run did not restore a checkpoint")
	}
	err := second.job.Wait()
	second.cancel()
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
}

// startCounting starts the counting job on dir.
func startCounting(t *testing.T, dir string, out *output[string], n, keys uint64, pauseAt int64, onPause func()) *restartRun {
	t.Helper()
	rj := restartJob{name: "restart", par: 2, n: n, build: func(p *runtime.Pipeline, src runtime.SourceFactory[uint64], out *output[string]) {
		countPipeline(p, src, keys, out)
	}}
	return rj.start(t, dir, out, pauseAt, onPause)
}

// await waits for ch to be closed, failing if the job ends first.
func (r *restartRun) await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	ended := make(chan error, 1)
	go func() { ended <- r.job.Wait() }()
	select {
	case <-ch:
	case err := <-ended:
		t.Fatalf("job ended before %s: %v", what, err)
	}
}

// TestRestartIsExactlyOnce interrupts a counting job in the middle of its
// input, by Stop (final checkpoint) or by cancelling it (a crash: no final
// checkpoint), runs it again on the same checkpoint directory, and checks
// that the output committed by both runs together is exactly that of one
// uninterrupted run. A third run finds the input exhausted and commits
// nothing.
func TestRestartIsExactlyOnce(t *testing.T) {
	const n, keys = 4000, 37
	want := wantCounts(n, keys)
	for _, mode := range []string{"stop", "crash"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			out := newOutput[string]()
			// A crash hits once the records before the pause are in a
			// complete checkpoint, before the sinks commit it: the restored
			// sinks must commit it.
			onPause := func() {}
			if mode == "crash" {
				onPause = func() { out.down.Store(true) }
			}
			first := startCounting(t, dir, out, n, keys, n/3, onPause)
			first.await(t, first.reached, "the source paused")
			if mode == "stop" {
				first.job.Stop()
				if err := first.job.Wait(); err != nil {
					t.Fatalf("first run: %v", err)
				}
			} else {
				first.await(t, out.crashed, "the crash")
				first.cancel()
				if err := first.job.Wait(); err == nil {
					t.Fatal("first run: cancelled job reported success")
				}
			}
			first.cancel()
			out.down.Store(false)
			if id := first.job.RestoredFrom(); id != 0 {
				t.Fatalf("first run restored from checkpoint %d", id)
			}
			out1 := out.records()
			// After a crash, even the first checkpoint's commit may be lost.
			if (mode == "stop" && len(out1) == 0) || len(out1) >= len(want) {
				t.Fatalf("first run committed %d of %d records: not interrupted in the middle", len(out1), len(want))
			}

			second := startCounting(t, dir, out, n, keys, 0, nil)
			if second.job.RestoredFrom() == 0 {
				t.Fatal("second run did not restore a checkpoint")
			}
			if err := second.job.Wait(); err != nil {
				t.Fatalf("second run: %v", err)
			}
			second.cancel()
			out2 := out.records()[len(out1):]
			got := sorted(out.records())
			if !slices.Equal(got, want) {
				dups := 0
				for i := 1; i < len(got); i++ {
					if got[i] == got[i-1] {
						dups++
					}
				}
				t.Fatalf("runs committed %d+%d records (%d duplicates), want %d; first difference at %d",
					len(out1), len(out2), dups, len(want), firstDiff(got, want))
			}

			third := startCounting(t, dir, out, n, keys, 0, nil)
			restored := third.job.RestoredFrom()
			if err := third.job.Wait(); err != nil {
				t.Fatalf("third run: %v", err)
			}
			third.cancel()
			if restored <= second.job.RestoredFrom() {
				t.Fatalf("third run restored checkpoint %d, not newer than the second run's %d", restored, second.job.RestoredFrom())
			}
			if out3 := out.records()[len(out1)+len(out2):]; len(out3) != 0 {
				t.Fatalf("third run of a finished job committed %d records, e.g. %q", len(out3), out3[0])
			}
		})
	}
}
