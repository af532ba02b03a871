package engine_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/weirstream/weir/runtime"
)

// restoreProbeSink is a memSink whose Open, on a restore, waits until the
// keyed state of the operator upstream of it, in the same task, has been
// restored into the live directory, as a Kafka sink's Open waits for its
// fencing round trips.
type restoreProbeSink struct {
	memSink
	live string // the glob of the restored keyed state's files
}

// errNotRestoredMeanwhile is returned by restoreProbeSink.Open.
var errNotRestoredMeanwhile = errors.New("the keyed state was not restored while the sink opened")

func (s *restoreProbeSink) Open(ctx context.Context, _ runtime.TaskInfo, _ []byte) error {
	// NB: the engine gives no signal a sink could wait for; the test waits
	// for the files, with a bound far above what restoring a few hundred
	// entries takes, and fails at the bound.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m, _ := filepath.Glob(s.live); len(m) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return errNotRestoredMeanwhile
}

// TestKeyedStateRestoresWhileSinksOpen checks that a restore opens a task's
// keyed state while the operators downstream of it open, not after them:
// a sink's Open that waits for the keyed state's files to be restored (in
// the same task: parallelism 1 chains source, counter and sink) returns.
// Opened one after the other, downstream first, the sink waited for a
// restore that came only after it, and the job failed to start (issue 12:
// a task that moves waits for its sinks' fencing, then for its state).
func TestKeyedStateRestoresWhileSinksOpen(t *testing.T) {
	dir := t.TempDir()
	out := &memOutput{}
	cfg := runtime.Config{CheckpointDir: dir, CheckpointInterval: 10 * time.Millisecond, Parallelism: 1}
	resume := make(chan struct{})
	close(resume)
	if err := runtime.Run(context.Background(), countingPipeline(1000, 100, out, resume), cfg); err != nil {
		t.Fatalf("first run: %v", err)
	}
	probe := func() (runtime.Sink[string], error) {
		return &restoreProbeSink{
			memSink: memSink{out: out, pending: map[uint64][]string{}},
			live:    filepath.Join(dir, "live", "count", "0", "MANIFEST-*"),
		}, nil
	}
	if err := runtime.Run(context.Background(), countingPipelineTo(1000, 100, probe, resume), cfg); err != nil {
		t.Fatalf("restored run: %v", err)
	}
}
