package conformance

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/weirstream/weir/runtime"
)

// SinkSuite describes a sink to TestSink and CheckSink.
type SinkSuite[T any] struct {
	// New returns an unopened instance of the sink writing to dest. Each
	// schedule has its own dest, a name no other schedule of the process
	// uses ("weir-conformance-7"): make it a directory, a topic or a
	// prefix of transactional ids, so that every schedule starts from an
	// empty output. New is called for every subtask at every (re)start.
	New func(dest string) (runtime.Sink[T], error)
	// ReadCommitted returns what a reader of dest sees now, in any order:
	// the committed output (for Kafka, what a read_committed consumer
	// reads). It is called when no sink instance is between two
	// checkpoints: after every restore, once every subtask has opened,
	// and at the end of a schedule.
	ReadCommitted func(dest string) ([]T, error)
	// Kill, if set, is called on every instance a crash drops, before
	// the restore. It does to the instance what the death of its process
	// would: close its connections and files, so that the server ends
	// their sessions and releases their locks. It must not do what
	// Close does (flush, abort, clean up). Without Kill, a dropped
	// instance keeps its resources until the garbage collector or the
	// server's timeouts release them.
	Kill func(runtime.Sink[T])
	// Records is the input of every schedule. Record i goes to subtask
	// i mod Parallelism, which writes its records in order and, after a
	// restart, again from the position of the restored checkpoint.
	Records []T
	// Key identifies a record when outputs are compared (default
	// fmt.Sprint): records with the same key are the same record.
	Key func(T) string
	// AtLeastOnce is set for a sink that promises only at-least-once
	// output: a record may then appear more than once, but every record
	// must appear and nothing else may.
	AtLeastOnce bool
	// HoldsBack is set for a sink that may keep records of a complete
	// checkpoint invisible for a while (a file sink rolling files across
	// checkpoints): after a restore, the committed output must then be
	// part of what the restored checkpoint covers, never anything else nor
	// a duplicate; at the end of the input, when the suite calls
	// runtime.EndOfInputHandler before the final checkpoint, all of it.
	HoldsBack bool
	// Parallelism is the number of subtasks (default 2).
	Parallelism int
	// MaxPending bounds the checkpoints a subtask has pre-committed
	// without a Commit covering them yet, because checkpoints failed or a
	// Commit arrived after the next barrier (default 2). The runtime has
	// no such bound; a sink that refuses to go on beyond one (the Kafka
	// sink, with its pool of transactional ids) fails the job instead,
	// which is correct but not what this suite tests.
	MaxPending int
	// Schedules is the number of random schedules (default
	// DefaultSchedules).
	Schedules int
	// Seed chooses the schedules: the same Seed replays the same calls.
	// Zero takes a seed from the clock. Failures report the seed.
	Seed uint64
}

// TestSink runs the sink suite s and fails t, with the seed and the
// failing schedule's steps, if the sink does not conform. It logs the
// seed.
func TestSink[T any](t testing.TB, s SinkSuite[T]) {
	t.Helper()
	if s.Seed == 0 {
		s.Seed = clockSeed()
	}
	t.Logf("conformance: sink suite with seed %d", s.Seed)
	if err := CheckSink(t.Context(), s); err != nil {
		t.Fatal(err)
	}
}

// CheckSink runs the sink suite s: each schedule writes s.Records through
// the sink as the runtime would, with checkpoints that complete or fail,
// late commits, and crashes (instances dropped without Close, as kill -9
// drops a process), failures (Close, then restore) and clean stops
// between any two calls. After every restore it checks that the committed
// output holds exactly the records of the restored checkpoint, and at the
// end exactly s.Records. It returns nil or the first failure, wrapping
// ErrOutputsDiffer, ErrConnectorFailed or ErrBadSuite.
func CheckSink[T any](ctx context.Context, s SinkSuite[T]) error {
	if err := s.ensureDefaults(); err != nil {
		return err
	}
	for i := range s.Schedules {
		d := newSinkDriver(ctx, &s, newSchedule(s.Seed, i, s.Schedules))
		if err := d.run(); err != nil {
			_ = d.closeAll() // release what a failed schedule left open
			return d.sched.fail("sink", err)
		}
	}
	return nil
}

