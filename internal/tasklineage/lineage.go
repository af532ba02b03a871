package tasklineage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weirstream/weir/internal/chkstore"
	"github.com/weirstream/weir/internal/manifest"
	"github.com/weirstream/weir/internal/objstore"
)

// ErrSuperseded is wrapped when another owner claimed a newer epoch of the
// task: this one no longer owns it and must not checkpoint it.
var ErrSuperseded = errors.New("tasklineage: the task has a newer owner")

// claimsDir is the directory of a task's claims, one object per epoch.
const claimsDir = "claims"

// Lineage is the tasks' checkpoints under a job's checkpoint location.
type Lineage struct {
	root    string
	objects objstore.Store
	logger  *slog.Logger
	// afterStart, if set, runs in Claim between reading the start point
	// and writing the claim: tests complete a checkpoint of the previous
	// owner there.
	afterStart func()
	// beforeImport, if set, runs in Claim once the claim is written, before
	// the base is imported: tests let a newer owner take the task there.
	beforeImport func()
}

// maxReclaims bounds the claims one Claim writes while the previous owner
// completes checkpoints (see Claim): once the first claim exists its epoch
// check declines every further checkpoint, so two claims suffice unless
// the owner had several past the check.
const maxReclaims = 5

// Open opens the checkpoint location root (a directory or s3://), creating
// it (or its bucket) if needed.
func Open(ctx context.Context, root string, logger *slog.Logger) (*Lineage, error) {
	if logger == nil {
		logger = slog.Default()
	}
	objects, err := objstore.Open(ctx, root, objstore.Options{CreateBucket: true, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("task checkpoints: %w", err)
	}
	return &Lineage{root: objects.Location(), objects: objects, logger: logger}, nil
}

// Point is a complete checkpoint of an epoch of a task.
type Point struct {
	Epoch      uint64 `json:"epoch"`
	Checkpoint uint64 `json:"checkpoint"`
}

// claim is what claims/epoch-<n> holds.
type claim struct {
	Task    int       `json:"task"`
	Epoch   uint64    `json:"epoch"`
	Owner   string    `json:"owner"`
	Base    *Point    `json:"base,omitempty"` // nil: a fresh start
	Created time.Time `json:"created"`
}

// Epoch is an epoch of a task claimed by this process.
type Epoch struct {
	Task   int
	Number uint64
	// Location is the epoch's checkpoint location: the task's
	// Config.CheckpointDir.
	Location string
	// Base is the checkpoint the epoch started from, imported into
	// Location; nil for a fresh start.
	Base *Point
	// Prior are the task's older epochs that had claims when this one was
	// claimed, ascending: their owners may still run (expelled but not yet
	// told, or paused), so this owner fences what they may have left open
	// (runtime.TaskInfo.PriorEpochs). Epochs deleted by Cleanup are not
	// listed: the owner of a newer epoch fenced them before its first
	// checkpoint, which the deletion waited for.
	Prior []uint64
	l     *Lineage
}

func taskPrefix(task int) string            { return "task-" + strconv.Itoa(task) }
func epochPrefix(task int, n uint64) string { return fmt.Sprintf("%s/epoch-%d", taskPrefix(task), n) }
func claimPrefix(task int) string           { return taskPrefix(task) + "/" + claimsDir + "/epoch-" }
func claimKey(task int, n uint64) string    { return claimPrefix(task) + strconv.FormatUint(n, 10) }

// Location returns the checkpoint location of epoch n of task.
func (l *Lineage) Location(task int, n uint64) string {
	return chkstore.JoinLocation(l.root, epochPrefix(task, n))
}

// Claim takes task for owner (named in the claim and the logs): it claims
// the epoch after the newest, with the task's start point as its base, and
// imports that checkpoint into the new epoch, staging it in localDir for a
// location in object storage. It fails with ErrSuperseded if another
// claimer took that epoch first.
//
// NB: the start point is read before the claim is written, and the
// previous owner, still running (expelled but not yet told, or not yet
// stopped), may complete a checkpoint in between: it passed its epoch check
// before the claim existed, and commits that checkpoint's transactions.
// Starting from the older point would replay what they hold (duplicates),
// and its sinks would find their transactional ids reused. So Claim reads
// the start point again once the claim is written, and if it moved, claims
// the next epoch from the newer point (the first stays empty: no start
// point is ever read from it but its base, which the newer claim
// supersedes).
func (l *Lineage) Claim(ctx context.Context, task int, owner, localDir string) (*Epoch, error) {
	claims, err := l.claims(ctx, task)
	if err != nil {
		return nil, err
	}
	prev := newestEpoch(claims)
	base, err := l.start(ctx, task, prev, claims[prev])
	if err != nil {
		return nil, err
	}
	if l.afterStart != nil {
		l.afterStart()
	}
	e := &Epoch{Task: task, Number: prev, Prior: slices.Sorted(maps.Keys(claims)), l: l}
	for range maxReclaims {
		e.Number++
		e.Location, e.Base = l.Location(task, e.Number), base
		if err := l.create(ctx, claim{Task: task, Epoch: e.Number, Owner: owner, Base: base, Created: time.Now().UTC()}); err != nil {
			return nil, err
		}
		if base, err = l.start(ctx, task, prev, claims[prev]); err != nil {
			return nil, err
		}
		if samePoint(base, e.Base) {
			if l.beforeImport != nil {
				l.beforeImport()
			}
			if err := l.claimed(ctx, e, owner, localDir); err != nil {
				return nil, supersededOr(ctx, e, err)
			}
			return e, nil
		}
		l.logger.Info("the task's previous owner completed a checkpoint while this member claimed the task: claiming again, from it",
			"task", task, "epoch", e.Number, "previous_owner", claims[prev].Owner, "base", e.Base, "newer", base)
	}
	return nil, fmt.Errorf("task %d: the owner of epoch %d completed %d checkpoints while this member claimed the task; it should have stopped at the first",
		task, prev, maxReclaims)
}

// supersededOr returns the error of e's Current if another owner claimed a
// newer epoch, and err otherwise. A member paused during its claim (past
// the group's session) wakes to find its task taken over and the epochs
// before the new owner's cleaned up, its import's source or destination
// with them: that is a takeover, which the member handles as one, not a
// failure of its own.
func supersededOr(ctx context.Context, e *Epoch, err error) error {
	if cur := e.Current(ctx); errors.Is(cur, ErrSuperseded) {
		return fmt.Errorf("%w (the import of its base failed: %v)", cur, err)
	}
	return err
}

// samePoint reports whether a and b are the same start point.
func samePoint(a, b *Point) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// claimed imports e's base into e, whose claim owner wrote.
func (l *Lineage) claimed(ctx context.Context, e *Epoch, owner, localDir string) error {
	if e.Base != nil {
		if err := l.importBase(ctx, e, localDir); err != nil {
			return err
		}
	}
	l.logger.Info("claimed task checkpoints", "task", e.Task, "epoch", e.Number, "owner", owner, "location", e.Location, "base", e.Base)
	return nil
}

// Start returns the point a new owner of task starts from, nil for a fresh
// start.
func (l *Lineage) Start(ctx context.Context, task int) (*Point, error) {
	claims, err := l.claims(ctx, task)
	if err != nil {
		return nil, err
	}
	newest := newestEpoch(claims)
	return l.start(ctx, task, newest, claims[newest])
}

// start returns the start point after epoch n (claimed by c): its newest
// complete checkpoint, or, if it has none, its own base. Older epochs are
// never searched: what a stale owner wrote there after n was claimed must
// not be restored.
func (l *Lineage) start(ctx context.Context, task int, n uint64, c *claim) (*Point, error) {
	if n == 0 {
		return nil, nil
	}
	id, err := l.newestComplete(ctx, task, n)
	if err != nil {
		return nil, err
	}
	if id != 0 {
		return &Point{Epoch: n, Checkpoint: id}, nil
	}
	return c.Base, nil
}

// newestComplete returns the id of the newest checkpoint of epoch n that
// has a manifest, or 0.
func (l *Lineage) newestComplete(ctx context.Context, task int, n uint64) (uint64, error) {
	prefix := epochPrefix(task, n) + "/"
	objs, err := l.objects.List(ctx, prefix+manifest.DirPrefix)
	if err != nil {
		return 0, fmt.Errorf("task %d: epoch %d: %w", task, n, err)
	}
	var newest uint64
	for _, o := range objs {
		dir, file, _ := strings.Cut(strings.TrimPrefix(o.Key, prefix), "/")
		if id, ok := manifest.ParseDirName(dir); ok && file == manifest.Name && dir == manifest.DirName(id) {
			newest = max(newest, id)
		}
	}
	return newest, nil
}

// claims reads the claims of task by epoch.
func (l *Lineage) claims(ctx context.Context, task int) (map[uint64]*claim, error) {
	prefix := claimPrefix(task)
	objs, err := l.objects.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("task %d: claims: %w", task, err)
	}
	out := map[uint64]*claim{}
	for _, o := range objs {
		n, err := strconv.ParseUint(strings.TrimPrefix(o.Key, prefix), 10, 64)
		if err != nil || n == 0 {
			continue // not a claim
		}
		data, err := l.objects.GetBytes(ctx, o.Key)
		if errors.Is(err, objstore.ErrNotFound) {
			continue // deleted by a cleanup meanwhile: an older epoch
		}
		if err != nil {
			return nil, fmt.Errorf("task %d: claim of epoch %d: %w", task, n, err)
		}
		c := &claim{}
		if err := json.Unmarshal(data, c); err != nil || c.Epoch != n {
			return nil, fmt.Errorf("task %d: claim %s in %s is damaged (%v); it decides where the task restarts from: repair it or remove the task's checkpoints", task, o.Key, l.root, err)
		}
		out[n] = c
	}
	return out, nil
}

