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
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/weirstream/weir/checkpoint"
	"github.com/weirstream/weir/state"
)

// ErrIncompatibleCheckpoint is wrapped when the newest checkpoint cannot be
// restored into this pipeline.
var ErrIncompatibleCheckpoint = errors.New("weir: checkpoint does not fit the pipeline")

// Job is a running pipeline.
type Job struct {
	p        *Pipeline
	cfg      Config
	logger   *slog.Logger
	store    *checkpoint.Store
	restored *checkpoint.Manifest
	tasks    []*task
	coord    *coordinator
	cache    *pebble.Cache
	metrics  *jobMetrics   // see metrics.go
	http     *statusServer // see status.go; nil without Config.MetricsAddr
	loop     *restartLoop  // see restart.go; nil under Start
	started  time.Time

	cancel context.CancelCauseFunc
	done   chan struct{}
	err    error
}

// job is the internal name used by tasks.
type job = Job

// Run runs p until its inputs end or an error occurs that cfg.Restart does
// not restart the job after (with the zero RestartStrategy: any error).
// Cancelling ctx stops the job at once, without a final checkpoint; the
// next run resumes from the last complete one.
func Run(ctx context.Context, p *Pipeline, cfg Config) error {
	return newRestartLoop(p, cfg).run(ctx)
}

// Start validates p and cfg, restores the newest checkpoint of
// cfg.CheckpointDir if there is one, and starts the job. It runs one
// attempt: cfg.Restart applies to Run and Exec only.
func Start(ctx context.Context, p *Pipeline, cfg Config) (*Job, error) {
	return start(ctx, p, cfg, nil)
}

// start is Start for an attempt of loop, or for none.
func start(ctx context.Context, p *Pipeline, cfg Config, loop *restartLoop) (*Job, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	j := &Job{p: p, cfg: cfg, logger: cfg.Logger.With("job", p.name), loop: loop, done: make(chan struct{})}
	if err := j.restore(); err != nil {
		return nil, err
	}
	j.metrics, j.started = newJobMetrics(j), time.Now()
	ctx, j.cancel = context.WithCancelCause(ctx)
	j.cache = pebble.NewCache(64 << 20)
	if err := j.build(ctx); err != nil {
		j.cancel(err)
		j.closeTasks()
		j.cache.Unref()
		j.store.Close()
		return nil, err
	}
	j.serve()
	go j.run(ctx)
	return j, nil
}

// RestoredFrom returns the id of the checkpoint the job resumed from, or 0.
func (j *Job) RestoredFrom() uint64 {
	if j.restored == nil {
		return 0
	}
	return j.restored.ID
}

// Stop asks the job to take a final checkpoint, let the sinks commit it,
// and end. Wait returns when it has.
func (j *Job) Stop() { j.coord.requestStop() }

// Wait waits for the job to end and returns its error, nil after a clean
// end.
func (j *Job) Wait() error {
	<-j.done
	return j.err
}

func (p *Pipeline) validate() error {
	hasSource := false
	for _, n := range p.nodes {
		if n.kind == sourceNode {
			hasSource = true
		}
	}
	if !hasSource {
		return fmt.Errorf("%w: no source", ErrInvalidPipeline)
	}
	return nil
}

func (j *Job) parallelism(n *node) int {
	if n.parallelism > 0 {
		return n.parallelism
	}
	return j.cfg.Parallelism
}

// restore opens the checkpoint directory, whose lock keeps other processes
// off it and off the live state inside it until the job ends, and resumes
// from it.
func (j *Job) restore() error {
	store, err := checkpoint.Open(j.cfg.CheckpointDir, j.logger)
	if err != nil {
		return err
	}
	j.store = store
	if err := j.resume(); err != nil {
		store.Close()
		return err
	}
	return nil
}

// resume finds and verifies the newest complete checkpoint. Nothing is
// deleted unless it verified, and incomplete checkpoints are only moved
// aside.
func (j *Job) resume() error {
	store := j.store
	m, err := store.Latest()
	if err != nil {
		return err
	}
	if m != nil {
		if err := store.Verify(m); err != nil {
			return fmt.Errorf("%w; refusing to restore (nothing was deleted); repair or remove the checkpoint directory %s", err, store.Dir(m.ID))
		}
		if err := j.compatible(m); err != nil {
			return err
		}
		j.restored = m
		j.logger.Info("restoring checkpoint", "checkpoint", m.ID, "dir", store.Dir(m.ID))
	}
	if err := store.MoveIncompleteAside(); err != nil {
		return err
	}
	return os.RemoveAll(j.liveDir())
}