func (s *SinkSuite[T]) ensureDefaults() error {
	switch {
	case s.New == nil || s.ReadCommitted == nil:
		return fmt.Errorf("%w: SinkSuite needs New and ReadCommitted", ErrBadSuite)
	case len(s.Records) == 0:
		return fmt.Errorf("%w: SinkSuite has no Records", ErrBadSuite)
	case s.Parallelism < 0 || s.MaxPending < 0 || s.Schedules < 0:
		return fmt.Errorf("%w: SinkSuite has a negative Parallelism, MaxPending or Schedules", ErrBadSuite)
	}
	if s.Parallelism == 0 {
		s.Parallelism = 2
	}
	if s.MaxPending == 0 {
		s.MaxPending = 2
	}
	if s.Schedules == 0 {
		s.Schedules = DefaultSchedules
	}
	if s.Seed == 0 {
		s.Seed = clockSeed()
	}
	s.Key = keyOf(s.Key)
	return nil
}

// sinkDriver plays the runtime for one schedule: the sources' positions,
// the coordinator's checkpoints and commit markers, and the sink tasks.
type sinkDriver[T any] struct {
	parent context.Context
	ctx    context.Context    // of the running incarnation of the job
	cancel context.CancelFunc // ends it: the runtime cancels before Close
	suite  *SinkSuite[T]
	sched  *schedule
	dest   string
	input  [][]T // per subtask

	subs     []*sinkSubtask[T]
	nextID   uint64
	last     *sinkCheckpoint // newest complete checkpoint, nil before the first
	inflight *sinkCheckpoint // triggered, not yet pre-committed everywhere
	stopping bool            // a clean stop: a final checkpoint, then Close
	// lastHere is set once the newest complete checkpoint was taken since
	// the last restart: a restart from a final checkpoint takes another.
	lastHere bool
}

type sinkSubtask[T any] struct {
	sink runtime.Sink[T]
	pos  int // next record of the subtask's input
	// precommitted lists the checkpoints the subtask pre-committed that
	// no Commit has covered yet; commits lists the complete checkpoints
	// whose Commit it has not received yet, oldest first.
	precommitted, commits []uint64
}

// sinkCheckpoint is a checkpoint as the coordinator keeps it.
type sinkCheckpoint struct {
	id     uint64
	final  bool
	states [][]byte // per subtask: what PreCommit returned
	pos    []int    // per subtask: input position at the barrier
	done   []bool   // per subtask: pre-committed
	marked []bool   // per subtask: Commit(id) returned (the commit marker)
}

func newSinkDriver[T any](ctx context.Context, s *SinkSuite[T], sched *schedule) *sinkDriver[T] {
	d := &sinkDriver[T]{
		parent: ctx, suite: s, sched: sched,
		dest:   fmt.Sprintf("weir-conformance-%d", destinations.Add(1)),
		input:  make([][]T, s.Parallelism),
		subs:   make([]*sinkSubtask[T], s.Parallelism),
		nextID: 1,
	}
	for i, rec := range s.Records {
		d.input[i%s.Parallelism] = append(d.input[i%s.Parallelism], rec)
	}
	return d
}

func (d *sinkDriver[T]) run() error {
	d.sched.step("destination %s, %d subtasks, %d records", d.dest, len(d.subs), len(d.suite.Records))
	if err := d.open(); err != nil {
		return err
	}
	for steps := 0; !d.finished(); steps++ {
		if steps > 1_000_000 {
			return fmt.Errorf("conformance: internal error: schedule does not end")
		}
		if err := d.act(); err != nil {
			return err
		}
	}
	d.sched.step("end of input: close every subtask")
	if err := d.closeAll(); err != nil {
		return err
	}
	if err := d.checkCommitted("at the end"); err != nil {
		return err
	}
	if d.sched.oneIn(2) {
		// As a restart after a clean end (or a long outage): the
		// markers say that the final checkpoint was committed.
		d.sched.step("start again from the final checkpoint")
		if err := d.open(); err != nil {
			return err
		}
		return d.closeAll()
	}
	return nil
}