func newestEpoch(claims map[uint64]*claim) uint64 {
	var n uint64
	for e := range claims {
		n = max(n, e)
	}
	return n
}

// create writes c's claim, failing with ErrSuperseded if it exists.
func (l *Lineage) create(ctx context.Context, c claim) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	err = l.objects.Create(ctx, claimKey(c.Task, c.Epoch), data)
	if errors.Is(err, objstore.ErrExists) {
		return fmt.Errorf("%w: task %d: another member claimed epoch %d first", ErrSuperseded, c.Task, c.Epoch)
	}
	if err != nil {
		return fmt.Errorf("task %d: claim epoch %d: %w", c.Task, c.Epoch, err)
	}
	return nil
}

// importBase imports e's base into e's location.
func (l *Lineage) importBase(ctx context.Context, e *Epoch, localDir string) error {
	fail := func(err error) error {
		return fmt.Errorf("task %d: epoch %d: import checkpoint %d of epoch %d: %w", e.Task, e.Number, e.Base.Checkpoint, e.Base.Epoch, err)
	}
	src, err := chkstore.ReadCheckpoint(ctx, l.Location(e.Task, e.Base.Epoch), e.Base.Checkpoint)
	if err != nil {
		return fail(err)
	}
	store, err := chkstore.OpenLocation(ctx, e.Location, localDir, l.logger)
	if err != nil {
		return fail(err)
	}
	defer store.Close()
	if _, err := store.ImportSavepoint(ctx, src); err != nil {
		return fail(err)
	}
	return nil
}

