package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/checkpoint"
	"github.com/weirstream/weir/internal/chkstore"
	"github.com/weirstream/weir/internal/jobtest"
	"github.com/weirstream/weir/internal/s3dev"
	"github.com/weirstream/weir/runtime"
)

const spRecords, spKeys = 20000, 100

// savepointJob is the counting job with a durable sink, whose source holds
// back the second half of its input until resume is closed.
type savepointJob struct {
	out    *durableOutput
	resume chan struct{}
	p      *runtime.Pipeline
}

func newSavepointJob() *savepointJob { return newPausingSavepointJob(nil) }

// newPausingSavepointJob is newSavepointJob whose source subtasks call
// paused when they start holding back the second half.
func newPausingSavepointJob(paused func()) *savepointJob {
	j := &savepointJob{out: &durableOutput{done: map[string]bool{}}, resume: make(chan struct{})}
	j.p = countingPipelineNamed("count", paused, spRecords, spKeys, newDurableSink(j.out), j.resume)
	return j
}

// runStopped runs p with cfg and stops it (Config.Stop, as SIGTERM does)
// after its first checkpoint.
func runStopped(t *testing.T, p *runtime.Pipeline, cfg runtime.Config) {
	t.Helper()
	stop := make(chan struct{})
	var once sync.Once
	cfg.Stop = stop
	cfg.Events.CheckpointCompleted = func(runtime.CheckpointInfo) { once.Do(func() { close(stop) }) }
	if err := runtime.Run(context.Background(), p, cfg); err != nil {
		t.Fatalf("stopped run: %v", err)
	}
}

// runRestored runs p with cfg to its end and returns the checkpoint it
// restored.
func runRestored(p *runtime.Pipeline, cfg runtime.Config) (restored uint64, err error) {
	cfg.Events.Started = func(info runtime.StartInfo) { restored = info.RestoredFrom }
	err = runtime.Run(context.Background(), p, cfg)
	return restored, err
}

// onlySavepoint returns the path of the one savepoint in location.
func onlySavepoint(t *testing.T, location string) string {
	t.Helper()
	list, err := checkpoint.List(context.Background(), location)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, in := range list {
		if in.Kind == checkpoint.KindSavepoint {
			paths = append(paths, strings.TrimSuffix(location, "/")+"/"+in.Dir)
		}
	}
	if len(paths) != 1 {
		t.Fatalf("%s holds savepoints %v, want one (all: %+v)", location, paths, list)
	}
	return paths[0]
}

// TestSavepointOnStopResumesElsewhere stops the counting job with
// --savepoint-dir, in a directory and in object storage (the development
// S3 server), then starts it from the savepoint into a new checkpoint
// location with a fresh --local-dir: the output is exact. A restart with
// the same flags resumes from the new location's newest checkpoint; the
// savepoint into the location of the first run, which holds another run,
// is refused.
func TestSavepointOnStopResumesElsewhere(t *testing.T) {
	for _, kind := range []string{"dir", "s3"} {
		t.Run(kind, func(t *testing.T) {
			var first, second, savepoints string
			if kind == "s3" {
				s3dev.StartTest(t, "").SetEnv(t)
				t.Chdir(t.TempDir())
				first, second, savepoints = "s3://weir-test/a", "s3://weir-test/b", "s3://weir-sp/savepoints"
			} else {
				first, second, savepoints = t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "savepoints")
			}
			j := newSavepointJob()
			base := runtime.Config{CheckpointInterval: 5 * time.Millisecond, Parallelism: 2, BatchSize: 64}

			cfg := base
			cfg.CheckpointDir, cfg.LocalDir, cfg.SavepointDir = first, t.TempDir(), savepoints
			runStopped(t, j.p, cfg)
			sp := onlySavepoint(t, savepoints)
			if kind == "dir" {
				checkNoHardLinks(t, sp)
			}

			close(j.resume)
			cfg = base
			cfg.CheckpointDir, cfg.LocalDir, cfg.FromSavepoint = second, t.TempDir(), sp
			restored, err := runRestored(j.p, cfg)
			if err != nil {
				t.Fatalf("run from savepoint %s: %v", sp, err)
			}
			if restored == 0 {
				t.Fatal("the run from the savepoint started afresh")
			}
			checkCounts(t, j.out.lines(), spRecords, spKeys)
			opened, err := chkstore.ReadSavepoint(context.Background(), sp)
			if err != nil {
				t.Fatal(err)
			}
			if d, err := checkpoint.Inspect(context.Background(), second, "latest"); err != nil || d.FromSavepoint != opened.Lineage() {
				t.Fatalf("newest checkpoint of the run from the savepoint: %+v, %v; want it from savepoint %s", d, err, opened.Lineage())
			}

			// The same flags again: the newest checkpoint of the second
			// location (its final one), not the savepoint.
			again, err := runRestored(j.p, cfg)
			if err != nil || again <= restored {
				t.Fatalf("restart with the same --from-savepoint restored %d, %v; want a checkpoint after %d", again, err, restored)
			}
			checkCounts(t, j.out.lines(), spRecords, spKeys)

			cfg.CheckpointDir = first
			_, err = runRestored(j.p, cfg)
			if !errors.Is(err, runtime.ErrIncompatibleCheckpoint) || !strings.Contains(err.Error(), "another run") || !strings.Contains(err.Error(), first) {
				t.Fatalf("savepoint into the location of another run: %v; want ErrIncompatibleCheckpoint naming %s", err, first)
			}
		})
	}
}

