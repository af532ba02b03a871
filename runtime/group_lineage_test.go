package runtime

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/chkstore"
	"github.com/weirstream/weir/internal/engine"
	"github.com/weirstream/weir/internal/s3dev"
	"github.com/weirstream/weir/internal/tasklineage"
)

// idleSource emits one record, then waits for more that never come.
type idleSource struct{ sent bool }

func (s *idleSource) Open(context.Context, TaskInfo, []byte) error { return nil }
func (s *idleSource) Read(ctx context.Context, out Collector[int]) error {
	if !s.sent {
		s.sent = true
		out.Collect(1)
		return nil
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Millisecond):
	}
	return nil
}
func (s *idleSource) Snapshot() ([]byte, error) { return []byte("position"), nil }
func (s *idleSource) Close() error              { return nil }

// nopSink accepts everything.
type nopSink struct{}

func (nopSink) Open(context.Context, TaskInfo, []byte) error      { return nil }
func (nopSink) Write(context.Context, int) error                  { return nil }
func (nopSink) PreCommit(context.Context, uint64) ([]byte, error) { return nil, nil }
func (nopSink) Commit(context.Context, uint64) error              { return nil }
func (nopSink) Close() error                                      { return nil }

// TestStaleOwnerCheckpointDeclined runs a task's job in its epoch with the
// member's epoch check before each manifest; once another member claims
// the task, the job's next checkpoint is declined and the job fails with
// ErrSuperseded, without restarting (it would only be declined again).
func TestStaleOwnerCheckpointDeclined(t *testing.T) {
	ctx := t.Context()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	lineage, err := tasklineage.Open(ctx, filepath.Join(t.TempDir(), "checkpoints"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	epoch, err := lineage.Claim(ctx, 0, "member-a", "")
	if err != nil {
		t.Fatal(err)
	}
	p := NewPipeline("orders")
	To(From(p, "src", func() (Source[int], error) { return &idleSource{}, nil }), "sink", func() (Sink[int], error) { return nopSink{}, nil })

	completed := make(chan uint64, 1024)
	var starts atomic.Int32
	cfg := Config{
		CheckpointDir: epoch.Location, CheckpointInterval: 5 * time.Millisecond, Logger: quiet,
		Restart: RestartStrategy{Attempts: 5, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, ResetAfter: time.Hour},
		Events: EventListener{
			Started:             func(StartInfo) { starts.Add(1) },
			CheckpointCompleted: func(info CheckpointInfo) { completed <- info.ID },
		},
	}
	cfg.tuneEngine = func(e *engine.Config) {
		e.BeforeManifest = func(uint64) error { return epoch.Current(ctx) }
	}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, p, cfg) }()
	<-completed // the owner checkpoints while its epoch is the newest

	if _, err := lineage.Claim(ctx, 0, "member-b", ""); err != nil {
		t.Fatal(err)
	}
	// One checkpoint may have passed its check before the claim.
	for after := 0; ; {
		select {
		case err := <-done:
			if !errors.Is(err, tasklineage.ErrSuperseded) {
				t.Fatalf("stale owner's job ended with %v, want ErrSuperseded", err)
			}
			if n := starts.Load(); n != 1 {
				t.Fatalf("the job started %d times, want once: a superseded task must not restart", n)
			}
			return
		case <-completed:
			if after++; after > 3 {
				t.Fatalf("the stale owner completed %d checkpoints after another member claimed the task", after)
			}
		case <-time.After(time.Minute): // a guard: checkpoints come every 5ms
			t.Fatal("the stale owner's job still runs a minute after another member claimed the task")
		}
	}
}

// fencedSink stands for a sink whose transactional ids another member's
// claim of the task took: once takeover is closed, its next pre-commit runs
// claim (another member takes the task, and its sinks fence this one's),
// and it and every later one fail.
type fencedSink struct {
	nopSink
	takeover <-chan struct{}
	claim    func()
	once     *sync.Once
}

