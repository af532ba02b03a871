package operators_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/weirstream/weir/internal/jobtest"
	"github.com/weirstream/weir/runtime"
)

// tallyOp counts its records in operator (non-keyed) state and emits the
// count when its input ends.
type tallyOp struct {
	ctx       *runtime.OperatorContext
	out       runtime.Collector[string]
	count     uint64
	completed uint64 // newest checkpoint notified complete
}

func (o *tallyOp) Open(ctx *runtime.OperatorContext, out runtime.Collector[string]) error {
	o.ctx, o.out = ctx, out
	if ctx.Restored != nil {
		if len(ctx.Restored) != 8 {
			return fmt.Errorf("tally: restored %d bytes", len(ctx.Restored))
		}
		o.count = binary.BigEndian.Uint64(ctx.Restored)
	}
	return nil
}

func (o *tallyOp) Process(uint64) { o.count++ }

func (o *tallyOp) Snapshot(uint64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(nil, o.count), nil
}

func (o *tallyOp) NotifyCheckpointComplete(id uint64) error {
	if id <= o.completed {
		return fmt.Errorf("tally: checkpoint %d completed after %d", id, o.completed)
	}
	o.completed = id
	return nil
}

func (o *tallyOp) Finish() error {
	o.out.Collect(fmt.Sprintf("subtask %d: %d", o.ctx.Subtask, o.count))
	return nil
}

func (o *tallyOp) Close() error { return nil }

// TestOperatorStateSurvivesStop checks the lifecycle of a custom operator
// across a stop and a restart: what Snapshot returned in the final
// checkpoint comes back as OperatorContext.Restored, so the counts emitted
// by Finish at the end of the second run cover both runs exactly once.
func TestOperatorStateSurvivesStop(t *testing.T) {
	const n = 3000
	dir := t.TempDir()
	out := newOutput[string]()
	start := func(pauseAt int64) (*jobtest.Job, chan struct{}, context.CancelFunc) {
		reached := make(chan struct{})
		var once sync.Once
		var completed atomic.Int64
		shared := &pauses{subtasks: 2, completed: &completed, onPause: func() {},
			reached: func() { once.Do(func() { close(reached) }) }}
		gen := numbers(n)
		p := runtime.NewPipeline("tally")
		s := runtime.From(p, "src", func() (runtime.Source[uint64], error) {
			// No subtask reaches the end of its input (which would finish
			// its operators).
			src, err := gen()
			return &pausingSource{Source: src, pauseAt: pauseAt, pauses: shared}, err
		})
		tally := runtime.Apply(s, "tally", func() runtime.Operator[uint64, string] { return &tallyOp{} })
		runtime.To(tally, "sink", newMemSink(out)).SetParallelism(1)
		cfg := testConfig(t, 2)
		cfg.CheckpointDir = dir
		cfg.Events.CheckpointCompleted = func(runtime.CheckpointInfo) { completed.Add(1) }
		ctx, cancel := context.WithCancel(context.Background())
		j, err := jobtest.Start(ctx, p, cfg)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		return j, reached, cancel
	}

	j, reached, cancel := start(n / 6)
	defer cancel()
	(&restartRun{job: j}).await(t, reached, "the source paused")
	j.Stop()
	if err := j.Wait(); err != nil {
		t.Fatalf("first run: %v", err)
	}
	if got := out.records(); len(got) != 0 {
		t.Fatalf("stopped run finished its operators: %q", got)
	}

	j, _, cancel2 := start(0)
	defer cancel2()
	if j.RestoredFrom() == 0 {
		t.Fatal("second run did not restore")
	}
	if err := j.Wait(); err != nil {
		t.Fatalf("second run: %v", err)
	}
	want := []string{fmt.Sprintf("subtask 0: %d", n/2), fmt.Sprintf("subtask 1: %d", n/2)}
	if got := sorted(out.records()); !slices.Equal(got, want) {
		t.Fatalf("tallies %q, want %q", got, want)
	}
}
