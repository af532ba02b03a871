package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/internal/engine"
	"github.com/weirstream/weir/internal/objstore"
	"github.com/weirstream/weir/internal/tasklineage"
)

// This file runs a process as one member of a job spread over processes
// (Config.Group): it joins the group through Config.Cluster and runs the
// tasks the group gives it, each as a job of its own (runTask) that
// checkpoints into its own epoch of the task's lineage (package
// tasklineage).

// leaveTimeout bounds leaving the group when Run's context was cancelled,
// so that a member told to end at once does not wait on the cluster.
const leaveTimeout = 10 * time.Second

// member is this process in its group.
type member struct {
	p       *Pipeline
	cfg     Config // with defaults, valid
	logger  *slog.Logger
	lineage *tasklineage.Lineage
	// savepoint is the group savepoint of Config.FromSavepoint, or nil.
	savepoint *tasklineage.GroupSavepoint
	// localRoot holds the tasks' live state and staging when CheckpointDir
	// is s3:// (Config.LocalDir, or a temporary directory) or a directory
	// given with a Config.LocalDir; "" otherwise.
	localRoot string
	// board shows the tasks' jobs on the member's status server, at
	// statusAddr ("" without one).
	board      *engine.Board
	statusAddr string
	// run runs one task: runTask, or a fake in tests.
	run func(ctx context.Context, p *Pipeline, cfg Config, t taskRun) error

	ctx      context.Context // the tasks run under it
	joined   chan struct{}   // closed once ms is set
	ms       Membership
	failed   chan error     // the first task that failed for good (buffered)
	cleanups sync.WaitGroup // deletions of older epochs in flight

	mu      sync.Mutex
	tasks   map[int]*memberTask
	closing bool // stopping every task: the group gives no more
}

// memberTask is a task this member runs.
type memberTask struct {
	index  int
	logger *slog.Logger
	stop   chan struct{} // closed to stop with a final checkpoint
	once   sync.Once
	cancel context.CancelFunc // stops at once, without one
	done   chan struct{}

	// The steps of the task's start, for the log line of its first
	// checkpoint (a failover's breakdown: see recovered).
	assignedAt time.Time
	claimed    time.Duration // assigned → epoch claimed
	startedIn  time.Duration // assigned → restored, operators and sinks open

	// For /api/status and /readyz.
	epoch          atomic.Uint64
	started        atomic.Bool
	lastCheckpoint atomic.Uint64
	lastCompleted  atomic.Int64 // unix nanoseconds
}

func (t *memberTask) requestStop() { t.once.Do(func() { close(t.stop) }) }

// runGroup runs this process as a member of cfg.Group until cfg.Stop
// closes (its tasks stop with final checkpoints, then it leaves), ctx ends
// (they stop at once), or a task fails for good (the others stop with final
// checkpoints, it leaves, and the task's error is returned: the
// orchestrator restarts the process).
func runGroup(ctx context.Context, p *Pipeline, cfg Config) error {
	m, cleanup, err := newMember(ctx, p, cfg)
	if err != nil {
		return err
	}
	defer cleanup()
	return m.runMember(ctx)
}

// newMember prepares a member; cleanup removes a temporary local directory.
func newMember(ctx context.Context, p *Pipeline, cfg Config) (_ *member, cleanup func(), _ error) {
	cleanup = func() {}
	logger := cfg.Logger.With("job", p.Name(), "group", cfg.Group)
	lineage, err := tasklineage.Open(ctx, cfg.CheckpointDir, logger)
	if err != nil {
		return nil, cleanup, fmt.Errorf("%w: --checkpoint-dir %s: %w", ErrUnrecoverable, cfg.CheckpointDir, err)
	}
	m := &member{
		p: p, cfg: cfg, logger: logger, lineage: lineage, run: runTask, board: engine.NewBoard(),
		joined: make(chan struct{}), failed: make(chan error, 1), tasks: map[int]*memberTask{},
	}
	if cfg.FromSavepoint != "" {
		if m.savepoint, err = readGroupSavepoint(ctx, p, cfg.Group, cfg.FromSavepoint); err != nil {
			return nil, cleanup, err
		}
	}
	if loc, _ := objstore.ParseLocation(cfg.CheckpointDir); loc.IsS3() || cfg.LocalDir != "" {
		m.localRoot = cfg.LocalDir
		if m.localRoot == "" {
			dir, err := os.MkdirTemp("", "weir-local-")
			if err != nil {
				return nil, cleanup, fmt.Errorf("a local directory for the tasks' live state: %w (set --local-dir)", err)
			}
			logger.Info("tasks' live state in a temporary local directory (set --local-dir to choose one)", "local_dir", dir)
			m.localRoot, cleanup = dir, func() { os.RemoveAll(dir) }
		}
	}
	return m, cleanup, nil
}

