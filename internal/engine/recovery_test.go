package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
)

// phasedSource emits each phase of records in one Read, so that all of it
// falls between two barriers; after each phase it waits until the runtime
// has snapshotted it (so the next checkpoint covers the phase), and records
// that checkpoint's id.
type phasedSource struct {
	phases    [][]uint64
	phase     int
	snapshots uint64
	waitFor   uint64   // snapshot count that covers the last phase
	covered   []uint64 // per phase: the checkpoint that first covers it
	mu        *sync.Mutex
}

func (s *phasedSource) Open(context.Context, runtime.TaskInfo, []byte) error { return nil }

func (s *phasedSource) Read(_ context.Context, out runtime.Collector[uint64]) error {
	if s.waitFor > s.snapshots {
		time.Sleep(time.Millisecond) // idle: nothing to read until the barrier passed
		return nil
	}
	if s.phase == len(s.phases) {
		return runtime.ErrEndOfInput
	}
	for _, v := range s.phases[s.phase] {
		out.Collect(v)
	}
	s.phase++
	s.waitFor = s.snapshots + 1
	s.mu.Lock()
	s.covered = append(s.covered, s.waitFor) // ids start at 1 in a fresh directory
	s.mu.Unlock()
	return nil
}

func (s *phasedSource) Snapshot() ([]byte, error) { s.snapshots++; return nil, nil }
func (s *phasedSource) Close() error              { return nil }

