package tasklineage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/weirstream/weir/internal/chkstore"
	"github.com/weirstream/weir/internal/s3dev"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// root is a kind of job checkpoint location.
type root struct {
	location func(tb testing.TB) string // a fresh one
	// local returns the local directory of a member: fresh, or "" for a
	// directory that holds the live state itself.
	local func(tb testing.TB) string
}

// roots returns each kind of job checkpoint location: a directory with and
// without the members' local directories, and a prefix on a development
// S3 server.
func roots(testing.TB) map[string]root {
	dir := func(tb testing.TB) string { return filepath.Join(tb.TempDir(), "checkpoints") }
	fresh := func(tb testing.TB) string { return tb.TempDir() }
	return map[string]root{
		"dir":           {dir, func(testing.TB) string { return "" }},
		"dir+local-dir": {dir, fresh},
		"s3": {func(tb testing.TB) string {
			s3dev.StartTest(tb, "").SetEnv(tb)
			return "s3://weir-test/orders"
		}, fresh},
	}
}

func open(tb testing.TB, root string) *Lineage {
	tb.Helper()
	l, err := Open(context.Background(), root, quiet)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// checkpoint completes checkpoint id in location, with state as the state
// of operator src, as the owner of the epoch would.
func checkpoint(t *testing.T, r root, location string, id uint64, state string) {
	t.Helper()
	s, err := chkstore.OpenLocation(context.Background(), location, r.local(t), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Begin(id); err != nil {
		t.Fatal(err)
	}
	rel, err := s.WriteOperatorState(id, "src", 0, []byte(state))
	if err != nil {
		t.Fatal(err)
	}
	m := &chkstore.Manifest{Job: "orders", ID: id, MaxParallelism: 128, Operators: []chkstore.SubtaskState{
		{Operator: "src", Subtask: 0, Parallelism: 4, StateFile: rel},
	}}
	if err := s.Complete(m); err != nil {
		t.Fatal(err)
	}
}

// restored returns the state of src in the checkpoint a job on location
// would restore, and its id.
func restored(t *testing.T, r root, location string) (uint64, string) {
	t.Helper()
	s, err := chkstore.OpenLocation(context.Background(), location, r.local(t), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err := s.Latest()
	if err != nil || m == nil {
		t.Fatalf("%s: no checkpoint to restore (%v)", location, err)
	}
	if err := s.Verify(m); err != nil {
		t.Fatal(err)
	}
	data, err := s.ReadOperatorState(m, "src", 0)
	if err != nil {
		t.Fatal(err)
	}
	return m.ID, string(data)
}

// TestStartIgnoresZombieManifests: the owner of epoch 1 is replaced by
// epoch 2, whose owner dies before it imported its base; the stale owner of
// epoch 1 then completes another checkpoint there. The next owner must
// start from epoch 2's recorded base, not from the zombie's checkpoint.
func TestStartIgnoresZombieManifests(t *testing.T) {
	for name, r := range roots(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := open(t, r.location(t))
			e1, err := l.Claim(ctx, 3, "member-a", r.local(t))
			if err != nil || e1.Number != 1 || e1.Base != nil {
				t.Fatalf("first claim = %+v, %v; want epoch 1, fresh", e1, err)
			}
			checkpoint(t, r, e1.Location, 1, "offset-100")
			// member-b claims epoch 2 and dies before the import.
			if err := l.create(ctx, claim{Task: 3, Epoch: 2, Owner: "member-b", Base: &Point{Epoch: 1, Checkpoint: 1}}); err != nil {
				t.Fatal(err)
			}
			checkpoint(t, r, e1.Location, 2, "offset-200 (zombie)")
			if err := e1.Current(ctx); !errors.Is(err, ErrSuperseded) {
				t.Fatalf("zombie's Current = %v, want ErrSuperseded", err)
			}

			want := &Point{Epoch: 1, Checkpoint: 1}
			if got, err := l.Start(ctx, 3); err != nil || !samePoint(got, want) {
				t.Fatalf("Start = %+v, %v; want %+v (epoch 2's base, not the zombie's checkpoint 2)", got, err, want)
			}
			e3, err := l.Claim(ctx, 3, "member-c", r.local(t))
			if err != nil || e3.Number != 3 || !samePoint(e3.Base, want) {
				t.Fatalf("claim = %+v, %v; want epoch 3 from %+v", e3, err, want)
			}
			id, state := restored(t, r, e3.Location)
			if state != "offset-100" || id <= 2 {
				t.Fatalf("epoch 3 restores checkpoint %d with %q; want offset-100 under an id above the zombie's 2", id, state)
			}
			if got, err := l.Start(ctx, 3); err != nil || !samePoint(got, &Point{Epoch: 3, Checkpoint: id}) {
				t.Fatalf("Start after the import = %+v, %v; want epoch 3's checkpoint %d", got, err, id)
			}
			// Another task's lineage is its own.
			if got, err := l.Start(ctx, 4); err != nil || got != nil {
				t.Fatalf("Start of task 4 = %+v, %v; want a fresh start", got, err)
			}
		})
	}
}

// TestClaimFollowsCheckpointCompletedDuringClaim: the owner of epoch 1,
// still running, completes checkpoint 2 after the new owner read its start
// point (checkpoint 1) and before its claim exists: the previous owner's
// epoch check passed, so it commits checkpoint 2's output. The new owner
// must start from checkpoint 2; from checkpoint 1 it would write that
// output again.
func TestClaimFollowsCheckpointCompletedDuringClaim(t *testing.T) {
	for name, r := range roots(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := open(t, r.location(t))
			e1, err := l.Claim(ctx, 3, "member-a", r.local(t))
			if err != nil {
				t.Fatal(err)
			}
			checkpoint(t, r, e1.Location, 1, "offset-100")
			l.afterStart = func() {
				l.afterStart = nil
				checkpoint(t, r, e1.Location, 2, "offset-200")
			}
			e, err := l.Claim(ctx, 3, "member-b", r.local(t))
			if err != nil {
				t.Fatal(err)
			}
			if want := (&Point{Epoch: 1, Checkpoint: 2}); !samePoint(e.Base, want) {
				t.Fatalf("epoch %d claimed from %+v; want a start from %+v, completed during the claim", e.Number, e.Base, *want)
			}
			if _, state := restored(t, r, e.Location); state != "offset-200" {
				t.Errorf("epoch %d restores %q, want offset-200", e.Number, state)
			}
			if err := e.Current(ctx); err != nil {
				t.Errorf("the new owner's epoch %d is not current: %v", e.Number, err)
			}
		})
	}
}