func (s fencedSink) PreCommit(ctx context.Context, id uint64) ([]byte, error) {
	select {
	case <-s.takeover:
		s.once.Do(s.claim)
		return nil, errors.New("producer fenced: a newer producer has the transactional id")
	default:
		return s.nopSink.PreCommit(ctx, id)
	}
}

// TestStaleOwnerNotRestarted: a task's job whose sink fails because another
// member claimed the task (the new owner fenced it) does not restart in its
// stale epoch, whatever its restart strategy: a restart would open its
// sinks again and fence the new owner's. It ends with ErrSuperseded.
func TestStaleOwnerNotRestarted(t *testing.T) {
	ctx := t.Context()
	quiet := slog.New(slog.DiscardHandler)
	lineage, err := tasklineage.Open(ctx, filepath.Join(t.TempDir(), "checkpoints"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	epoch, err := lineage.Claim(ctx, 0, "member-a", "")
	if err != nil {
		t.Fatal(err)
	}
	takeover := make(chan struct{})
	claim := func() {
		if _, err := lineage.Claim(ctx, 0, "member-b", ""); err != nil {
			t.Error(err)
		}
	}
	p := NewPipeline("orders")
	To(From(p, "src", func() (Source[int], error) { return &idleSource{}, nil }), "sink",
		func() (Sink[int], error) {
			return fencedSink{takeover: takeover, claim: claim, once: new(sync.Once)}, nil
		})
	completed := make(chan uint64, 1024)
	var starts atomic.Int32
	m := &member{board: engine.NewBoard(), cfg: Config{
		CheckpointDir: epoch.Location, CheckpointInterval: 5 * time.Millisecond, Logger: quiet,
		Restart: RestartStrategy{Attempts: 5, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, ResetAfter: time.Hour},
		Events: EventListener{
			Started:             func(StartInfo) { starts.Add(1) },
			CheckpointCompleted: func(info CheckpointInfo) { completed <- info.ID },
		},
	}}
	defer m.cleanups.Wait()
	cfg := m.taskConfig(ctx, &memberTask{index: 0, logger: quiet}, epoch)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, p, cfg) }()
	<-completed // the owner checkpoints while its epoch is the newest
	close(takeover)
	err = <-done
	if !errors.Is(err, tasklineage.ErrSuperseded) {
		t.Fatalf("stale owner's job ended with %v, want ErrSuperseded", err)
	}
	if n := starts.Load(); n != 1 {
		t.Fatalf("the job started %d times, want once: a superseded task must not restart", n)
	}
}

// commitLog records the checkpoints a sink committed.
type commitLog struct {
	mu  sync.Mutex
	ids []uint64
}

func (l *commitLog) has(id uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.ids, id)
}

// committingSink is a nopSink that records its commits.
type committingSink struct {
	nopSink
	log *commitLog
}

func (s committingSink) Commit(_ context.Context, id uint64) error {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	s.log.ids = append(s.log.ids, id)
	return nil
}

// lineageRoots returns each kind of job checkpoint location a group uses, as
// package tasklineage's tests do: a directory holding the live state, a
// directory with the members' local directories, and a prefix on a
// development S3 server. local gives a member's local directory ("" for
// none).
func lineageRoots() map[string]struct{ location, local func(t *testing.T) string } {
	dir := func(t *testing.T) string { return filepath.Join(t.TempDir(), "checkpoints") }
	fresh := func(t *testing.T) string { return t.TempDir() }
	none := func(*testing.T) string { return "" }
	s3 := func(t *testing.T) string {
		s3dev.StartTest(t, "").SetEnv(t)
		return "s3://weir-test/orders"
	}
	return map[string]struct{ location, local func(t *testing.T) string }{
		"dir": {dir, none}, "dir+local-dir": {dir, fresh}, "s3": {s3, fresh},
	}
}

