package operators_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/runtime"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// output collects what memSinks commit. A commit is identified by sink
// subtask and checkpoint, so that committing again after a restore is
// idempotent.
type output[T any] struct {
	mu        sync.Mutex
	committed []T
	batches   map[uint64][]T // committed, by checkpoint
	done      map[string]bool
	// down makes Commit hang until the job is cancelled, as if the process
	// died after a checkpoint completed but before the sink committed it;
	// crashed is closed when that happens.
	down      atomic.Bool
	crashed   chan struct{}
	crashOnce sync.Once
}

func newOutput[T any]() *output[T] {
	return &output[T]{done: map[string]bool{}, batches: map[uint64][]T{}, crashed: make(chan struct{})}
}

func (o *output[T]) records() []T {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.committed)
}

// commits returns the records committed by checkpoint (by every sink
// subtask).
func (o *output[T]) commits() map[uint64][]T {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.batches)
}

// staged is what a sink pre-committed for one checkpoint.
type staged[T any] struct {
	ID   uint64
	Recs []T
}

// memSink is a two-phase sink in memory: PreCommit stages the records
// written since the last barrier and returns every staged batch not yet
// committed as its state, so that a restored sink can finish the commits
// the checkpoint promises (Open) and nothing written after it survives.
type memSink[T any] struct {
	out     *output[T]
	subtask int
	cur     []T
	pending []staged[T]
}

func newMemSink[T any](out *output[T]) runtime.SinkFactory[T] {
	return func() (runtime.Sink[T], error) { return &memSink[T]{out: out}, nil }
}

func (s *memSink[T]) Open(_ context.Context, info runtime.TaskInfo, restored []byte) error {
	s.subtask = info.Subtask
	if restored == nil {
		return nil
	}
	var pending []staged[T]
	if err := json.Unmarshal(restored, &pending); err != nil {
		return fmt.Errorf("memSink: restored state: %w", err)
	}
	for _, st := range pending {
		s.commit(st)
	}
	return nil
}

func (s *memSink[T]) Write(_ context.Context, rec T) error {
	s.cur = append(s.cur, rec)
	return nil
}

func (s *memSink[T]) PreCommit(_ context.Context, id uint64) ([]byte, error) {
	s.pending = append(s.pending, staged[T]{ID: id, Recs: s.cur})
	s.cur = nil
	return json.Marshal(s.pending)
}

func (s *memSink[T]) Commit(ctx context.Context, id uint64) error {
	if s.out.down.Load() {
		s.out.crashOnce.Do(func() { close(s.out.crashed) })
		<-ctx.Done()
		return ctx.Err()
	}
	keep := s.pending[:0]
	for _, st := range s.pending {
		if st.ID <= id {
			s.commit(st)
		} else {
			keep = append(keep, st)
		}
	}
	s.pending = keep
	return nil
}

func (s *memSink[T]) commit(st staged[T]) {
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	key := fmt.Sprintf("%d/%d", s.subtask, st.ID)
	if s.out.done[key] {
		return
	}
	s.out.done[key] = true
	s.out.committed = append(s.out.committed, st.Recs...)
	s.out.batches[st.ID] = append(s.out.batches[st.ID], st.Recs...)
}

func (s *memSink[T]) Close() error { return nil }

func testConfig(t *testing.T, parallelism int) runtime.Config {
	return runtime.Config{
		CheckpointDir:      t.TempDir(),
		CheckpointInterval: 5 * time.Millisecond,
		Parallelism:        parallelism,
		BatchSize:          16,
		Logger:             quiet,
	}
}

// sorted returns a sorted copy, for comparing multisets.
func sorted[T interface{ ~uint64 | ~string | ~int64 }](s []T) []T {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
