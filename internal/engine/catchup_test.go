package engine_test

import (
	"context"
	"encoding/binary"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/runtime"
)

// backlogSource reads an input that holds records up to end, batch a Read,
// and reports its lag (runtime.LagReporter), as a Kafka source does; at the
// end it idles. Its position is its state, and each Snapshot records the
// position it took.
type backlogSource struct {
	end, batch uint64
	next       atomic.Uint64 // SourceLag may run on another goroutine
	reached    func()        // called once, when the position first reaches end
	mu         sync.Mutex
	snapshots  []uint64
}

func (s *backlogSource) Open(_ context.Context, _ runtime.TaskInfo, restored []byte) error {
	if restored != nil {
		s.next.Store(binary.BigEndian.Uint64(restored))
	}
	return nil
}

func (s *backlogSource) Read(ctx context.Context, out runtime.Collector[string]) error {
	next := s.next.Load()
	if next >= s.end {
		if s.reached != nil {
			s.reached()
			s.reached = nil
		}
		select { // idle: nothing more to read
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
		return nil
	}
	n := min(s.batch, s.end-next)
	for i := range n {
		out.Collect(strconv.FormatUint(next+i, 10))
	}
	s.next.Store(next + n)
	return nil
}

func (s *backlogSource) SourceLag() []runtime.PartitionLag {
	return []runtime.PartitionLag{{Partition: "backlog/0", Records: int64(s.end - s.next.Load())}}
}

func (s *backlogSource) Snapshot() ([]byte, error) {
	next := s.next.Load()
	s.mu.Lock()
	s.snapshots = append(s.snapshots, next)
	s.mu.Unlock()
	return binary.BigEndian.AppendUint64(nil, next), nil
}

func (s *backlogSource) Close() error { return nil }

func (s *backlogSource) snapshotted() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.snapshots...)
}

// TestRestoredJobCheckpointsOnceCaughtUp checks that a restored job whose
// source reports its lag takes its first checkpoint as soon as the source
// has read the backlog its input held, not an interval after it started
// (issue 12: a task that moved to another member of a group resumes its
// output when that checkpoint completes), and not before the backlog is
// read. The interval is an hour: only the catch-up can trigger a checkpoint
// before the test stops the job.
func TestRestoredJobCheckpointsOnceCaughtUp(t *testing.T) {
	dir := t.TempDir()
	out := &memOutput{}
	run := func(src *backlogSource, stop <-chan struct{}, completed func(runtime.CheckpointInfo)) {
		t.Helper()
		p := runtime.NewPipeline("catch-up")
		runtime.To(runtime.From(p, "backlog", func() (runtime.Source[string], error) { return src, nil }), "sink", newMemSink(out))
		err := runtime.Run(context.Background(), p, runtime.Config{
			CheckpointDir:      dir,
			CheckpointInterval: time.Hour,
			CheckpointTimeout:  time.Hour,
			Parallelism:        1,
			Stop:               stop,
			Events:             runtime.EventListener{CheckpointCompleted: completed},
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	// A fresh job has no backlog to catch up with: its only checkpoint is
	// the final one of the stop.
	stop := make(chan struct{})
	first := &backlogSource{end: 1000, batch: 100, reached: func() { close(stop) }}
	var checkpoints []runtime.CheckpointInfo
	run(first, stop, func(info runtime.CheckpointInfo) { checkpoints = append(checkpoints, info) })
	if len(checkpoints) != 1 || !checkpoints[0].Final {
		t.Fatalf("fresh job: checkpoints %+v, want only the final one", checkpoints)
	}

	// Restored, the input holds 4000 more records: 40 reads of backlog.
	stop = make(chan struct{})
	second := &backlogSource{end: 5000, batch: 100}
	completed := make(chan runtime.CheckpointInfo, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(second, stop, func(info runtime.CheckpointInfo) { completed <- info })
	}()
	select {
	case info := <-completed:
		if info.Final {
			t.Fatalf("restored job: the first checkpoint %d is the final one", info.ID)
		}
	case <-done:
		t.Fatal("the restored job ended before a checkpoint")
	case <-time.After(time.Minute): // the interval is an hour
		close(stop)
		<-done
		t.Fatal("the restored job took no checkpoint once its source had caught up with the backlog")
	}
	close(stop)
	<-done
	if got := second.snapshotted(); len(got) < 1 || got[0] != 5000 {
		t.Fatalf("restored job: the source's snapshots took positions %v; the first, of the checkpoint that catching up triggered, should be 5000, the end of the backlog", got)
	}
	if lines := out.lines(); len(lines) != 5000 {
		t.Fatalf("%d records committed over both runs, want 5000", len(lines))
	}
}