// finished reports whether the input is written and a final checkpoint
// taken since the last restart is committed everywhere.
func (d *sinkDriver[T]) finished() bool {
	if !d.inputDone() || d.inflight != nil || d.last == nil || !d.last.final || !d.lastHere {
		return false
	}
	for _, sub := range d.subs {
		if len(sub.commits) > 0 {
			return false
		}
	}
	return true
}

func (d *sinkDriver[T]) inputDone() bool {
	for i, sub := range d.subs {
		if sub.pos < len(d.input[i]) {
			return false
		}
	}
	return true
}

// act takes one random step: a few writes on one subtask, a trigger or a
// pre-commit, a commit, or a crash, failure or clean stop.
func (d *sinkDriver[T]) act() error {
	var writable, toPreCommit, toCommit []int
	for i, sub := range d.subs {
		if sub.pos < len(d.input[i]) && !d.stopping {
			writable = append(writable, i)
		}
		if d.inflight != nil && !d.inflight.done[i] {
			toPreCommit = append(toPreCommit, i)
		}
		if len(sub.commits) > 0 {
			toCommit = append(toCommit, i)
		}
	}
	// The end of the input, or a stop, calls for a final checkpoint.
	finalDone := d.last != nil && d.last.final && d.lastHere
	needFinal := (d.stopping || d.inputDone()) && !finalDone
	if d.stopping && finalDone && len(toCommit) == 0 {
		return d.restart("stop")
	}
	s := d.sched
	return s.pick(
		weighted{when(len(writable) > 0, 30), func() error { return d.write(d.any(writable)) }},
		weighted{when(d.inflight == nil && needFinal, 40) + when(d.inflight == nil && !d.stopping && !d.inputDone(), 15), d.trigger},
		weighted{when(len(toPreCommit) > 0, 25), func() error { return d.preCommit(d.any(toPreCommit)) }},
		weighted{when(len(toCommit) > 0, 25), func() error { return d.commit(d.any(toCommit)) }},
		weighted{when(s.canRestart(), 5), func() error { s.restarts++; return d.restart("crash") }},
		weighted{when(s.canRestart(), 2), func() error { s.restarts++; return d.restart("fail") }},
		weighted{when(s.canRestart() && !d.stopping && d.inflight == nil, 1), d.stop},
	)
}

func (d *sinkDriver[T]) any(subtasks []int) int { return subtasks[d.sched.rng.IntN(len(subtasks))] }

func (d *sinkDriver[T]) write(i int) error {
	sub := d.subs[i]
	n := min(1+d.sched.rng.IntN(8), len(d.input[i])-sub.pos)
	d.sched.step("subtask %d: Write records %d..%d of its input", i, sub.pos, sub.pos+n-1)
	for range n {
		if err := sub.sink.Write(d.ctx, d.input[i][sub.pos]); err != nil {
			return fmt.Errorf("%w: subtask %d: Write: %w", ErrConnectorFailed, i, err)
		}
		sub.pos++
	}
	return nil
}

// trigger starts a checkpoint; the barrier reaches each subtask at its own
// later step.
func (d *sinkDriver[T]) trigger() error {
	n := len(d.subs)
	final := d.stopping || d.inputDone()
	d.inflight = &sinkCheckpoint{id: d.nextID, final: final,
		states: make([][]byte, n), pos: make([]int, n), done: make([]bool, n), marked: make([]bool, n)}
	d.nextID++
	d.sched.step("trigger checkpoint %d (final %v)", d.inflight.id, final)
	if d.inputDone() {
		for i, sub := range d.subs {
			if e, ok := sub.sink.(runtime.EndOfInputHandler); ok {
				d.sched.step("subtask %d: EndOfInput", i)
				e.EndOfInput()
			}
		}
	}
	return nil
}