// checkNoHardLinks fails if a file under dir has another name: a savepoint
// must not share files with the checkpoint directory.
func checkNoHardLinks(t *testing.T, dir string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink != 1 {
			t.Errorf("%s has %d links: a savepoint must hold copies", path, st.Nlink)
		}
		files++
		return nil
	})
	if err != nil || files < 2 {
		t.Fatalf("savepoint %s: %d files, %v", dir, files, err)
	}
}

// TestSavepointTriggeredOverHTTP asks a running job for a savepoint with
// POST /api/savepoint once it has counted the first half of its input,
// stops it, and resumes from that savepoint into a new checkpoint
// directory: the output is exact. A request without a directory, to a job
// without --savepoint-dir, is refused with 400.
func TestSavepointTriggeredOverHTTP(t *testing.T) {
	const parallelism = 2
	half := make(chan struct{})
	var paused atomic.Int32
	j := newPausingSavepointJob(func() {
		if paused.Add(1) == parallelism {
			close(half)
		}
	})
	cfg := runtime.Config{CheckpointDir: t.TempDir(), CheckpointInterval: 5 * time.Millisecond, Parallelism: parallelism, BatchSize: 64,
		MetricsAddr: "127.0.0.1:0"}
	running, err := jobtest.Start(context.Background(), j.p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer running.Wait()
	defer running.Stop()
	// Every source subtask holds back the rest: the checkpoint of the
	// savepoint covers all the run reads, so it commits nothing after it.
	<-half

	code, body := postSavepoint(t, running.MetricsAddr(), "")
	if code != http.StatusBadRequest || !strings.Contains(body, "--savepoint-dir") {
		t.Fatalf("POST /api/savepoint without a directory: %d %s; want 400 naming --savepoint-dir", code, body)
	}
	savepoints := t.TempDir()
	code, body = postSavepoint(t, running.MetricsAddr(), savepoints)
	var res struct {
		Savepoint  string `json:"savepoint"`
		Checkpoint uint64 `json:"checkpoint"`
	}
	if err := json.Unmarshal([]byte(body), &res); code != http.StatusOK || err != nil || res.Checkpoint == 0 {
		t.Fatalf("POST /api/savepoint: %d %s (%v)", code, body, err)
	}
	if sp := onlySavepoint(t, savepoints); sp != res.Savepoint {
		t.Fatalf("POST answered savepoint %s, the directory holds %s", res.Savepoint, sp)
	}
	running.Stop()
	if err := running.Wait(); err != nil {
		t.Fatal(err)
	}

	close(j.resume)
	cfg = runtime.Config{CheckpointDir: t.TempDir(), FromSavepoint: res.Savepoint, CheckpointInterval: 5 * time.Millisecond, Parallelism: 2, BatchSize: 64}
	restored, err := runRestored(j.p, cfg)
	if err != nil || restored == 0 {
		t.Fatalf("run from savepoint %s: restored %d, %v", res.Savepoint, restored, err)
	}
	checkCounts(t, j.out.lines(), spRecords, spKeys)
}

// postSavepoint asks the job at addr for a savepoint in dir ("": the
// job's --savepoint-dir) and returns the status code and body.
func postSavepoint(t *testing.T, addr, dir string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"dir": dir})
	resp, err := http.Post("http://"+addr+"/api/savepoint", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String()
}

