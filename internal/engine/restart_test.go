package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/file"
	"github.com/weirstream/weir/internal/chkstore"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
)

// The runtime's restart log messages.
const (
	logRestarting     = "job failed; restarting from the last complete checkpoint"
	logStoppedBackoff = "stopped while waiting to restart; the next start resumes from the last complete checkpoint"
)

var errFlaky = errors.New("flaky sink")

// flakyPlan makes a file sink fail transiently: subtask 0 fails its first
// Commit in each of the first failures attempts of the job (an attempt is an
// Open of subtask 0). The Commit fails before the file sink's, so the
// checkpoint is complete and not committed: the restart must commit it.
type flakyPlan struct {
	failures int
	onOpen   func(attempt int) error // before the sink opens; may be nil
	onFail   func(attempt int)       // before the Commit fails; may be nil

	mu       sync.Mutex
	attempts int
	opened   []time.Time // per attempt
	failed   []time.Time // per failed attempt
}

func (p *flakyPlan) sink(t *testing.T, dir string) runtime.SinkFactory[string] {
	files, err := file.NewSink(file.LinesTo(dir))
	if err != nil {
		t.Fatal(err)
	}
	return func() (runtime.Sink[string], error) {
		s, err := files()
		return &flakySink{Sink: s, plan: p}, err
	}
}

type flakySink struct {
	runtime.Sink[string]
	plan    *flakyPlan
	attempt int // 0 for subtasks other than 0
}

func (s *flakySink) Open(ctx context.Context, info runtime.TaskInfo, restored []byte) error {
	if info.Subtask == 0 {
		p := s.plan
		p.mu.Lock()
		p.attempts++
		s.attempt = p.attempts
		p.opened = append(p.opened, time.Now())
		p.mu.Unlock()
		if p.onOpen != nil {
			if err := p.onOpen(s.attempt); err != nil {
				return err
			}
		}
	}
	return s.Sink.Open(ctx, info, restored)
}

func (s *flakySink) Commit(ctx context.Context, id uint64) error {
	if p := s.plan; s.attempt > 0 && s.attempt <= p.failures {
		if p.onFail != nil {
			p.onFail(s.attempt)
		}
		p.mu.Lock()
		p.failed = append(p.failed, time.Now())
		p.mu.Unlock()
		return fmt.Errorf("%w: commit of checkpoint %d in attempt %d", errFlaky, id, s.attempt)
	}
	return s.Sink.Commit(ctx, id)
}

func (p *flakyPlan) counts() (attempts int, opened, failed []time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.attempts, slices.Clone(p.opened), slices.Clone(p.failed)
}

// restartConfig is the configuration of the restart tests: the source holds
// back half its input until the first checkpoint completed, so that the
// first failure falls in the middle of the input.
func restartConfig(dir string, logger *slog.Logger, r runtime.RestartStrategy) (runtime.Config, chan struct{}) {
	resume := make(chan struct{})
	var once sync.Once
	return runtime.Config{
		CheckpointDir:      dir,
		CheckpointInterval: 5 * time.Millisecond,
		Parallelism:        2,
		BatchSize:          64,
		Logger:             logger,
		Restart:            r,
		Events: runtime.EventListener{CheckpointCompleted: func(runtime.CheckpointInfo) {
			once.Do(func() { close(resume) })
		}},
	}, resume
}

// countingJob returns a run of the counting job into out under r, with
// plan's failures.
func countingJob(t *testing.T, out string, logs *logCapture, r runtime.RestartStrategy, plan *flakyPlan, edit func(*runtime.Config)) func(context.Context) error {
	cfg, resume := restartConfig(filepath.Join(t.TempDir(), "checkpoints"), logs.logger(), r)
	if edit != nil {
		edit(&cfg)
	}
	p := countingPipelineTo(20000, 100, plan.sink(t, out), resume)
	return func(ctx context.Context) error { return runtime.Run(ctx, p, cfg) }
}

// outputLines returns the sorted lines of the visible files of a file sink.
func outputLines(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, file.DefaultPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
	}
	slices.Sort(lines)
	return lines
}