func (d *sinkDriver[T]) preCommit(i int) error {
	sub, c := d.subs[i], d.inflight
	// A subtask never has more than MaxPending checkpoints pre-committed
	// without a Commit: the commits it is owed arrive first (see
	// conclude, which keeps such a checkpoint from failing).
	for len(sub.precommitted) >= d.suite.MaxPending && len(sub.commits) > 0 {
		if err := d.commitNoCrash(i); err != nil {
			return err
		}
	}
	d.sched.step("subtask %d: PreCommit(%d) at record %d", i, c.id, sub.pos)
	st, err := sub.sink.PreCommit(d.ctx, c.id)
	if err != nil {
		return fmt.Errorf("%w: subtask %d: PreCommit(%d): %w", ErrConnectorFailed, i, c.id, err)
	}
	c.states[i], c.pos[i], c.done[i] = st, sub.pos, true
	sub.precommitted = append(sub.precommitted, c.id)
	if slices.Contains(c.done, false) {
		return nil
	}
	return d.conclude()
}

// conclude ends the checkpoint every subtask pre-committed: the
// coordinator asks the sinks that implement runtime.PromiseChecker, then
// writes the manifest (the checkpoint completes) or the checkpoint fails
// (it times out, say). A failing checkpoint leaves at most MaxPending-1
// checkpoints uncommitted on every subtask.
func (d *sinkDriver[T]) conclude() error {
	c := d.inflight
	d.inflight = nil
	for i, sub := range d.subs {
		pc, ok := sub.sink.(runtime.PromiseChecker)
		if !ok {
			continue
		}
		if err := pc.CheckPromise(c.id); err != nil {
			// The sink declined: the checkpoint is aborted and the job
			// fails at the sink's next call.
			d.sched.step("subtask %d declined checkpoint %d: %v", i, c.id, err)
			if d.sched.restarts++; d.sched.restarts > 2*maxRestarts {
				return fmt.Errorf("%w: subtask %d keeps declining checkpoints: %w", ErrConnectorFailed, i, err)
			}
			return d.restart("fail")
		}
	}
	mayFail := !c.final
	for _, sub := range d.subs {
		mayFail = mayFail && len(sub.precommitted) < d.suite.MaxPending
	}
	if mayFail && d.sched.oneIn(2) {
		d.sched.step("checkpoint %d fails", c.id)
		return nil
	}
	d.sched.step("checkpoint %d completes", c.id)
	d.last, d.lastHere = c, true
	for _, sub := range d.subs {
		sub.commits = append(sub.commits, c.id)
	}
	if d.sched.oneIn(6) {
		// A crash that loses no checkpointed progress, so outside the
		// schedule's budget: Open must commit what c promised.
		return d.restart("crash before any Commit")
	}
	return nil
}

// commit delivers the oldest commit notification subtask i is owed, and
// sometimes crashes after it returned, before the runtime recorded it.
func (d *sinkDriver[T]) commit(i int) error {
	if err := d.commitNoCrash(i); err != nil {
		return err
	}
	if d.sched.oneIn(5) {
		// Undo the marker: the crash came before it was written. Like
		// the crash in conclude, it loses no checkpointed progress.
		d.last.marked[i] = false
		return d.restart("crash before the commit marker")
	}
	return nil
}

func (d *sinkDriver[T]) commitNoCrash(i int) error {
	sub := d.subs[i]
	id := sub.commits[0]
	sub.commits = sub.commits[1:]
	d.sched.step("subtask %d: Commit(%d)", i, id)
	if err := sub.sink.Commit(d.ctx, id); err != nil {
		return fmt.Errorf("%w: subtask %d: Commit(%d): %w", ErrConnectorFailed, i, id, err)
	}
	sub.precommitted = slices.DeleteFunc(sub.precommitted, func(p uint64) bool { return p <= id })
	if id == d.last.id {
		d.last.marked[i] = true
	}
	return nil
}