// TestSavepointOfRemovedOperator starts a pipeline whose counting operator
// was renamed from a savepoint of the original: refused, naming the
// operator, unless --allow-non-restored-state drops its state.
func TestSavepointOfRemovedOperator(t *testing.T) {
	j := newSavepointJob()
	savepoints := t.TempDir()
	runStopped(t, j.p, runtime.Config{CheckpointDir: t.TempDir(), SavepointDir: savepoints, CheckpointInterval: 5 * time.Millisecond})
	sp := onlySavepoint(t, savepoints)

	close(j.resume)
	renamed := countingPipelineNamed("counter", nil, spRecords, spKeys, newDurableSink(&durableOutput{done: map[string]bool{}}), j.resume)
	cfg := runtime.Config{CheckpointDir: t.TempDir(), FromSavepoint: sp, CheckpointInterval: 5 * time.Millisecond}
	_, err := runRestored(renamed, cfg)
	if !errors.Is(err, runtime.ErrIncompatibleCheckpoint) || !strings.Contains(err.Error(), `"count"`) || !strings.Contains(err.Error(), "--allow-non-restored-state") {
		t.Fatalf("renamed operator: %v; want ErrIncompatibleCheckpoint naming \"count\" and --allow-non-restored-state", err)
	}
	cfg.AllowNonRestoredState = true
	restored, err := runRestored(renamed, cfg)
	if err != nil || restored == 0 {
		t.Fatalf("renamed operator with --allow-non-restored-state: restored %d, %v", restored, err)
	}
}

// TestCorruptSavepointIsRefused damages one file of a savepoint: the start
// from it fails with checkpoint.ErrCorrupt naming the file's object.
func TestCorruptSavepointIsRefused(t *testing.T) {
	j := newSavepointJob()
	savepoints := t.TempDir()
	runStopped(t, j.p, runtime.Config{CheckpointDir: t.TempDir(), SavepointDir: savepoints, CheckpointInterval: 5 * time.Millisecond})
	sp := onlySavepoint(t, savepoints)
	const damaged = "operators/gen.0"
	path := filepath.Join(sp, filepath.FromSlash(damaged))
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		t.Fatalf("savepoint file %s: %d bytes, %v", path, len(data), err)
	}
	data[0] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = runRestored(j.p, runtime.Config{CheckpointDir: t.TempDir(), FromSavepoint: sp})
	if !errors.Is(err, checkpoint.ErrCorrupt) || !strings.Contains(err.Error(), damaged) {
		t.Fatalf("damaged savepoint: %v; want checkpoint.ErrCorrupt naming %s", err, damaged)
	}
}

// TestRetentionKeepsSavepoints keeps savepoints in the checkpoint directory
// itself, with one checkpoint retained: the savepoint asked for early and
// the one of the stop both outlive every checkpoint retention deleted, and
// verify.
func TestRetentionKeepsSavepoints(t *testing.T) {
	dir := t.TempDir()
	completed := make(chan uint64, 1024)
	cfg := runtime.Config{CheckpointDir: dir, SavepointDir: dir, RetainCheckpoints: 1, CheckpointInterval: 5 * time.Millisecond,
		MetricsAddr: "127.0.0.1:0",
		Events:      runtime.EventListener{CheckpointCompleted: func(info runtime.CheckpointInfo) { completed <- info.ID }}}
	j := newSavepointJob()
	running, err := jobtest.Start(context.Background(), j.p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer running.Wait()
	defer running.Stop()
	code, body := postSavepoint(t, running.MetricsAddr(), "")
	if code != http.StatusOK {
		t.Fatalf("POST /api/savepoint: %d %s", code, body)
	}
	var res struct{ Checkpoint uint64 }
	json.Unmarshal([]byte(body), &res)
	for id := range completed {
		if id > res.Checkpoint+3 { // three checkpoints deleted since
			break
		}
	}
	running.Stop()
	if err := running.Wait(); err != nil {
		t.Fatal(err)
	}
	results, err := checkpoint.VerifyAll(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range results {
		if !r.OK() {
			t.Errorf("%s %s: %+v", r.Kind, r.Dir, r.Bad)
		}
		kinds = append(kinds, r.Kind)
	}
	if strings.Join(kinds, ",") != "checkpoint,savepoint,savepoint" {
		t.Fatalf("after retention %s holds %v; want one checkpoint and both savepoints", dir, kinds)
	}
}
