package conformance

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/weirstream/weir/runtime"
)

// SourceSuite describes a source to TestSource and CheckSource.
type SourceSuite[T any] struct {
	// New returns an unopened instance of the source. Every instance
	// reads the same bounded input: the source must end with
	// runtime.ErrEndOfInput (configure a Kafka source with StopAtEnd). New
	// is called for every subtask at every (re)start.
	New func() (runtime.Source[T], error)
	// Split names the part of the input a record comes from whose order
	// the source promises (a Kafka partition, an input file). Within a
	// subtask, the records of one split must come in the order of an
	// uninterrupted read. Nil means a single split: the subtask's whole
	// output is ordered.
	Split func(T) string
	// Key identifies a record when outputs are compared (default
	// fmt.Sprint).
	Key func(T) string
	// Parallelism is the number of subtasks (default 2).
	Parallelism int
	// Schedules is the number of random schedules (default
	// DefaultSchedules).
	Schedules int
	// Seed chooses the schedules: the same Seed replays the same calls.
	// Zero takes a seed from the clock. Failures report the seed.
	Seed uint64
}

// TestSource runs the source suite s and fails t, with the seed and the
// failing schedule's steps, if the source does not conform. It logs the
// seed.
func TestSource[T any](t testing.TB, s SourceSuite[T]) {
	t.Helper()
	if s.Seed == 0 {
		s.Seed = clockSeed()
	}
	t.Logf("conformance: source suite with seed %d", s.Seed)
	if err := CheckSource(t.Context(), s); err != nil {
		t.Fatal(err)
	}
}

// CheckSource runs the source suite s. It first reads the input of every
// subtask without interruption. Then each schedule reads it again as the
// runtime would, with snapshots at random points (before the first record
// and after the last one included), checkpoints that complete or fail, and
// crashes (instances dropped without Close) or failures (Close) followed by
// a restore from the newest complete checkpoint. The records a schedule
// emitted before each completed snapshot must be, split by split, exactly
// those of the uninterrupted read, and a source restored at the end of its
// input must emit nothing more. It returns nil or the first failure,
// wrapping ErrOutputsDiffer, ErrConnectorFailed or ErrBadSuite.
func CheckSource[T any](ctx context.Context, s SourceSuite[T]) error {
	if err := s.ensureDefaults(); err != nil {
		return err
	}
	ref, err := s.reference(ctx)
	if err != nil {
		return err
	}
	for i := range s.Schedules {
		d := &sourceDriver[T]{parent: ctx, suite: &s, sched: newSchedule(s.Seed, i, s.Schedules), ref: ref}
		if err := d.run(); err != nil {
			d.closeAll()
			return d.sched.fail("source", err)
		}
	}
	return nil
}

func (s *SourceSuite[T]) ensureDefaults() error {
	switch {
	case s.New == nil:
		return fmt.Errorf("%w: SourceSuite needs New", ErrBadSuite)
	case s.Parallelism < 0 || s.Schedules < 0:
		return fmt.Errorf("%w: SourceSuite has a negative Parallelism or Schedules", ErrBadSuite)
	}
	if s.Parallelism == 0 {
		s.Parallelism = 2
	}
	if s.Schedules == 0 {
		s.Schedules = DefaultSchedules
	}
	if s.Seed == 0 {
		s.Seed = clockSeed()
	}
	if s.Split == nil {
		s.Split = func(T) string { return "" }
	}
	s.Key = keyOf(s.Key)
	return nil
}

// reference reads every subtask's input without interruption.
func (s *SourceSuite[T]) reference(ctx context.Context) ([][]T, error) {
	ref := make([][]T, s.Parallelism)
	for i := range ref {
		src, err := s.open(ctx, i, nil)
		if err != nil {
			return nil, fmt.Errorf("uninterrupted read: %w", err)
		}
		var n int
		for ended := false; !ended; {
			if ended, err = readOnce(ctx, src, i, &ref[i], &n); err != nil {
				_ = src.Close()
				return nil, fmt.Errorf("uninterrupted read: %w", err)
			}
		}
		if err := src.Close(); err != nil {
			return nil, fmt.Errorf("%w: uninterrupted read: subtask %d: Close: %w", ErrConnectorFailed, i, err)
		}
	}
	return ref, nil
}