// stop makes the job stop cleanly: a final checkpoint, its commits, Close,
// and a restart from it.
func (d *sinkDriver[T]) stop() error {
	d.sched.step("stop the job")
	d.sched.restarts++
	d.stopping = true
	return nil
}

// restart ends the job by a crash (every instance dropped, nothing closed),
// by a failure (Close on every instance), or after a clean stop, and
// starts it again from the newest complete checkpoint.
func (d *sinkDriver[T]) restart(how string) error {
	d.sched.step("%s: restart from checkpoint %d", how, d.restoredID())
	d.cancel()
	for i, sub := range d.subs {
		switch {
		case how == "fail" || how == "stop":
			if err := sub.sink.Close(); err != nil {
				// The runtime logs it and restarts all the same.
				d.sched.step("subtask %d: Close: %v", i, err)
			}
		case d.suite.Kill != nil:
			d.suite.Kill(sub.sink)
		}
	}
	return d.open()
}

func (d *sinkDriver[T]) restoredID() uint64 {
	if d.last == nil {
		return 0
	}
	return d.last.id
}

// open starts every subtask from the newest complete checkpoint, as the
// runtime does, and checks that the committed output is exactly what that
// checkpoint covers: its promises kept, nothing later visible.
func (d *sinkDriver[T]) open() error {
	d.inflight, d.stopping, d.lastHere = nil, false, false
	d.subs = make([]*sinkSubtask[T], len(d.subs)) // the old instances are gone
	d.ctx, d.cancel = context.WithCancel(d.parent)
	for i := range d.subs {
		sink, err := d.suite.New(d.dest)
		if err != nil {
			return fmt.Errorf("%w: subtask %d: New: %w", ErrConnectorFailed, i, err)
		}
		info := runtime.TaskInfo{Job: "conformance", Operator: "sink", Subtask: i, Parallelism: len(d.subs), Logger: quiet}
		var restored []byte
		sub := &sinkSubtask[T]{sink: sink}
		if c := d.last; c != nil {
			restored, sub.pos, info.RestoredCommitted = c.states[i], c.pos[i], c.marked[i]
		}
		d.sched.step("subtask %d: Open(checkpoint %d, RestoredCommitted %v)", i, d.restoredID(), info.RestoredCommitted)
		if err := sink.Open(d.ctx, info, restored); err != nil {
			return fmt.Errorf("%w: subtask %d: Open: %w", ErrConnectorFailed, i, err)
		}
		d.subs[i] = sub
	}
	return d.checkCommitted(fmt.Sprintf("after a restore from checkpoint %d", d.restoredID()))
}

// closeAll ends the job and closes every subtask's instance.
func (d *sinkDriver[T]) closeAll() error {
	if d.cancel != nil {
		d.cancel()
	}
	for i, sub := range d.subs {
		if sub == nil || sub.sink == nil {
			continue
		}
		err := sub.sink.Close()
		sub.sink = nil
		if err != nil {
			return fmt.Errorf("%w: subtask %d: Close: %w", ErrConnectorFailed, i, err)
		}
	}
	return nil
}

// checkCommitted compares the committed output with the records the newest
// complete checkpoint covers.
func (d *sinkDriver[T]) checkCommitted(when string) error {
	got, err := d.suite.ReadCommitted(d.dest)
	if err != nil {
		return fmt.Errorf("%w: ReadCommitted %s: %w", ErrConnectorFailed, when, err)
	}
	var want []T
	if c := d.last; c != nil {
		for i, in := range d.input {
			want = append(want, in[:c.pos[i]]...)
		}
	}
	d.sched.step("ReadCommitted %s: %d records (want %d)", when, len(got), len(want))
	mayLag := d.suite.HoldsBack && !d.finished()
	if err := compare(d.suite.Key, got, want, d.suite.Records, d.suite.AtLeastOnce, mayLag); err != nil {
		return fmt.Errorf("committed output %s: %w", when, err)
	}
	return nil
}