// TestStaleOwnerCheckpointAfterClaimNotCommitted closes the last window of
// a stale owner (package tasklineage): its checkpoint passes the epoch
// check before its manifest, another member then claims the task (its
// second read of the start point included), and only then does the
// manifest land. The new owner starts from the checkpoint before, so the
// stale owner must not commit this one: its output would be written twice.
// The interleaving is forced from the epoch check itself, on the
// coordinator's goroutine, so no timing decides it.
func TestStaleOwnerCheckpointAfterClaimNotCommitted(t *testing.T) {
	for name, r := range lineageRoots() {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			quiet := slog.New(slog.DiscardHandler)
			lineage, err := tasklineage.Open(ctx, r.location(t), quiet)
			if err != nil {
				t.Fatal(err)
			}
			local := r.local(t)
			epoch, err := lineage.Claim(ctx, 0, "member-a", local)
			if err != nil {
				t.Fatal(err)
			}
			commits, completed := &commitLog{}, &commitLog{}
			p := NewPipeline("orders")
			To(From(p, "src", func() (Source[int], error) { return &idleSource{}, nil }), "sink",
				func() (Sink[int], error) { return committingSink{log: commits}, nil })
			m := &member{board: engine.NewBoard(), cfg: Config{
				CheckpointDir: epoch.Location, LocalDir: local, CheckpointInterval: 5 * time.Millisecond, Logger: quiet,
				Restart: RestartStrategy{Attempts: 5, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, ResetAfter: time.Hour},
				Events: EventListener{CheckpointCompleted: func(info CheckpointInfo) {
					completed.mu.Lock()
					defer completed.mu.Unlock()
					completed.ids = append(completed.ids, info.ID)
				}},
			}}
			defer m.cleanups.Wait()
			cfg := m.taskConfig(ctx, &memberTask{index: 0, logger: quiet}, epoch)

			// Checkpoints complete in the stale owner's epoch until the
			// first is committed; the next to pass its check is the
			// zombie's: member-b claims the task before its manifest is
			// written.
			var first, prev, zombie uint64
			var next *tasklineage.Epoch
			tune := cfg.tuneEngine
			cfg.tuneEngine = func(e *engine.Config) {
				tune(e)
				check := e.BeforeManifest
				e.BeforeManifest = func(id uint64) error {
					if err := check(id); err != nil {
						return err
					}
					switch {
					case first == 0:
						first = id
					case zombie == 0 && commits.has(first):
						zombie = id
						var cerr error
						if next, cerr = lineage.Claim(ctx, 0, "member-b", r.local(t)); cerr != nil {
							t.Error(cerr)
						}
					}
					if zombie == 0 {
						prev = id
					}
					return nil
				}
			}
			err = Run(ctx, p, cfg)
			if !errors.Is(err, tasklineage.ErrSuperseded) {
				t.Fatalf("stale owner's job ended with %v, want ErrSuperseded", err)
			}
			if zombie == 0 || next == nil {
				t.Fatalf("the job ended before the claim the test forces (first checkpoint %d, committed: %v)", first, commits.ids)
			}
			// The window happened: the claim did not see the stale owner's
			// checkpoint, whose manifest was written after it.
			if want := (&tasklineage.Point{Epoch: epoch.Number, Checkpoint: prev}); next.Base == nil || *next.Base != *want {
				t.Fatalf("member-b's epoch %d starts from %+v, want %+v (the checkpoint before the claim)", next.Number, next.Base, *want)
			}
			if _, err := chkstore.ReadCheckpoint(ctx, epoch.Location, zombie); err != nil {
				t.Fatalf("the stale owner's checkpoint %d has no manifest (%v): the test did not open the window", zombie, err)
			}
			if commits.has(zombie) {
				t.Errorf("the stale owner committed checkpoint %d, which member-b does not restore (it starts from %d): its output is written twice", zombie, prev)
			}
			if completed.has(zombie) {
				t.Errorf("the stale owner reported checkpoint %d completed, which it must not commit", zombie)
			}
		})
	}
}