func (s *SourceSuite[T]) open(ctx context.Context, subtask int, restored []byte) (runtime.Source[T], error) {
	src, err := s.New()
	if err != nil {
		return nil, fmt.Errorf("%w: subtask %d: New: %w", ErrConnectorFailed, subtask, err)
	}
	info := runtime.TaskInfo{Job: "conformance", Operator: "source", Subtask: subtask, Parallelism: s.Parallelism, Logger: quiet}
	if err := src.Open(ctx, info, restored); err != nil {
		return nil, fmt.Errorf("%w: subtask %d: Open: %w", ErrConnectorFailed, subtask, err)
	}
	return src, nil
}

// maxEmptyReads is how many Reads in a row may emit nothing before the
// suite decides that the source does not end. A source with nothing to
// read waits up to about 100 ms per Read, so this is seconds.
const maxEmptyReads = 50

// readOnce calls Read, appending what it emits to out; empty counts the
// Reads in a row that emitted nothing.
func readOnce[T any](ctx context.Context, src runtime.Source[T], subtask int, out *[]T, empty *int) (ended bool, err error) {
	before := len(*out)
	err = src.Read(ctx, runtime.CollectorFunc[T](func(rec T) { *out = append(*out, rec) }))
	if errors.Is(err, runtime.ErrEndOfInput) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: subtask %d: Read: %w", ErrConnectorFailed, subtask, err)
	}
	if len(*out) > before {
		*empty = 0
	} else if *empty++; *empty > maxEmptyReads {
		return false, fmt.Errorf("%w: subtask %d: %d Reads in a row emitted nothing and the source did not end "+
			"(the suite needs a bounded source)", ErrConnectorFailed, subtask, maxEmptyReads)
	}
	return false, nil
}

// sourceDriver plays the runtime for one schedule of a source suite.
type sourceDriver[T any] struct {
	parent context.Context
	ctx    context.Context    // of the running incarnation of the job
	cancel context.CancelFunc // ends it: the runtime cancels before Close
	suite  *SourceSuite[T]
	sched  *schedule
	ref    [][]T // per subtask: the uninterrupted read

	subs      []*sourceSubtask[T]
	committed [][]T    // per subtask: the records before the newest complete snapshot
	restored  [][]byte // per subtask: the newest complete snapshot, nil before one
	nextID    uint64
}

type sourceSubtask[T any] struct {
	src   runtime.Source[T]
	ended bool // Read returned ErrEndOfInput
	since []T  // emitted since the restored snapshot
	empty int  // Reads in a row that emitted nothing
}

func (d *sourceDriver[T]) run() error {
	n := d.suite.Parallelism
	d.committed, d.restored, d.nextID = make([][]T, n), make([][]byte, n), 1
	if err := d.open(); err != nil {
		return err
	}
	if d.sched.index == 0 {
		// A snapshot before the first record, restored.
		if err := d.checkpoint(true); err != nil {
			return err
		}
		if err := d.restart("crash"); err != nil {
			return err
		}
	}
	for steps := 0; !d.allEnded(); steps++ {
		if steps > 1_000_000 {
			return errors.New("conformance: internal error: schedule does not end")
		}
		if err := d.act(); err != nil {
			return err
		}
	}
	// The final checkpoint, then a restore from it: the source is at the
	// end of its input and must stay there.
	if err := d.checkpoint(true); err != nil {
		return err
	}
	if err := d.compare(); err != nil {
		return err
	}
	if err := d.restart("crash"); err != nil {
		return err
	}
	for i, sub := range d.subs {
		for !sub.ended {
			if err := d.read(i); err != nil {
				return err
			}
		}
		if len(sub.since) > 0 {
			return fmt.Errorf("%w: subtask %d, restored from a snapshot taken at the end of its input, emitted %d records again "+
				"(duplicated), the first %q", ErrOutputsDiffer, i, len(sub.since), d.suite.Key(sub.since[0]))
		}
	}
	d.closeAll()
	return nil
}

func (d *sourceDriver[T]) allEnded() bool {
	for _, sub := range d.subs {
		if !sub.ended {
			return false
		}
	}
	return true
}

// act takes one random step: a Read on one subtask, a checkpoint, or a
// crash or failure.
func (d *sourceDriver[T]) act() error {
	var readable []int
	for i, sub := range d.subs {
		if !sub.ended {
			readable = append(readable, i)
		}
	}
	s := d.sched
	return s.pick(
		weighted{when(len(readable) > 0, 30), func() error { return d.read(readable[s.rng.IntN(len(readable))]) }},
		weighted{10, func() error { return d.checkpoint(false) }},
		weighted{when(s.canRestart(), 2), func() error { return d.restart("crash") }},
		weighted{when(s.canRestart(), 1), func() error { return d.restart("fail") }},
	)
}