// TestCheckpointsAreIncremental checks that a checkpoint writes bytes in
// proportion to the state changed since the previous one, not to the total.
func TestCheckpointsAreIncremental(t *testing.T) {
	var big, small []uint64
	for i := range uint64(50000) {
		big = append(big, i) // 50k keys
	}
	for i := range uint64(50000) {
		small = append(small, i%5) // the same volume of records on 5 keys
	}
	src := &phasedSource{phases: [][]uint64{big, small}, mu: &sync.Mutex{}}
	p := runtime.NewPipeline("incremental")
	nums := runtime.From(p, "phases", func() (runtime.Source[uint64], error) { return src, nil })
	counts := operators.Reduce(operators.KeyBy(nums, func(v uint64) uint64 { return v }), "count",
		func(acc, v uint64) uint64 { return acc + 1 }, nil)
	runtime.To(operators.Map(counts, func(v uint64) string { return fmt.Sprint(v) }), "sink", newMemSink(&memOutput{}))

	written := map[uint64]int64{}
	var mu sync.Mutex
	err := runtime.Run(context.Background(), p, runtime.Config{
		CheckpointDir:      t.TempDir(),
		CheckpointInterval: 5 * time.Millisecond,
		Events: runtime.EventListener{CheckpointCompleted: func(info runtime.CheckpointInfo) {
			mu.Lock()
			written[info.ID] = info.BytesWritten
			mu.Unlock()
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	covered := src.covered
	src.mu.Unlock()
	afterBig, afterSmall := written[covered[0]], written[covered[1]]
	t.Logf("bytes written: %d by the checkpoint after 50k keys changed, %d after 5 keys changed", afterBig, afterSmall)
	if afterBig < 200_000 {
		t.Fatalf("checkpoint %d after 50k new keys wrote only %d bytes", covered[0], afterBig)
	}
	if afterSmall*10 > afterBig {
		t.Fatalf("checkpoint %d after 5 changed keys wrote %d bytes, more than a tenth of the %d of a full change: not incremental", covered[1], afterSmall, afterBig)
	}
}

// TestStateLargerThanCache checks counting with a cache far smaller than the
// state, so that most reads go to Pebble, including across a restore.
func TestStateLargerThanCache(t *testing.T) {
	out := &memOutput{}
	resume := make(chan struct{})
	p := countingPipeline(40000, 5000, out, resume)
	var once sync.Once
	err := runtime.Run(context.Background(), p, runtime.Config{
		CheckpointDir:      t.TempDir(),
		CheckpointInterval: 5 * time.Millisecond,
		StateCacheBytes:    4 << 10,
		Events: runtime.EventListener{CheckpointCompleted: func(runtime.CheckpointInfo) {
			once.Do(func() { close(resume) })
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, out.lines(), 40000, 5000)
}

// checkCounts checks "<key>\t<count>" lines: every count of every key once.
func checkCounts(t *testing.T, lines []string, records, keys int) {
	t.Helper()
	if len(lines) != records {
		t.Fatalf("%d output records, want %d", len(lines), records)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l] {
			t.Fatalf("duplicate output %q", l)
		}
		seen[l] = true
	}
	for k := range keys {
		if last := fmt.Sprintf("%d\t%d", k, records/keys); !seen[last] {
			t.Fatalf("missing %q: key %d was not counted to the end", last, k)
		}
	}
}

// stallingSink blocks its first pre-commit until the checkpoint has been
// aborted, standing in for a sink that hangs.
type stallingSink struct {
	memSink
	aborted <-chan struct{}
	stalled bool
}

func (s *stallingSink) PreCommit(ctx context.Context, id uint64) ([]byte, error) {
	if !s.stalled {
		s.stalled = true
		<-s.aborted
	}
	return s.memSink.PreCommit(ctx, id)
}

// TestTimedOutCheckpointIsAborted checks that a checkpoint that does not
// complete in time is aborted and removed, that the job goes on, and that
// the data of the aborted checkpoint is committed with a later one.
func TestTimedOutCheckpointIsAborted(t *testing.T) {
	out := &memOutput{}
	aborted := make(chan struct{})
	dir := t.TempDir()
	p := runtime.NewPipeline("stall")
	nums := runtime.From(p, "gen", func() (runtime.Source[uint64], error) {
		src, err := newGen(10000)()
		return &pausingSource{Source: src, resume: aborted, half: 5000}, err
	})
	runtime.To(operators.Map(nums, func(v uint64) string { return fmt.Sprint(v) }), "sink", func() (runtime.Sink[string], error) {
		return &stallingSink{memSink: memSink{out: out, pending: map[uint64][]string{}}, aborted: aborted}, nil
	})
	var failed []uint64
	var once sync.Once
	err := runtime.Run(context.Background(), p, runtime.Config{
		CheckpointDir:      dir,
		CheckpointInterval: 5 * time.Millisecond,
		CheckpointTimeout:  50 * time.Millisecond,
		Events: runtime.EventListener{CheckpointFailed: func(id uint64, err error) {
			failed = append(failed, id)
			once.Do(func() { close(aborted) })
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) == 0 {
		t.Fatal("no checkpoint was aborted")
	}
	if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("chk-%010d", failed[0]))); !os.IsNotExist(err) {
		t.Fatalf("aborted checkpoint %d still on disk (stat: %v)", failed[0], err)
	}
	if n := len(out.lines()); n != 10000 {
		t.Fatalf("committed %d records, want 10000", n)
	}
}

// finishingOp emits one record when its input ends.
type finishingOp struct {
	runtime.OperatorBase
	out runtime.Collector[string]
}

func (o *finishingOp) Open(_ *runtime.OperatorContext, out runtime.Collector[string]) error {
	o.out = out
	return nil
}
func (o *finishingOp) Process(string) {}
func (o *finishingOp) Finish() error  { o.out.Collect("finished"); return nil }

// TestRestartAfterEndDoesNotFinishAgain runs a bounded job to its end, then
// starts it again on the same checkpoint directory: the operators finished
// in the first run and must not emit their end-of-input output again.
func TestRestartAfterEndDoesNotFinishAgain(t *testing.T) {
	dir := t.TempDir()
	out := &memOutput{}
	build := func() *runtime.Pipeline {
		p := runtime.NewPipeline("finish")
		nums := runtime.From(p, "gen", newGen(100))
		strs := operators.Map(nums, func(v uint64) string { return fmt.Sprint(v) })
		fin := runtime.Apply(strs, "finisher", func() runtime.Operator[string, string] { return &finishingOp{} })
		runtime.To(fin, "sink", newMemSink(out))
		return p
	}
	cfg := runtime.Config{CheckpointDir: dir, CheckpointInterval: 10 * time.Millisecond}
	for run := range 2 {
		if err := runtime.Run(context.Background(), build(), cfg); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
	}
	if got := out.lines(); len(got) != 1 || got[0] != "finished" {
		t.Fatalf("after a restart of an ended job the output is %q, want one %q", got, "finished")
	}
}