// TestRestartRecoversFromTransientFailures runs a job whose sink fails
// transiently in its first two attempts: restarted in the process from its
// last checkpoint, it must complete with exactly the output of an
// uninterrupted run, log each restart with its attempt, backoff and cause,
// wait at least the backoff, and count the restarts in weir_restarts_total
// on the same metrics address across attempts.
func TestRestartRecoversFromTransientFailures(t *testing.T) {
	want := filepath.Join(t.TempDir(), "want")
	if err := countingJob(t, want, &logCapture{}, runtime.RestartStrategy{}, &flakyPlan{}, nil)(context.Background()); err != nil {
		t.Fatal(err)
	}

	got := filepath.Join(t.TempDir(), "got")
	logs := &logCapture{}
	scrapeNow, scraped := make(chan struct{}), make(chan struct{})
	plan := &flakyPlan{failures: 2, onOpen: func(attempt int) error {
		if attempt == 3 { // the attempt after two restarts: hold it while the test scrapes
			close(scrapeNow)
			<-scraped
		}
		return nil
	}}
	backoff := runtime.RestartStrategy{Attempts: 3, Backoff: 20 * time.Millisecond, MaxBackoff: 30 * time.Millisecond}
	run := countingJob(t, got, logs, backoff, plan, func(c *runtime.Config) { c.MetricsAddr = "127.0.0.1:0" })
	done := make(chan error, 1)
	go func() { done <- run(context.Background()) }()
	select {
	case <-scrapeNow:
	case err := <-done:
		t.Fatalf("the job ended before its third attempt: %v", err)
	}
	url := logs.find("serving metrics and status")
	if len(url) != 1 {
		t.Fatalf("%d status servers started, want 1 for all attempts", len(url))
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(url[0].attrs["url"].String(), "http://"), "/")
	if v, ok := value(scrape(t, addr), "weir_restarts_total"); v != 2 {
		t.Errorf("weir_restarts_total = %v (present %v) after 2 restarts, want 2", v, ok)
	}
	close(scraped)
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want success after the restarts", err)
	}

	if w, g := outputLines(t, want), outputLines(t, got); !slices.Equal(w, g) {
		t.Fatalf("output after restarts differs from an uninterrupted run: %d lines, want %d\ngot  %v\nwant %v", len(g), len(w), head(g), head(w))
	}
	restarts := logs.find(logRestarting)
	if len(restarts) != 2 {
		t.Fatalf("%d restarts logged, want 2: %v", len(restarts), restarts)
	}
	_, opened, failed := plan.counts()
	wantBackoff := []time.Duration{20 * time.Millisecond, 30 * time.Millisecond} // doubled, capped
	for i, r := range restarts {
		if r.level != slog.LevelWarn || r.attrs["attempt"].Int64() != int64(i+1) || r.attrs["attempts"].Int64() != 3 ||
			r.attrs["backoff"].Duration() != wantBackoff[i] || !strings.Contains(r.attrs["err"].String(), fmt.Sprintf("in attempt %d", i+1)) {
			t.Errorf("restart %d logged as %v; want warn, attempt %d of 3, backoff %v, the cause", i+1, r, i+1, wantBackoff[i])
		}
		if waited := opened[i+1].Sub(failed[i]); waited < wantBackoff[i] {
			t.Errorf("restart %d came %v after the failure, before its backoff %v", i+1, waited, wantBackoff[i])
		}
	}
	if len(logs.find("restoring checkpoint")) == 0 {
		t.Error("no restart restored a checkpoint")
	}
}

// TestRestartAttemptsResetAfterHealthyRunning checks the bound on restarts
// in a row and its reset: with one attempt, a job failing three times fails
// with the last error unless each attempt ran ResetAfter first.
func TestRestartAttemptsResetAfterHealthyRunning(t *testing.T) {
	for _, tc := range []struct {
		resetAfter time.Duration
		wantErr    string // "" for success
	}{
		{time.Hour, "giving up after --restart-attempts 1 restarts in a row: "},
		{time.Nanosecond, ""}, // every attempt ran long enough
	} {
		t.Run(fmt.Sprint("reset after ", tc.resetAfter), func(t *testing.T) {
			logs := &logCapture{}
			plan := &flakyPlan{failures: 3}
			r := runtime.RestartStrategy{Attempts: 1, Backoff: time.Millisecond, ResetAfter: tc.resetAfter}
			err := countingJob(t, t.TempDir(), logs, r, plan, nil)(context.Background())
			attempts, _, _ := plan.counts()
			restarts := logs.find(logRestarting)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, errFlaky) || !strings.HasPrefix(err.Error(), tc.wantErr) || !strings.HasSuffix(err.Error(), "in attempt 2") {
					t.Fatalf("Run = %v; want %q… with the last attempt's (2) error", err, tc.wantErr)
				}
				if attempts != 2 || len(restarts) != 1 {
					t.Fatalf("%d attempts, %d restarts; want 2 and 1", attempts, len(restarts))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if attempts != 4 || len(restarts) != 3 {
				t.Fatalf("%d attempts, %d restarts; want 4 and 3", attempts, len(restarts))
			}
			for _, r := range restarts {
				if r.attrs["attempt"].Int64() != 1 || r.attrs["backoff"].Duration() != time.Millisecond {
					t.Errorf("restart logged %v; want attempt 1 and the initial backoff after a reset", r.attrs)
				}
			}
		})
	}
}

