package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/runtime"
)

// rendezvous lets the Opens of n sinks wait for one another.
type rendezvous struct {
	mu      sync.Mutex
	arrived int
	all     chan struct{} // closed when n have arrived
	n       int
}

// errNoRendezvous is returned by rendezvousSink.Open.
var errNoRendezvous = errors.New("the other sink subtasks did not open meanwhile")

// rendezvousSink is a memSink whose Open returns once every sink subtask
// of the job is in its Open, as a Kafka sink's Open waits for its fencing
// round trips.
type rendezvousSink struct {
	memSink
	rv *rendezvous
}

func (s *rendezvousSink) Open(ctx context.Context, _ runtime.TaskInfo, _ []byte) error {
	s.rv.mu.Lock()
	if s.rv.arrived++; s.rv.arrived == s.rv.n {
		close(s.rv.all)
	}
	s.rv.mu.Unlock()
	// NB: a bound far above what opening a few subtasks takes, so that
	// the old code (one task after the other) fails instead of hanging.
	select {
	case <-s.rv.all:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(20 * time.Second):
		return errNoRendezvous
	}
}

// TestTasksOpenConcurrently checks that a job opens its tasks at the same
// time: each sink subtask's Open (one a task: parallelism 2 chains the
// counter and the sink) returns only once both are in their Open. Opened
// one after the other, the first waited for a second that came only after
// it, and the job failed to start (issue 12: a task that moved to a group
// member opened its Kafka exchange's sink, then its output's, each
// fencing the prior epochs' ids, one after the other).
func TestTasksOpenConcurrently(t *testing.T) {
	for _, restored := range []bool{false, true} {
		name := "fresh"
		if restored {
			name = "restored"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			out := &memOutput{}
			cfg := runtime.Config{CheckpointDir: dir, CheckpointInterval: 10 * time.Millisecond, Parallelism: 2}
			resume := make(chan struct{})
			close(resume)
			if restored {
				if err := runtime.Run(context.Background(), countingPipeline(1000, 100, out, resume), cfg); err != nil {
					t.Fatalf("first run: %v", err)
				}
			}
			rv := &rendezvous{n: 2, all: make(chan struct{})}
			sink := func() (runtime.Sink[string], error) {
				return &rendezvousSink{memSink: memSink{out: out, pending: map[uint64][]string{}}, rv: rv}, nil
			}
			if err := runtime.Run(context.Background(), countingPipelineTo(1000, 100, sink, resume), cfg); err != nil {
				t.Fatalf("run: %v", err)
			}
		})
	}
}