// Current returns nil if e is still the newest epoch of its task, and an
// error wrapping ErrSuperseded if another owner claimed a newer one. The
// engine calls it before writing each manifest (engine.Config.BeforeManifest)
// and again before the sinks commit (engine.Config.BeforeCommit; see the
// package documentation), so it is one listing of the claims: a claim is
// read only to name the newer owner.
func (e *Epoch) Current(ctx context.Context) error {
	prefix := claimPrefix(e.Task)
	objs, err := e.l.objects.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("task %d: claims: %w", e.Task, err)
	}
	var newest uint64
	for _, o := range objs {
		if n, err := strconv.ParseUint(strings.TrimPrefix(o.Key, prefix), 10, 64); err == nil {
			newest = max(newest, n)
		}
	}
	if newest <= e.Number {
		return nil
	}
	owner := "unknown"
	if data, err := e.l.objects.GetBytes(ctx, claimKey(e.Task, newest)); err == nil {
		var c claim
		if json.Unmarshal(data, &c) == nil {
			owner = fmt.Sprintf("%s, since %s", c.Owner, c.Created.Format(time.RFC3339))
		}
	}
	return fmt.Errorf("%w: task %d: this member's epoch %d, another's %d (owner %s)", ErrSuperseded, e.Task, e.Number, newest, owner)
}

// Cleanup deletes the epochs of e's task older than the newest that no
// start point needs: all of them once the newest epoch has a complete
// checkpoint, all but its base's epoch before. Call it once e has
// completed a checkpoint of its own.
func (e *Epoch) Cleanup(ctx context.Context) error {
	l := e.l
	claims, err := l.claims(ctx, e.Task)
	if err != nil {
		return err
	}
	newest := newestEpoch(claims)
	start, err := l.start(ctx, e.Task, newest, claims[newest])
	if err != nil {
		return err
	}
	for n := range claims {
		if n == newest || (start != nil && n == start.Epoch) {
			continue
		}
		if err := l.deleteEpoch(ctx, e.Task, n); err != nil {
			return err
		}
		l.logger.Info("deleted old task checkpoints", "task", e.Task, "epoch", n, "location", l.Location(e.Task, n))
	}
	return nil
}

// deleteEpoch deletes the checkpoints of epoch n of task, then its claim.
func (l *Lineage) deleteEpoch(ctx context.Context, task int, n uint64) error {
	fail := func(err error) error { return fmt.Errorf("task %d: delete epoch %d: %w", task, n, err) }
	if loc, _ := objstore.ParseLocation(l.root); !loc.IsS3() {
		// The live state of a stale owner may be in it too: a directory
		// tree, not only objects.
		if err := os.RemoveAll(filepath.Join(l.root, filepath.FromSlash(epochPrefix(task, n)))); err != nil {
			return fail(err)
		}
	} else {
		objs, err := l.objects.List(ctx, epochPrefix(task, n)+"/")
		if err != nil {
			return fail(err)
		}
		keys := make([]string, len(objs))
		for i, o := range objs {
			keys[i] = o.Key
		}
		if err := l.objects.Delete(ctx, keys...); err != nil {
			return fail(err)
		}
	}
	if err := l.objects.Delete(ctx, claimKey(task, n)); err != nil {
		return fail(err)
	}
	return nil
}
