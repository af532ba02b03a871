package engine_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/chkstore"
	"github.com/weirstream/weir/internal/jobtest"
	"github.com/weirstream/weir/runtime"
)

const execHelperEnv = "WEIR_RUNTIME_EXEC_HELPER"

// TestMainHelperProcess is not a test: run as a child by
// TestSecondJobOnCheckpointDirFails, it runs a job binary's Main on the
// checkpoint directory named in its environment and exits with its code.
func TestMainHelperProcess(t *testing.T) {
	dir := os.Getenv(execHelperEnv)
	if dir == "" {
		t.Skip("helper process")
	}
	resume := make(chan struct{})
	close(resume)
	// A locked directory is not worth a restart: it must fail at once.
	restart := runtime.RestartStrategy{Attempts: 3, Backoff: time.Millisecond}
	runtime.Main(countingPipeline(100, 10, &memOutput{}, resume), runtime.Config{CheckpointDir: dir, Restart: restart})
}

// TestSecondJobOnCheckpointDirFails starts a job, then a second one on the
// same checkpoint directory, in this process and in a child: both must fail
// at once, naming the directory and the pid of the first, the child with
// exit status 2 and no restart, and leave the first job's live state and checkpoints alone.
func TestSecondJobOnCheckpointDirFails(t *testing.T) {
	dir := t.TempDir()
	checkpointed := make(chan uint64, 1)
	cfg := runtime.Config{CheckpointDir: dir, CheckpointInterval: 5 * time.Millisecond,
		Events: runtime.EventListener{CheckpointCompleted: func(info runtime.CheckpointInfo) {
			select {
			case checkpointed <- info.ID:
			default:
			}
		}}}
	// The first job holds back half its input until resume is closed, so it
	// runs until stopped.
	resume := make(chan struct{})
	first, err := jobtest.Start(context.Background(), countingPipeline(1000, 10, &memOutput{}, resume), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { close(resume); first.Wait() }()
	awaitCheckpoint(t, first, checkpointed)
	live := filepath.Join(dir, "live")
	if _, err := os.Stat(live); err != nil {
		t.Fatal(err)
	}

	pid := "pid " + strconv.Itoa(os.Getpid())
	second, err := jobtest.Start(context.Background(), countingPipeline(1000, 10, &memOutput{}, resume), runtime.Config{CheckpointDir: dir})
	if err == nil {
		second.Wait()
		t.Fatal("a second job started on a checkpoint directory in use")
	}
	if !errors.Is(err, chkstore.ErrLocked) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), pid) {
		t.Fatalf("second Start = %v; want chkstore.ErrLocked naming %s and %s", err, dir, pid)
	}

	child := exec.Command(os.Args[0], "-test.run=^TestMainHelperProcess$")
	child.Env = append(os.Environ(), execHelperEnv+"="+dir)
	out, err := child.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("second job binary: want exit status 2, got %v\n%s", err, out)
	}
	for _, want := range []string{dir, pid} {
		if !strings.Contains(string(out), want) {
			t.Errorf("second job binary's message does not mention %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "restarting") {
		t.Errorf("second job binary restarted on a locked directory:\n%s", out)
	}

	// The first job is untouched: its live state is there and it still
	// completes checkpoints.
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("the refused jobs touched the live state: %v", err)
	}
	select {
	case <-checkpointed: // completed before the refusals
	default:
	}
	awaitCheckpoint(t, first, checkpointed)
	first.Stop()
	if err := first.Wait(); err != nil {
		t.Fatal(err)
	}
	// Its end released the directory.
	third, err := jobtest.Start(context.Background(), countingPipeline(1000, 10, &memOutput{}, resume), runtime.Config{CheckpointDir: dir})
	if err != nil {
		t.Fatalf("start after the first job ended: %v", err)
	}
	if third.RestoredFrom() == 0 {
		t.Fatal("third job did not restore the first one's checkpoint")
	}
	third.Stop()
	if err := third.Wait(); err != nil {
		t.Fatal(err)
	}
}

// awaitCheckpoint waits for a checkpoint of j to complete, failing if j ends
// first.
func awaitCheckpoint(t *testing.T, j *jobtest.Job, checkpointed <-chan uint64) {
	t.Helper()
	ended := make(chan error, 1)
	go func() { ended <- j.Wait() }()
	select {
	case <-checkpointed:
	case err := <-ended:
		t.Fatalf("job ended while a checkpoint was awaited: %v", err)
	}
}

// TestIncompleteCheckpointIsMovedAside checks that a restart moves an
// incomplete checkpoint aside rather than deleting it, and never reuses its
// id: sinks may have pre-committed under it.
func TestIncompleteCheckpointIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	var ids []uint64
	resume := make(chan struct{})
	close(resume)
	cfg := runtime.Config{CheckpointDir: dir, CheckpointInterval: 5 * time.Millisecond,
		Events: runtime.EventListener{CheckpointCompleted: func(info runtime.CheckpointInfo) { ids = append(ids, info.ID) }}}
	if err := runtime.Run(context.Background(), countingPipeline(1000, 10, &memOutput{}, resume), cfg); err != nil {
		t.Fatal(err)
	}
	final := ids[len(ids)-1]
	// What a crash between trigger and manifest leaves behind.
	store, err := chkstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	incomplete, err := store.Begin(final + 1)
	if err != nil {
		t.Fatal(err)
	}
	store.Close()
	if err := os.WriteFile(filepath.Join(incomplete, "pre-committed"), []byte("epoch"), 0o644); err != nil {
		t.Fatal(err)
	}

	ids = nil
	if err := runtime.Run(context.Background(), countingPipeline(1000, 10, &memOutput{}, resume), cfg); err != nil {
		t.Fatal(err)
	}
	if len(ids) == 0 || ids[0] <= final+1 {
		t.Fatalf("after a restart beside incomplete checkpoint %d, checkpoint ids %v; want them above it", final+1, ids)
	}
	aside := filepath.Join(dir, "incomplete", filepath.Base(incomplete), "pre-committed")
	if data, err := os.ReadFile(aside); err != nil || string(data) != "epoch" {
		t.Fatalf("incomplete checkpoint not moved aside intact to %s: %q, %v", aside, data, err)
	}
}