// runMember joins the group and runs tasks until the member ends.
func (m *member) runMember(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer m.cleanups.Wait()
	defer cancel()
	m.ctx = ctx
	addr, stopServing := m.serveStatus()
	defer stopServing()
	m.statusAddr = addr
	ms, err := m.cfg.Cluster.Join(ctx, JoinRequest{
		Group: m.cfg.Group, InstanceID: m.cfg.InstanceID, SessionTimeout: m.cfg.GroupSessionTimeout,
		Logger: m.logger, Assigned: m.assigned, Revoked: m.revoked, Lost: m.lost,
	})
	if err != nil {
		m.cancelAll()
		return fmt.Errorf("group %q: join: %w", m.cfg.Group, err)
	}
	m.ms = ms
	m.mu.Lock()
	m.logger = m.logger.With("member", ms.MemberID())
	m.mu.Unlock()
	close(m.joined)
	m.log().Info("joined the group", "tasks", ms.Tasks(), "instance_id", m.cfg.InstanceID, "session_timeout", m.cfg.GroupSessionTimeout)

	var failure error
	select {
	case <-m.cfg.Stop:
		m.log().Info("stopping: the member's tasks take final checkpoints, then it leaves the group")
	case failure = <-m.failed:
		m.log().Error("a task failed: the member's other tasks take final checkpoints, then it leaves the group", "err", failure)
	case <-ctx.Done():
		m.cancelAll()
		leaveCtx, cancelLeave := context.WithTimeout(context.WithoutCancel(ctx), leaveTimeout)
		defer cancelLeave()
		if err := ms.Leave(leaveCtx); err != nil {
			m.log().Warn("could not leave the group; its tasks move once the session times out", "err", err)
		}
		return context.Cause(ctx)
	}
	m.stopAll()
	if err := ms.Leave(ctx); err != nil {
		err = fmt.Errorf("group %q: leave: %w", m.cfg.Group, err)
		if failure == nil {
			return err
		}
		m.log().Warn("could not leave the group", "err", err)
	}
	m.log().Info("left the group")
	return failure
}

// log returns the member's logger, which names the member once joined.
func (m *member) log() *slog.Logger {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.logger
}

// assigned starts tasks: each claims its next epoch and runs from its
// start point, on a goroutine of its own, so that the rebalance does not
// wait for restores.
func (m *member) assigned(_ context.Context, tasks []int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		m.logger.Info("tasks assigned while the member stops: not started", "tasks", tasks)
		return
	}
	for _, i := range tasks {
		if m.tasks[i] != nil {
			continue // still running: assigned again
		}
		ctx, cancel := context.WithCancel(m.ctx)
		t := &memberTask{
			index: i, logger: m.logger.With("task", i),
			stop: make(chan struct{}), cancel: cancel, done: make(chan struct{}),
			assignedAt: time.Now(),
		}
		m.tasks[i] = t
		go m.runMemberTask(ctx, t)
	}
	m.logger.Info("tasks assigned", "tasks", tasks)
}

// revoked stops tasks with final checkpoints and waits for them, so that
// their next owners resume where they stopped.
func (m *member) revoked(_ context.Context, tasks []int) {
	m.log().Info("tasks revoked: taking final checkpoints", "tasks", tasks)
	m.wait(m.take(tasks, (*memberTask).requestStop))
}

// lost stops tasks at once, without checkpoints: another member may run
// them already.
func (m *member) lost(_ context.Context, tasks []int) {
	m.log().Warn("tasks lost (the member was expelled from the group): stopping them without a checkpoint", "tasks", tasks)
	m.wait(m.take(tasks, func(t *memberTask) { t.cancel() }))
}

// take applies stop to the running tasks among tasks and returns them.
func (m *member) take(tasks []int, stop func(*memberTask)) []*memberTask {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*memberTask
	for _, i := range tasks {
		if t := m.tasks[i]; t != nil {
			stop(t)
			out = append(out, t)
		}
	}
	return out
}

func (m *member) wait(tasks []*memberTask) {
	for _, t := range tasks {
		<-t.done
	}
}

// running returns the indexes of the running tasks.
func (m *member) running() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sortedTasks()
}

// sortedTasks returns the indexes of the running tasks; m.mu is held.
func (m *member) sortedTasks() []int {
	return slices.Sorted(func(yield func(int) bool) {
		for i := range m.tasks {
			if !yield(i) {
				return
			}
		}
	})
}