// TestRestartStopsAtUnrecoverableErrors checks that errors no restart can fix
// end the job at once, in the first attempt or in a restart, and that a
// panic is restarted.
func TestRestartStopsAtUnrecoverableErrors(t *testing.T) {
	errGone := fmt.Errorf("%w: promised data is gone", runtime.ErrUnrecoverable)
	for _, tc := range []struct {
		name         string
		plan         *flakyPlan
		onRestart    func(checkpoints string) // called as the restart is logged, between attempts
		want         error
		wantRestarts int
	}{
		{"sink says unrecoverable", &flakyPlan{onOpen: func(int) error { return errGone }}, nil, runtime.ErrUnrecoverable, 0},
		{"corrupt checkpoint on restart", &flakyPlan{failures: 1}, func(checkpoints string) { corruptNewestCheckpoint(t, checkpoints) },
			chkstore.ErrCorrupt, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkpoints := filepath.Join(t.TempDir(), "checkpoints")
			logs := &logCapture{onRecord: func(r logRecord) {
				if r.msg == logRestarting && tc.onRestart != nil {
					tc.onRestart(checkpoints)
				}
			}}
			err := countingJob(t, t.TempDir(), logs, runtime.RestartStrategy{Attempts: 3, Backoff: time.Millisecond}, tc.plan,
				func(c *runtime.Config) { c.CheckpointDir = checkpoints })(context.Background())
			if !errors.Is(err, tc.want) {
				t.Fatalf("Run = %v, want an error wrapping %v", err, tc.want)
			}
			restarts := logs.find(logRestarting)
			if attempts, _, _ := tc.plan.counts(); attempts != 1 || len(restarts) != tc.wantRestarts {
				t.Fatalf("%d sink opens, restarts logged: %v; want 1 open and %d restarts", attempts, restarts, tc.wantRestarts)
			}
		})
	}

	t.Run("panic restarts", func(t *testing.T) {
		logs := &logCapture{}
		p := runtime.NewPipeline("panics")
		s := operators.Map(runtime.From(p, "gen", newGen(100)), check)
		runtime.To(operators.Map(s, str), "sink", newMemSink(&memOutput{}))
		err := runtime.Run(context.Background(), p, runtime.Config{CheckpointDir: t.TempDir(), Logger: logs.logger(),
			Restart: runtime.RestartStrategy{Attempts: 2, Backoff: time.Millisecond}})
		if !errors.Is(err, runtime.ErrPanic) || len(logs.find(logRestarting)) != 2 {
			t.Fatalf("Run = %v after %d restarts; want ErrPanic after 2", err, len(logs.find(logRestarting)))
		}
	})
}

// corruptNewestCheckpoint appends a byte to a file of the newest complete
// checkpoint in dir.
func corruptNewestCheckpoint(t *testing.T, dir string) {
	chks, _ := filepath.Glob(filepath.Join(dir, "chk-*", "MANIFEST"))
	if len(chks) == 0 {
		t.Error("no complete checkpoint to corrupt")
		return
	}
	slices.Sort(chks)
	var victim string
	filepath.WalkDir(filepath.Dir(chks[len(chks)-1]), func(path string, d os.DirEntry, err error) error {
		switch {
		case err != nil || victim != "":
			return err
		case d.IsDir() && d.Name() == "committed": // not in the manifest
			return filepath.SkipDir
		case !d.IsDir() && d.Name() != "MANIFEST":
			victim = path
		}
		return nil
	})
	f, err := os.OpenFile(victim, os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.Write([]byte("x"))
		f.Close()
	}
	if err != nil {
		t.Errorf("corrupt %q: %v", victim, err)
	}
}

// TestRestartStopsDuringBackoff checks that cancelling Run's context during
// the wait before a restart ends Run at once.
func TestRestartStopsDuringBackoff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &logCapture{onRecord: func(r logRecord) {
		if r.msg == logRestarting {
			cancel()
		}
	}}
	run := countingJob(t, t.TempDir(), logs, runtime.RestartStrategy{Attempts: 3, Backoff: time.Hour}, &flakyPlan{failures: 3}, nil)
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute): // the backoff is an hour
		t.Fatal("Run did not return within a minute of a cancel during an hour's backoff")
	}
}