func (j *Job) compatible(m *checkpoint.Manifest) error {
	if m.Job != j.p.name {
		return fmt.Errorf("%w: checkpoint %d in %s belongs to job %q, not %q", ErrIncompatibleCheckpoint, m.ID, j.cfg.CheckpointDir, m.Job, j.p.name)
	}
	if m.MaxParallelism != j.cfg.MaxParallelism {
		return fmt.Errorf("%w: checkpoint %d has --max-parallelism %d, not %d", ErrIncompatibleCheckpoint, m.ID, m.MaxParallelism, j.cfg.MaxParallelism)
	}
	for _, st := range m.Operators {
		n := j.p.node(st.Operator)
		if n == nil {
			return fmt.Errorf("%w: checkpoint %d has state of operator %q, which the pipeline no longer has", ErrIncompatibleCheckpoint, m.ID, st.Operator)
		}
		if p := j.parallelism(n); p != st.Parallelism {
			return fmt.Errorf("%w: operator %q ran with parallelism %d in checkpoint %d, now %d; changing the parallelism of stateful operators is not supported yet", ErrIncompatibleCheckpoint, st.Operator, st.Parallelism, m.ID, p)
		}
	}
	return nil
}

func (p *Pipeline) node(name string) *node {
	for _, n := range p.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

func (j *Job) liveDir() string { return filepath.Join(j.cfg.CheckpointDir, "live") }

func (j *Job) run(ctx context.Context) {
	defer close(j.done)
	defer j.store.Close() // after the tasks closed their live state
	defer j.stopServing()
	defer j.cache.Unref()
	var wg sync.WaitGroup
	for _, t := range j.tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.run(ctx); err != nil {
				j.cancel(err)
			}
		}()
	}
	coordDone := make(chan struct{})
	go func() {
		defer close(coordDone)
		if err := j.coord.run(ctx); err != nil {
			j.cancel(err)
		}
	}()
	wg.Wait()
	j.cancel(nil) // tasks are done; stop the coordinator if still running
	<-coordDone
	j.metrics.closeState() // no more state sizes for scrapes
	closeErr := j.closeTasks()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		j.err = cause
	} else if cause != nil && !j.coord.finalDone {
		j.err = cause // cancelled from outside before the end
	}
	if j.err == nil {
		j.err = closeErr
	}
	if j.err != nil {
		j.logger.Error("job failed", "err", j.err)
	} else {
		j.logger.Info("job finished", "final_checkpoint", j.coord.finalID)
	}
}

func (j *Job) closeTasks() error {
	var errs []error
	for _, t := range j.tasks {
		errs = append(errs, t.close())
	}
	return errors.Join(errs...)
}

// build creates the tasks: it chains operators, connects the rest with
// gates, and opens every operator subtask with its restored state.
func (j *Job) build(ctx context.Context) error {
	next, err := j.store.NextID()
	if err != nil {
		return err
	}
	if j.restored != nil && j.restored.ID >= next {
		next = j.restored.ID + 1
	}
	j.coord = newCoordinator(j, next)

	byHead := map[*node][]*task{}
	taskOf := map[*node][]*task{} // the task holding each node, per subtask
	for _, n := range j.p.nodes {
		if !j.isHead(n) {
			continue
		}
		for s := range j.parallelism(n) {
			t := &task{
				job: j, head: n, subtask: s,
				logger:     j.logger.With("task", n.name, "subtask", s),
				control:    make(chan command, 16),
				results:    make(chan state.Result, 8),
				drainQuota: 2 * j.cfg.BatchSize,
				wm:         MinWatermark,
			}
			byHead[n] = append(byHead[n], t)
			j.tasks = append(j.tasks, t)
		}
		for _, c := range j.chain(n) {
			taskOf[c] = byHead[n]
		}
	}
	// Gates and connections for every edge that is not chained.
	writers := map[*task]map[*edge][]*connection{}
	for _, to := range j.p.nodes {
		if !j.isHead(to) || to.kind == sourceNode {
			continue
		}
		for _, t := range byHead[to] {
			t.gate = newGate()
		}
		for _, e := range to.inputs {
			senders, receivers := taskOf[e.from], byHead[to]
			for _, sender := range senders {
				if writers[sender] == nil {
					writers[sender] = map[*edge][]*connection{}
				}
				for r, receiver := range receivers {
					if j.pointwise(e) && r != sender.subtask {
						continue
					}
					c := receiver.gate.connect(e, j.cfg.ChannelBuffers, j.cfg.BatchSize)
					writers[sender][e] = append(writers[sender][e], c)
				}
			}
		}
		for _, t := range byHead[to] {
			t.gate.seal(j.cfg.ChannelBuffers)
			n := len(t.gate.conns)
			t.blocked, t.parked, t.ended = make([]bool, n), make([][]envelope, n), make([]bool, n)
			t.chWm, t.chIdle = make([]int64, n), make([]bool, n)
			for i := range t.chWm {
				t.chWm[i] = MinWatermark
			}
		}
	}
	for _, t := range j.tasks {
		if err := j.open(ctx, t, writers[t]); err != nil {
			return fmt.Errorf("task %s: %w", t, err)
		}
		if t.source == nil && len(t.gate.conns) == 0 {
			return fmt.Errorf("%w: operator %q has no input", ErrInvalidPipeline, t.head.name)
		}
		if j.restored != nil {
			if st, ok := j.restored.Subtask(t.head.name, t.subtask); ok && st.EventTime != nil {
				t.restoreEventTime(*st.EventTime)
			}
			// The inputs ended before the restored checkpoint: operators
			// finished then and must not finish (and emit) again.
			t.endOfData = j.restored.EndOfInput
		}
	}
	return nil
}