func (d *sourceDriver[T]) read(i int) error {
	sub := d.subs[i]
	before := len(sub.since)
	ended, err := readOnce(d.ctx, sub.src, i, &sub.since, &sub.empty)
	if err != nil {
		return err
	}
	sub.ended = ended
	d.sched.step("subtask %d: Read emitted %d records (end of input %v)", i, len(sub.since)-before, ended)
	return nil
}

// checkpoint snapshots every subtask (the barrier passes each source task
// between two Reads); the checkpoint then completes or, unless it must
// complete (a final checkpoint, say), sometimes fails.
func (d *sourceDriver[T]) checkpoint(mustComplete bool) error {
	id := d.nextID
	d.nextID++
	states := make([][]byte, len(d.subs))
	for i, sub := range d.subs {
		st, err := sub.src.Snapshot()
		if err != nil {
			return fmt.Errorf("%w: subtask %d: Snapshot for checkpoint %d: %w", ErrConnectorFailed, i, id, err)
		}
		states[i] = st
	}
	if !mustComplete && d.sched.oneIn(4) {
		d.sched.step("checkpoint %d: every subtask snapshotted; it fails", id)
		return nil
	}
	d.sched.step("checkpoint %d: every subtask snapshotted; it completes", id)
	for i, sub := range d.subs {
		d.committed[i] = append(d.committed[i], sub.since...)
		sub.since = nil
	}
	d.restored = states
	return nil
}

// restart ends every instance, by a crash (dropped) or a failure (Close),
// and restores them from the newest complete checkpoint.
func (d *sourceDriver[T]) restart(how string) error {
	d.sched.restarts++
	d.sched.step("%s: restore every subtask", how)
	if how == "crash" {
		d.cancel() // the instances are dropped
	} else {
		d.closeAll()
	}
	return d.open()
}

func (d *sourceDriver[T]) open() error {
	d.subs = make([]*sourceSubtask[T], d.suite.Parallelism)
	d.ctx, d.cancel = context.WithCancel(d.parent)
	for i := range d.subs {
		src, err := d.suite.open(d.ctx, i, d.restored[i])
		if err != nil {
			return err
		}
		d.subs[i] = &sourceSubtask[T]{src: src}
	}
	if d.sched.oneIn(3) {
		// A snapshot before the first Read of a (re)start.
		return d.checkpoint(false)
	}
	return nil
}

// closeAll ends the job and closes every subtask's instance.
func (d *sourceDriver[T]) closeAll() {
	if d.cancel != nil {
		d.cancel()
	}
	for i, sub := range d.subs {
		if sub == nil || sub.src == nil {
			continue
		}
		if err := sub.src.Close(); err != nil {
			d.sched.step("subtask %d: Close: %v", i, err)
		}
		sub.src = nil
	}
}

// compare checks each subtask's committed records against the
// uninterrupted read, split by split.
func (d *sourceDriver[T]) compare() error {
	for i, got := range d.committed {
		want := d.ref[i]
		if err := compare(d.suite.Key, got, want, want, false, false); err != nil {
			return fmt.Errorf("subtask %d: %w", i, err)
		}
		gs, ws := d.splits(got), d.splits(want)
		for split, w := range ws {
			g := gs[split]
			if at := firstDifference(d.suite.Key, g, w); at >= 0 {
				return fmt.Errorf("%w: subtask %d, split %q: record %d is %q, an uninterrupted read has %q there",
					ErrOutputsDiffer, i, split, at, d.suite.Key(g[at]), d.suite.Key(w[at]))
			}
		}
	}
	return nil
}

func (d *sourceDriver[T]) splits(recs []T) map[string][]T {
	m := map[string][]T{}
	for _, r := range recs {
		k := d.suite.Split(r)
		m[k] = append(m[k], r)
	}
	return m
}

// firstDifference returns the first index where a and b (of equal
// multisets, so of equal length) differ, or -1.
func firstDifference[T any](key func(T) string, a, b []T) int {
	for i := range a {
		if key(a[i]) != key(b[i]) {
			return i
		}
	}
	return -1
}