// stopAll stops every task with a final checkpoint, and waits.
func (m *member) stopAll() {
	m.mu.Lock()
	m.closing = true
	m.mu.Unlock()
	m.wait(m.take(m.running(), (*memberTask).requestStop))
}

// cancelAll stops every task at once, and waits.
func (m *member) cancelAll() {
	m.mu.Lock()
	m.closing = true
	m.mu.Unlock()
	m.wait(m.take(m.running(), func(t *memberTask) { t.cancel() }))
}

// fail ends the member with err, the first failure.
func (m *member) fail(err error) {
	select {
	case m.failed <- err:
	default:
	}
}

// runMemberTask claims t's next epoch and runs the task in it until it
// ends, then reports how.
func (m *member) runMemberTask(ctx context.Context, t *memberTask) {
	defer close(t.done)
	defer m.forget(t)
	defer t.cancel()
	select {
	case <-m.joined:
	case <-ctx.Done():
		return
	}
	t.logger = m.log().With("task", t.index)
	if n := m.ms.Tasks(); t.index < 0 || t.index >= n {
		m.fail(fmt.Errorf("group %q: assigned task %d of a job of %d tasks: the cluster and the job disagree on the task count", m.cfg.Group, t.index, n))
		return
	}
	if g := m.savepoint; g != nil && g.Tasks != m.ms.Tasks() {
		m.fail(fmt.Errorf("%w: --from-savepoint %s holds %d tasks, the job has %d: the partition count of the input topics must be the savepoint's (rescaling a job spread over processes is not supported yet)",
			ErrUnrecoverable, g.Path, g.Tasks, m.ms.Tasks()))
		return
	}
	localDir := ""
	if m.localRoot != "" {
		localDir = filepath.Join(m.localRoot, "task-"+strconv.Itoa(t.index))
	}
	epoch, err := m.lineage.Claim(ctx, t.index, m.ms.MemberID(), localDir)
	t.claimed = time.Since(t.assignedAt)
	if err == nil {
		t.logger = t.logger.With("epoch", epoch.Number)
		t.epoch.Store(epoch.Number)
		select {
		case <-t.stop:
			// Revoked during the claim: the epoch's imported checkpoint is
			// where the next owner starts.
			t.logger.Info("task revoked before it started")
			return
		default:
		}
		t.logger.Info("starting task", "checkpoint_dir", epoch.Location, "base", epoch.Base)
		err = m.run(ctx, m.p, m.taskConfig(ctx, t, epoch), taskRun{
			Index: t.index, Tasks: m.ms.Tasks(), Epoch: epoch.Number, PriorEpochs: epoch.Prior,
			CheckpointDir: epoch.Location, LocalDir: localDir, Stop: t.stop,
		})
	}
	switch {
	case ctx.Err() != nil:
		t.logger.Info("task stopped without a checkpoint", "err", err)
	case errors.Is(err, tasklineage.ErrSuperseded) || superseded(ctx, epoch, err):
		t.logger.Warn("task taken over by another member: stopped here", "err", err)
	case err != nil:
		m.fail(fmt.Errorf("task %d: %w", t.index, err))
	default:
		t.logger.Info("task stopped")
	}
}

// superseded reports whether the task failed with err because another
// member took it over: its epoch is no longer the newest. The new owner's
// sinks fence this member's (Kafka: ProducerFenced) before the group tells
// this member that it lost the task, and before its next checkpoint would
// be declined: that is the takeover, not a failure of the member.
func superseded(ctx context.Context, epoch *tasklineage.Epoch, err error) bool {
	return err != nil && epoch != nil && errors.Is(epoch.Current(ctx), tasklineage.ErrSuperseded)
}

// forget removes t from the running tasks.
func (m *member) forget(t *memberTask) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tasks[t.index] == t {
		delete(m.tasks, t.index)
		m.board.Remove(t.index)
	}
}