// TestClaimSupersededDuringImport: a member paused between writing its
// claim and importing its base wakes to find a newer owner that has
// checkpointed and cleaned the older epochs up. Its Claim fails with
// ErrSuperseded (a takeover, which the member handles as one), not with
// the import's missing files (a failure that made the member exit).
func TestClaimSupersededDuringImport(t *testing.T) {
	for name, r := range roots(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := open(t, r.location(t))
			e1, err := l.Claim(ctx, 2, "member-a", r.local(t))
			if err != nil {
				t.Fatal(err)
			}
			checkpoint(t, r, e1.Location, 1, "offset-100")
			l.beforeImport = func() {
				l.beforeImport = nil
				e3, err := l.Claim(ctx, 2, "member-c", r.local(t))
				if err != nil {
					t.Fatal(err)
				}
				checkpoint(t, r, e3.Location, 2, "offset-200")
				if err := e3.Cleanup(ctx); err != nil {
					t.Fatal(err)
				}
			}
			_, err = l.Claim(ctx, 2, "member-b", r.local(t))
			if !errors.Is(err, ErrSuperseded) {
				t.Fatalf("claim whose epoch was superseded and cleaned up during its import = %v, want ErrSuperseded", err)
			}
			if !strings.Contains(err.Error(), "owner member-c") {
				t.Fatalf("claim = %v, want it to name the new owner member-c", err)
			}
		})
	}
}

// TestClaimSameEpochOneWins races claims of one epoch: exactly one wins,
// the others fail with ErrSuperseded.
func TestClaimSameEpochOneWins(t *testing.T) {
	for name, r := range roots(t) {
		t.Run(name, func(t *testing.T) {
			l := open(t, r.location(t))
			const racers = 6
			errs := make([]error, racers)
			var wg sync.WaitGroup
			for i := range racers {
				wg.Go(func() {
					errs[i] = l.create(context.Background(), claim{Task: 0, Epoch: 1, Owner: fmt.Sprint("member-", i)})
				})
			}
			wg.Wait()
			won := 0
			for i, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, ErrSuperseded):
					t.Fatalf("claimer %d: %v, want ErrSuperseded", i, err)
				}
			}
			if won != 1 {
				t.Fatalf("%d claimers won epoch 1, want 1: %v", won, errs)
			}
			// A claim after the race takes the next epoch.
			e, err := l.Claim(context.Background(), 0, "member-late", r.local(t))
			if err != nil || e.Number != 2 {
				t.Fatalf("claim after the race = %+v, %v; want epoch 2", e, err)
			}
		})
	}
}