// isHead reports whether n starts a chain.
func (j *Job) isHead(n *node) bool {
	return len(n.inputs) != 1 || !j.chained(n.inputs[0])
}

// chained reports whether e is a plain function call inside a task.
func (j *Job) chained(e *edge) bool {
	if len(e.to.inputs) != 1 || j.parallelism(e.from) != j.parallelism(e.to) {
		return false
	}
	return e.part == forward || j.parallelism(e.to) == 1
}

// pointwise reports whether e connects subtask i only to subtask i.
func (j *Job) pointwise(e *edge) bool {
	return e.part == forward && j.parallelism(e.from) == j.parallelism(e.to)
}

// chain returns head and the nodes chained behind it, upstream first.
func (j *Job) chain(head *node) []*node {
	out := []*node{head}
	for i := 0; i < len(out); i++ {
		for _, e := range out[i].outputs {
			if j.chained(e) {
				out = append(out, e.to)
			}
		}
	}
	return out
}

// open builds and opens the members of t, downstream first, so that each
// operator is opened with its output collector in place.
func (j *Job) open(ctx context.Context, t *task, conns map[*edge][]*connection) error {
	nodes := j.chain(t.head)
	byNode := map[*node]*member{}
	t.members = make([]*member, len(nodes))
	t.stats.members, t.stats.start = make([]memberStats, len(nodes)), monoNow()
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		var outs []any
		for k, e := range n.outputs {
			if j.chained(e) {
				outs = append(outs, t.stats.countChained(n.out, i, k, slices.Index(nodes, e.to), byNode[e.to].in))
				continue
			}
			var route any
			if e.router != nil {
				route = e.router(j.cfg.MaxParallelism, j.parallelism(e.to))
			}
			w := n.out.newWriter(ctx, conns[e], route, j.cfg.BatchSize)
			t.writers = append(t.writers, w)
			t.stats.countWriter(i, k, w)
			outs = append(outs, w.collector())
		}
		env := &subtaskEnv{
			ctx:       ctx,
			info:      TaskInfo{Job: j.p.name, Operator: n.name, Subtask: t.subtask, Parallelism: j.parallelism(n), Logger: t.logger.With("operator", n.name)},
			fail:      t.fail,
			watermark: &t.wm,
		}
		if n.out != nil {
			if len(outs) == 0 {
				outs = append(outs, n.out.discard())
			}
			env.out = n.out.fanout(outs)
		}
		m := &member{node: n}
		if j.restored != nil {
			data, err := j.store.ReadOperatorState(j.restored, n.name, t.subtask)
			if err != nil {
				return err
			}
			env.restored = data
		}
		if n.kind == sinkNode {
			j.trackCommits(env, n.name, t.subtask)
		}
		if n.keyed {
			b, err := j.openBackend(n, t)
			if err != nil {
				return err
			}
			m.backend, env.backend = b, b
		}
		inst, in, err := t.build(m, env)
		if err != nil {
			if m.backend != nil {
				m.backend.Close()
			}
			return fmt.Errorf("open operator %q: %w", n.name, err)
		}
		m.inst, m.in = j.instrument(t, i, n, inst), in
		byNode[n] = m
		t.members[i] = m
		if f, ok := in.(flusher); ok {
			m.buffer = f
		}
		if pt, ok := inst.(interface{ usesProcessingTime() bool }); ok && pt.usesProcessingTime() && t.ticker == nil {
			t.ticker = time.NewTicker(processingTimeTick)
			t.clock = t.ticker.C
		}
	}
	if r, ok := t.members[0].inst.(reader); ok {
		t.source = r
	}
	if t.gate != nil {
		t.inputs = make([]any, len(t.gate.conns))
		for i := range t.inputs {
			t.inputs[i] = t.members[0].in
		}
		t.stats.members[0].in = &t.stats.gateIn
	}
	return nil
}

// trackCommits makes a sink subtask's successful Commits durable records in
// the checkpoint directory and tells the sink, on restore, whether its Commit
// of the restored checkpoint had returned (TaskInfo.RestoredCommitted).
func (j *Job) trackCommits(env *subtaskEnv, operator string, subtask int) {
	env.committed = func(id uint64) error { return j.store.MarkCommitted(id, operator, subtask) }
	if j.restored != nil {
		env.info.RestoredCommitted = j.store.Committed(j.restored.ID, operator, subtask)
	}
}

// processingTimeTick is how often processing-time timers are checked.
const processingTimeTick = 10 * time.Millisecond

func (j *Job) openBackend(n *node, t *task) (*state.Backend, error) {
	dir := filepath.Join(j.liveDir(), n.name, strconv.Itoa(t.subtask))
	if j.restored != nil {
		if _, err := j.store.RestoreKeyed(j.restored, n.name, t.subtask, dir); err != nil {
			return nil, err
		}
	}
	return state.Open(state.Config{
		Dir:            dir,
		MaxParallelism: j.cfg.MaxParallelism,
		CacheEntries:   j.cfg.StateCacheEntries,
		BlockCache:     j.cache,
		Logger:         t.logger.With("operator", n.name),
		Results:        t.results,
	})
}