// taskConfig returns the configuration of t's job in epoch: the member's,
// with the task's logger, hooks that keep t's status and delete older
// epochs after its first checkpoint, and the epoch check before each
// manifest, before each commit (once the manifest is written: see package
// tasklineage) and before each restart.
func (m *member) taskConfig(ctx context.Context, t *memberTask, epoch *tasklineage.Epoch) Config {
	cfg := m.cfg
	cfg.Logger = t.logger
	cfg.MetricsAddr = "" // the member serves one status server for all
	if m.savepoint != nil {
		// The task's own savepoint: the engine imports it into an epoch
		// with no checkpoint yet, and otherwise resumes (see
		// Config.FromSavepoint).
		cfg.FromSavepoint = m.savepoint.TaskPath(t.index)
	}
	user := cfg.Events
	var cleaned atomic.Bool
	cfg.Events.Started = func(info StartInfo) {
		info.MetricsAddr = m.statusAddr // the task's job has none of its own
		if !t.started.Load() {
			t.startedIn = time.Since(t.assignedAt) // before the store below publishes it
		}
		t.started.Store(true)
		if user.Started != nil {
			user.Started(info)
		}
	}
	cfg.Events.CheckpointCompleted = func(info CheckpointInfo) {
		t.lastCheckpoint.Store(info.ID)
		t.lastCompleted.Store(time.Now().UnixNano())
		if !cleaned.Swap(true) {
			t.recovered(info.ID)
			m.cleanups.Go(func() { m.cleanup(ctx, t, epoch) }) // off the coordinator's goroutine
		}
		if user.CheckpointCompleted != nil {
			user.CheckpointCompleted(info)
		}
	}
	cfg.tuneEngine = func(e *engine.Config) {
		e.BeforeManifest = func(uint64) error { return epoch.Current(ctx) }
		e.BeforeCommit = func(uint64) error { return epoch.Current(ctx) }
		e.BeforeRestart = func() error { return epoch.Current(ctx) }
		e.Board = m.board
	}
	return cfg
}

// recovered logs the steps from t's assignment to its first checkpoint
// here, id: how long a task that moved took to run here again (issue 12's
// failover breakdown; the time before the assignment is the group's).
func (t *memberTask) recovered(id uint64) {
	total := time.Since(t.assignedAt)
	t.logger.Info("task's first checkpoint here completed", "checkpoint", id,
		"since_assigned", total.Round(time.Millisecond),
		"claim", t.claimed.Round(time.Millisecond),
		"start", (t.startedIn - t.claimed).Round(time.Millisecond),
		"first_checkpoint", (total - t.startedIn).Round(time.Millisecond))
}

// cleanup deletes the task's older epochs once its epoch has a checkpoint
// of its own.
func (m *member) cleanup(ctx context.Context, t *memberTask, epoch *tasklineage.Epoch) {
	if err := epoch.Cleanup(ctx); err != nil && ctx.Err() == nil {
		t.logger.Warn("could not delete the task's older checkpoints; the next owner tries again", "err", err)
	}
}

// readGroupSavepoint opens the group savepoint at path for p's tasks in
// group.
func readGroupSavepoint(ctx context.Context, p *Pipeline, group, path string) (*tasklineage.GroupSavepoint, error) {
	g, err := tasklineage.ReadGroupSavepoint(ctx, path)
	if err == nil && g.Job != p.Name() {
		err = fmt.Errorf("%w %s: it is of job %q, not %q", tasklineage.ErrGroupSavepoint, g.Path, g.Job, p.Name())
	}
	if err == nil {
		err = checkSavepointGroup(g, group, p.hasExchanges())
	}
	if err != nil {
		return nil, fmt.Errorf("%w: --from-savepoint: %w", ErrUnrecoverable, err)
	}
	return g, nil
}

// checkSavepointGroup refuses to start group from g, a savepoint of another
// group, when the job has exchanges: the tasks' read offsets in g are in
// the repartition topics of g's group, which hold what was in flight
// between its tasks; the exchanges of group would read topics of their
// own, and lose it (see package tasklineage, savepoint.go). A job without
// exchanges has no state outside its savepoint: any group starts from it.
// A savepoint that names no group (written before they were recorded) is
// not checked.
func checkSavepointGroup(g *tasklineage.GroupSavepoint, group string, exchanges bool) error {
	if g.Group == "" || g.Group == group || !exchanges {
		return nil
	}
	return fmt.Errorf("%w %s: it was taken from group %q, and this member is of group %q: the job's exchanges read the repartition topics of their group (%s-…-repartition), where the savepoint's read offsets are and what was in flight between its tasks is, which group %q would lose; start the members with --group %s (once every member still running in it has stopped)",
		tasklineage.ErrGroupSavepoint, g.Path, g.Group, group, g.Group, group, g.Group)
}

// hasExchanges reports whether p has a keyed edge, which a job spread
// over processes cuts into an exchange (taskGraph).
func (p *Pipeline) hasExchanges() bool {
	for _, n := range p.g.Nodes {
		for _, e := range n.Inputs {
			if e.Part == engine.Hashed {
				return true
			}
		}
	}
	return false
}
