package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/runtime"
)

// TestLocalDirWithCheckpointDirectory runs the counting job on a checkpoint
// directory (a shared volume, say) with --local-dir, without it, and with
// another one, each run ended after its first checkpoint (cut off by a
// cancellation, or stopped with a final checkpoint): with --local-dir the
// live state is there and not in the checkpoint directory, every start
// after the first restores what the previous run wrote, whichever way it
// ran, and the output is exact.
func TestLocalDirWithCheckpointDirectory(t *testing.T) {
	const records, keys = 20000, 100
	dir := filepath.Join(t.TempDir(), "checkpoints")
	out := &durableOutput{done: map[string]bool{}}
	resume := make(chan struct{})
	p := countingPipelineTo(records, keys, newDurableSink(out), resume)

	// run starts the job; after its first checkpoint, check looks at the
	// directories and act ends the run.
	run := func(localDir string, check func() error, act func(cancel context.CancelFunc, stop chan struct{})) (restored uint64, checked, err error) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stop := make(chan struct{})
		var once sync.Once
		err = runtime.Run(ctx, p, runtime.Config{
			CheckpointDir:      dir,
			LocalDir:           localDir,
			CheckpointInterval: 5 * time.Millisecond,
			Parallelism:        2,
			BatchSize:          64,
			MetricsAddr:        "",
			Stop:               stop,
			Events: runtime.EventListener{
				Started: func(info runtime.StartInfo) { restored = info.RestoredFrom },
				CheckpointCompleted: func(runtime.CheckpointInfo) {
					once.Do(func() {
						checked = check()
						act(cancel, stop)
					})
				},
			},
		})
		return restored, checked, err
	}
	// liveIn checks that the live state is in one directory and, unless
	// notIn is "", not in the other.
	liveIn := func(in, notIn string) func() error {
		return func() error {
			if _, err := os.Stat(filepath.Join(in, "live")); err != nil {
				return err
			}
			if _, err := os.Stat(filepath.Join(notIn, "live")); notIn != "" && !errors.Is(err, os.ErrNotExist) {
				return errors.New("live state in " + notIn + " too")
			}
			return nil
		}
	}

	local := filepath.Join(t.TempDir(), "local")
	_, checked, err := run(local, liveIn(local, dir), func(cancel context.CancelFunc, _ chan struct{}) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run with --local-dir: %v, want context.Canceled", err)
	}
	if checked != nil {
		t.Fatalf("run with --local-dir %s: %v", local, checked)
	}

	restored, checked, err := run("", liveIn(dir, ""), func(_ context.CancelFunc, stop chan struct{}) { close(stop) })
	if err != nil || checked != nil {
		t.Fatalf("run without --local-dir: %v (%v)", err, checked)
	}
	if restored == 0 {
		t.Fatal("the run without --local-dir started afresh: the checkpoint written with --local-dir was not restored")
	}

	close(resume)
	other := filepath.Join(t.TempDir(), "other-local")
	restored, checked, err = run(other, liveIn(other, dir), func(context.CancelFunc, chan struct{}) {})
	if err != nil || checked != nil {
		t.Fatalf("last run, with another --local-dir: %v (%v)", err, checked)
	}
	if restored == 0 {
		t.Fatal("the last run started afresh: the checkpoint written without --local-dir was not restored")
	}
	checkCounts(t, out.lines(), records, keys)
}