// TestCleanupKeepsStartPoint: while the newest epoch has no checkpoint of
// its own, cleanup keeps the epoch of its base; once it has one, every
// older epoch goes, and the start point still restores.
func TestCleanupKeepsStartPoint(t *testing.T) {
	for name, r := range roots(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := open(t, r.location(t))
			e1, err := l.Claim(ctx, 0, "member-a", r.local(t))
			if err != nil {
				t.Fatal(err)
			}
			checkpoint(t, r, e1.Location, 1, "offset-1")
			e2, err := l.Claim(ctx, 0, "member-b", r.local(t))
			if err != nil {
				t.Fatal(err)
			}
			checkpoint(t, r, e2.Location, 7, "offset-7")
			// member-c claims epoch 3 and dies before its import.
			if err := l.create(ctx, claim{Task: 0, Epoch: 3, Owner: "member-c", Base: &Point{Epoch: 2, Checkpoint: 7}}); err != nil {
				t.Fatal(err)
			}
			stale := &Epoch{Task: 0, Number: 3, l: l}
			if err := stale.Cleanup(ctx); err != nil {
				t.Fatal(err)
			}
			if got := epochs(t, l, 0); fmt.Sprint(got) != "[2 3]" {
				t.Fatalf("epochs after a cleanup with epoch 3 empty: %v, want [2 3] (epoch 2 holds the start point)", got)
			}
			if _, state := restored(t, r, l.Location(0, 2)); state != "offset-7" {
				t.Fatalf("epoch 2 restores %q, want offset-7", state)
			}
			e4, err := l.Claim(ctx, 0, "member-d", r.local(t))
			if err != nil || !samePoint(e4.Base, &Point{Epoch: 2, Checkpoint: 7}) {
				t.Fatalf("claim = %+v, %v; want epoch 4 from epoch 2's checkpoint 7", e4, err)
			}
			if err := e4.Cleanup(ctx); err != nil {
				t.Fatal(err)
			}
			if got := epochs(t, l, 0); fmt.Sprint(got) != "[4]" {
				t.Fatalf("epochs after epoch 4 has a checkpoint: %v, want [4]", got)
			}
			if _, state := restored(t, r, e4.Location); state != "offset-7" {
				t.Fatalf("epoch 4 restores %q, want offset-7", state)
			}
			if objs, err := l.objects.List(ctx, epochPrefix(0, 2)); err != nil || len(objs) != 0 {
				t.Fatalf("epoch 2 still holds %d objects (%v)", len(objs), err)
			}
		})
	}
}

// epochs lists the claimed epochs of task, ascending.
func epochs(t *testing.T, l *Lineage, task int) []uint64 {
	t.Helper()
	claims, err := l.claims(context.Background(), task)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for n := uint64(1); n <= newestEpoch(claims); n++ {
		if claims[n] != nil {
			out = append(out, n)
		}
	}
	return out
}

// TestStaleOwnerDeclined: once another member claimed the task, the former
// owner's Current (the engine's check before a manifest) fails with
// ErrSuperseded naming the new owner; the new owner's passes.
func TestStaleOwnerDeclined(t *testing.T) {
	ctx := context.Background()
	l := open(t, filepath.Join(t.TempDir(), "checkpoints"))
	old, err := l.Claim(ctx, 1, "member-a", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Current(ctx); err != nil {
		t.Fatalf("sole owner's Current = %v", err)
	}
	cur, err := l.Claim(ctx, 1, "member-b", "")
	if err != nil {
		t.Fatal(err)
	}
	err = old.Current(ctx)
	if !errors.Is(err, ErrSuperseded) {
		t.Fatalf("stale owner's Current = %v, want ErrSuperseded", err)
	}
	if !strings.Contains(err.Error(), "another's 2 (owner member-b, since ") {
		t.Fatalf("stale owner's Current = %v, want it to name epoch 2 and its owner member-b", err)
	}
	if err := cur.Current(ctx); err != nil {
		t.Fatalf("new owner's Current = %v", err)
	}
}

// TestMembersWithAndWithoutLocalDir moves a task on a shared directory
// between members with a local directory and members without one: each
// new owner starts from the previous owner's newest checkpoint, however it
// was written.
func TestMembersWithAndWithoutLocalDir(t *testing.T) {
	ctx := context.Background()
	l := open(t, filepath.Join(t.TempDir(), "checkpoints"))
	with := root{local: func(tb testing.TB) string { return tb.TempDir() }}
	without := root{local: func(testing.TB) string { return "" }}
	var id uint64 = 10
	for i, r := range []root{without, with, without, with} {
		e, err := l.Claim(ctx, 0, fmt.Sprint("member-", i), r.local(t))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			if _, state := restored(t, r, e.Location); state != fmt.Sprint("offset-", id) {
				t.Fatalf("owner %d (local directory %v) starts from %q, want offset-%d", i, r.local(t) != "", state, id)
			}
		}
		id += 10
		checkpoint(t, r, e.Location, id, fmt.Sprint("offset-", id))
		if err := e.Cleanup(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkEpochCurrent measures the epoch check the engine runs twice a
// checkpoint in group mode (before the manifest and before the commit), on
// a task with a superseded epoch not yet cleaned up, as after a takeover.
func BenchmarkEpochCurrent(b *testing.B) {
	for name, r := range roots(b) {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			l := open(b, r.location(b))
			for _, owner := range []string{"member-a", "member-b"} {
				if _, err := l.Claim(ctx, 0, owner, r.local(b)); err != nil {
					b.Fatal(err)
				}
			}
			e := &Epoch{Task: 0, Number: 2, l: l}
			for b.Loop() {
				if err := e.Current(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