const restartHelperEnv = "WEIR_RUNTIME_RESTART_HELPER"

// TestRestartMainHelper is not a test: run as a child by TestMainRestarts,
// it runs Main on a job whose sink always fails, with the restart strategy
// its environment names, and exits with its status.
func TestRestartMainHelper(t *testing.T) {
	mode, dir, ok := strings.Cut(os.Getenv(restartHelperEnv), ":")
	if !ok {
		t.Skip("helper process")
	}
	r := runtime.RestartStrategy{Attempts: 2, Backoff: time.Millisecond}
	if mode == "signal" {
		r = runtime.RestartStrategy{Attempts: 5, Backoff: time.Hour}
	}
	cfg, resume := restartConfig(filepath.Join(dir, "checkpoints"), slog.New(slog.NewTextHandler(os.Stderr, nil)), r)
	plan := &flakyPlan{failures: 1 << 30}
	runtime.Main(countingPipelineTo(20000, 100, plan.sink(t, filepath.Join(dir, "out")), resume), cfg)
}

// TestMainRestarts checks Main's exit status after restarts: 1 with the last
// error once the attempts are exhausted, and 0 when SIGTERM arrives during
// the wait before a restart, which it must cut short.
func TestMainRestarts(t *testing.T) {
	t.Run("exhausted", func(t *testing.T) {
		child := exec.Command(os.Args[0], "-test.run=^TestRestartMainHelper$")
		child.Env = append(os.Environ(), restartHelperEnv+"=exhaust:"+t.TempDir())
		out, err := child.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("want exit status 1, got %v\n%s", err, out)
		}
		want := "count: giving up after --restart-attempts 2 restarts in a row: "
		if !strings.Contains(string(out), want) || !strings.Contains(string(out), "flaky sink: commit of checkpoint") || !strings.Contains(string(out), "in attempt 3\n") {
			t.Fatalf("output lacks %q… with the last attempt's (3) error:\n%s", want, out)
		}
	})
	t.Run("signal during backoff", func(t *testing.T) {
		child := exec.Command(os.Args[0], "-test.run=^TestRestartMainHelper$")
		child.Env = append(os.Environ(), restartHelperEnv+"=signal:"+t.TempDir())
		stderr, err := child.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			out.WriteString(lines.Text() + "\n")
			if strings.Contains(lines.Text(), logRestarting) {
				break // waiting an hour
			}
		}
		if err := child.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() {
			for lines.Scan() {
				out.WriteString(lines.Text() + "\n")
			}
			exited <- child.Wait()
		}()
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("want exit status 0 after SIGTERM during the backoff, got %v\n%s", err, out.String())
			}
		case <-time.After(time.Minute): // the backoff is an hour
			child.Process.Kill()
			<-exited
			t.Fatalf("SIGTERM did not end the backoff within a minute\n%s", out.String())
		}
		if !strings.Contains(out.String(), logStoppedBackoff) {
			t.Fatalf("no %q logged:\n%s", logStoppedBackoff, out.String())
		}
	})
}

// logCapture keeps the records of the loggers it makes, from info up.
type logCapture struct {
	onRecord func(logRecord) // may be nil
	mu       sync.Mutex
	recs     []logRecord
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]slog.Value
}

func (r logRecord) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v %q", r.level, r.msg)
	for _, k := range slices.Sorted(maps.Keys(r.attrs)) {
		fmt.Fprintf(&b, " %s=%v", k, r.attrs[k])
	}
	return b.String()
}

func (c *logCapture) logger() *slog.Logger { return slog.New(captureHandler{c}) }

// find returns the records with message msg.
func (c *logCapture) find(msg string) []logRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []logRecord
	for _, r := range c.recs {
		if r.msg == msg {
			out = append(out, r)
		}
	}
	return out
}

type captureHandler struct{ c *logCapture }

func (captureHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h captureHandler) WithAttrs([]slog.Attr) slog.Handler         { return h }
func (h captureHandler) WithGroup(string) slog.Handler              { return h }

func (h captureHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]slog.Value{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Resolve()
		return true
	})
	h.c.mu.Lock()
	h.c.recs = append(h.c.recs, rec)
	h.c.mu.Unlock()
	if h.c.onRecord != nil {
		h.c.onRecord(rec)
	}
	return nil
}
