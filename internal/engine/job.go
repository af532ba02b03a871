package engine

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

	"github.com/weirstream/weir/internal/chkstore"
	"github.com/weirstream/weir/internal/statebackend"
)

// ErrIncompatibleCheckpoint is wrapped when the newest checkpoint cannot be
// restored into this pipeline.
var ErrIncompatibleCheckpoint = errors.New("weir: checkpoint does not fit the pipeline")

// job is one attempt of a running graph.
type job struct {
	g        *Graph
	cfg      Config
	logger   *slog.Logger
	store    *chkstore.Store
	restored *chkstore.Manifest
	tasks    []*task
	coord    *coordinator
	cache    *pebble.Cache
	metrics  *jobMetrics   // see metrics.go
	http     *statusServer // see status.go; nil without Config.MetricsAddr
	loop     *restartLoop  // see restart.go; nil only in tests
	started  time.Time
	// opened is how long each operator subtask took to open (its state
	// restored, its connections made), for the log line of the start.
	opened []any

	cancel context.CancelCauseFunc
	done   chan struct{}
	err    error
}

// start restores the newest checkpoint of cfg.CheckpointDir if there is
// one and starts an attempt of g for loop.
func start(ctx context.Context, g *Graph, cfg Config, loop *restartLoop) (*job, error) {
	j := &job{g: g, cfg: cfg, logger: cfg.Logger.With("job", g.Name), loop: loop, done: make(chan struct{})}
	begin := time.Now()
	if err := j.restore(ctx); err != nil {
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
	if j.restored != nil {
		// NB: where a restore spends its time (issue 12's failover
		// breakdown): the checkpoint found and verified, then each
		// operator subtask opened (a sink's fencing, say; the tasks
		// concurrently, each task's members in order: openTasks), and
		// each keyed state, opened meanwhile (openKeyedAhead): its files
		// restored, Pebble opened, and how long its operator waited.
		j.logger.Info("restored job started", "checkpoint", j.restored.ID,
			"verify", j.started.Sub(begin).Round(time.Millisecond),
			"open", time.Since(j.started).Round(time.Millisecond),
			slog.Group("operators", j.opened...))
	}
	if f := cfg.Events.Started; f != nil {
		info := StartInfo{RestoredFrom: j.RestoredFrom(), MetricsAddr: j.MetricsAddr()}
		if loop != nil {
			info.Attempt = loop.attempts
		}
		f(info)
	}
	go j.run(ctx)
	return j, nil
}

// RestoredFrom returns the id of the checkpoint the job resumed from, or 0.
func (j *job) RestoredFrom() uint64 {
	if j.restored == nil {
		return 0
	}
	return j.restored.ID
}

// Stop asks the job to take a final checkpoint, let the sinks commit it,
// and end. Wait returns when it has.
func (j *job) Stop() { j.coord.requestStop() }

// Wait waits for the job to end and returns its error, nil after a clean
// end.
func (j *job) Wait() error {
	<-j.done
	return j.err
}

func (j *job) parallelism(n *Node) int {
	if n.Parallelism > 0 {
		return n.Parallelism
	}
	return j.cfg.Parallelism
}

// restore opens the checkpoint location, whose lock (on the local
// directory) keeps other processes off it and off the live state inside it
// until the job ends, and resumes from it. The store's requests to object
// storage outlive a cancellation of ctx: the store is used until the job
// has ended, final checkpoint included; each request has its own bounds in
// package objstore.
func (j *job) restore(ctx context.Context) error {
	store, err := chkstore.OpenLocation(context.WithoutCancel(ctx), j.cfg.CheckpointDir, j.cfg.LocalDir, j.logger)
	if err != nil {
		return err
	}
	j.store = store
	if err := j.fromSavepoint(ctx); err != nil {
		store.Close()
		return err
	}
	if err := j.resume(); err != nil {
		store.Close()
		return err
	}
	return nil
}

// resume finds and verifies the newest complete checkpoint. Nothing is
// deleted unless it verified, and incomplete checkpoints are only moved
// aside.
func (j *job) resume() error {
	store := j.store
	m, err := store.Latest()
	if err != nil {
		return err
	}
	if m != nil {
		if err := store.Verify(m); err != nil {
			return fmt.Errorf("%w; refusing to restore (nothing was deleted); repair or remove checkpoint %s of %s", err, filepath.Base(store.Dir(m.ID)), store.Location())
		}
		if m, err = j.dropNonRestored(m); err != nil {
			return err
		}
		if err := j.compatible(m); err != nil {
			return err
		}
		j.restored = m
		j.logger.Info("restoring checkpoint", "checkpoint", m.ID, "location", store.Location(), "dir", store.Dir(m.ID))
	}
	if err := store.MoveIncompleteAside(); err != nil {
		return err
	}
	return os.RemoveAll(j.liveDir())
}

func (j *job) compatible(m *chkstore.Manifest) error {
	if m.Job != j.g.Name {
		return fmt.Errorf("%w: checkpoint %d in %s belongs to job %q, not %q", ErrIncompatibleCheckpoint, m.ID, j.store.Location(), m.Job, j.g.Name)
	}
	if err := j.compatibleTask(m); err != nil {
		return err
	}
	if m.MaxParallelism != j.cfg.MaxParallelism {
		return fmt.Errorf("%w: checkpoint %d has --max-parallelism %d, not %d: the number of key groups is fixed for the life of a job's state; restart with --max-parallelism %d", ErrIncompatibleCheckpoint, m.ID, m.MaxParallelism, j.cfg.MaxParallelism, m.MaxParallelism)
	}
	for _, st := range m.Operators {
		// NB: a parallelism that changed is handled per state: see rescale.go.
		if j.g.Node(st.Operator) == nil {
			return fmt.Errorf("%w: checkpoint %d has state of operator %q, which the pipeline no longer has", ErrIncompatibleCheckpoint, m.ID, st.Operator)
		}
	}
	return nil
}

func (j *job) liveDir() string { return filepath.Join(j.store.Root(), "live") }

func (j *job) run(ctx context.Context) {
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

func (j *job) closeTasks() error {
	var errs []error
	for _, t := range j.tasks {
		errs = append(errs, t.close())
	}
	return errors.Join(errs...)
}

// build creates the tasks: it chains operators, connects the rest with
// gates, and opens every operator subtask with its restored state.
func (j *job) build(ctx context.Context) (err error) {
	next, err := j.store.NextID()
	if err != nil {
		return err
	}
	if j.restored != nil && j.restored.ID >= next {
		next = j.restored.ID + 1
	}
	j.coord = newCoordinator(j, next)

	byHead := map[*Node][]*task{}
	taskOf := map[*Node][]*task{} // the task holding each node, per subtask
	for _, n := range j.g.Nodes {
		if !j.isHead(n) {
			continue
		}
		for _, s := range j.subtasks(n) {
			t := &task{
				job: j, head: n, subtask: s,
				logger:     j.logger.With("task", n.Name, "subtask", s),
				control:    make(chan command, 16),
				results:    make(chan statebackend.Result, 8),
				drainQuota: 2 * j.cfg.BatchSize,
				wm:         MinWatermark,
				ts:         NoTimestamp,
			}
			byHead[n] = append(byHead[n], t)
			j.tasks = append(j.tasks, t)
		}
		for _, c := range j.chain(n) {
			taskOf[c] = byHead[n]
		}
	}
	// Gates and connections for every edge that is not chained.
	writers := map[*task]map[*Edge][]*connection{}
	for _, to := range j.g.Nodes {
		if !j.isHead(to) || to.Kind == SourceNode {
			continue
		}
		for _, t := range byHead[to] {
			t.gate = newGate()
		}
		for _, e := range to.Inputs {
			senders, receivers := taskOf[e.From], byHead[to]
			for _, sender := range senders {
				if writers[sender] == nil {
					writers[sender] = map[*Edge][]*connection{}
				}
				for _, receiver := range receivers {
					if j.pointwise(e) && receiver.subtask != sender.subtask {
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
	catchingUp := 0
	j.openKeyedAhead()
	defer func() {
		if err != nil {
			j.closeUntaken()
		}
	}()
	if err := j.openTasks(ctx, writers); err != nil {
		return err
	}
	for _, t := range j.tasks {
		if t.source != nil && j.restored != nil && !j.restored.EndOfInput && t.stats.members[0].reports.SourceLag != nil {
			t.catchingUp = true
			catchingUp++
		}
		if t.source == nil && len(t.gate.conns) == 0 {
			return fmt.Errorf("operator %q has no input", t.head.Name)
		}
		if j.restored != nil {
			if ts, ok := j.restoredEventTime(t); ok {
				t.restoreEventTime(ts)
			}
			// The inputs ended before the restored checkpoint: operators
			// finished then and must not finish (and emit) again.
			t.endOfData = j.restored.EndOfInput
		}
	}
	j.coord.awaitCaughtUp(catchingUp)
	return nil
}

// isHead reports whether n starts a chain.
func (j *job) isHead(n *Node) bool {
	return len(n.Inputs) != 1 || !j.chained(n.Inputs[0])
}

// chained reports whether e is a plain function call inside a task.
func (j *job) chained(e *Edge) bool {
	if e.To.AssignsEventTime || len(e.To.Inputs) != 1 || j.parallelism(e.From) != j.parallelism(e.To) {
		return false
	}
	return e.Part == Forward || j.parallelism(e.To) == 1
}

// pointwise reports whether e connects subtask i only to subtask i.
func (j *job) pointwise(e *Edge) bool {
	return e.Part == Forward && j.parallelism(e.From) == j.parallelism(e.To)
}

// chain returns head and the nodes chained behind it, upstream first.
func (j *job) chain(head *Node) []*Node {
	out := []*Node{head}
	for i := 0; i < len(out); i++ {
		for _, e := range out[i].Outputs {
			if j.chained(e) {
				out = append(out, e.To)
			}
		}
	}
	return out
}

// openTasks opens every task of the job, each on a goroutine of its own,
// and returns the first error, once every open has returned. After an
// error the job's context is cancelled, so that the other opens end soon;
// the caller closes what they opened.
//
// NB: concurrently, because opening is mostly waiting: a task that moved
// to a group member opens its sinks, and a Kafka transactional sink fences
// the prior epochs' transactional ids and commits the restored
// transactions (round trips to the brokers). One task after the other,
// the exchange's sink and the output's added up in every takeover (issue
// 12's failover breakdown: 0.4–0.66 s, then 0.2–0.5 s, of a task's 1–1.4 s
// open at load 10). At load 17–19 on 2 cores, where the dev broker and the
// members lack CPU rather than wait on round trips, the opens overlapped
// but each took twice as long: a task's open stayed at 0.28 s (median).
// The members of one task still open one after the other, downstream
// first (open). So the factories of the operators, sources and sinks, and
// their Open, are called concurrently for different subtasks (see
// runtime.SourceFactory).
func (j *job) openTasks(ctx context.Context, writers map[*task]map[*Edge][]*connection) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, t := range j.tasks {
		wg.Go(func() {
			if err := j.open(ctx, t, writers[t]); err != nil {
				err = fmt.Errorf("task %s: %w", t, err)
				mu.Lock()
				defer mu.Unlock()
				if first == nil {
					first = err
					j.cancel(err)
				}
			}
		})
	}
	wg.Wait()
	for _, t := range j.tasks {
		j.opened = append(j.opened, t.opened...) // in the tasks' order
	}
	return first
}

// open builds and opens the members of t, downstream first, so that each
// operator is opened with its output collector in place.
func (j *job) open(ctx context.Context, t *task, conns map[*Edge][]*connection) error {
	nodes := j.chain(t.head)
	byNode := map[*Node]*member{}
	t.members = make([]*member, len(nodes))
	t.stats.members, t.stats.start = make([]memberStats, len(nodes)), monoNow()
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		var outs []any
		for k, e := range n.Outputs {
			if j.chained(e) {
				outs = append(outs, t.stats.countChained(n.Out, i, k, slices.Index(nodes, e.To), byNode[e.To].in))
				continue
			}
			var route any
			if e.Router != nil {
				route = e.Router(j.cfg.MaxParallelism, j.parallelism(e.To))
			}
			var ts *int64 // timestamps cost ~4 ns a record on a channel: carried only with event time
			if n.EventTime {
				ts = &t.ts
			}
			w := n.Out.newWriter(ctx, conns[e], route, j.cfg.BatchSize, ts)
			t.writers = append(t.writers, w)
			t.stats.countWriter(i, k, w)
			outs = append(outs, w.collector())
		}
		env := &Env{
			Ctx: ctx, Job: j.g.Name, Operator: n.Name, Subtask: t.subtask, Parallelism: j.parallelism(n),
			Logger: t.logger.With("operator", n.Name), CheckpointInterval: j.cfg.CheckpointInterval,
			Fail: t.fail, Watermark: &t.wm, Idle: &t.idle, Task: j.cfg.Task,
		}
		if n.EventTime {
			env.Timestamp = &t.ts
		}
		if n.Kind == OperatorNode {
			env.LateDropped = &t.stats.members[i].late
		}
		if n.Out != nil {
			if len(outs) == 0 {
				outs = append(outs, n.Out.discard())
			}
			env.Out = n.Out.fanout(outs)
		}
		m := &member{node: n}
		began := time.Now()
		if j.restored != nil {
			if err := j.restoreOperatorState(env, n, t.subtask); err != nil {
				return err
			}
		}
		if n.Keyed {
			k := t.keyed[n]
			waitBegan := time.Now()
			<-k.done
			k.taken = true
			if k.err != nil {
				return k.err
			}
			m.backend, env.Backend = k.backend, k.backend
			if j.restored != nil {
				// NB: the state was opened ahead (openKeyedAhead); waited is
				// what the operator's open still waited for it.
				name := n.Name + "/" + strconv.Itoa(t.subtask) + ".state"
				t.opened = append(t.opened,
					slog.Duration(name+".restore", k.restore.Round(time.Millisecond)),
					slog.Duration(name+".open", k.open.Round(time.Millisecond)),
					slog.Duration(name+".waited", time.Since(waitBegan).Round(time.Millisecond)))
			}
		}
		sub, err := t.build(m, env)
		if err != nil {
			if m.backend != nil {
				m.backend.Close()
			}
			return fmt.Errorf("open operator %q: %w", n.Name, err)
		}
		if j.restored != nil {
			t.opened = append(t.opened, slog.Duration(n.Name+"/"+strconv.Itoa(t.subtask), time.Since(began).Round(time.Millisecond)))
		}
		m.inst, m.in = j.instrument(t, i, n, sub), sub.In
		byNode[n] = m
		t.members[i] = m
		if f, ok := sub.In.(Flusher); ok {
			m.buffer = f
		}
		if sub.Instance.UsesProcessingTime() && t.ticker == nil {
			t.ticker = time.NewTicker(processingTimeTick)
			t.clock = t.ticker.C
		}
	}
	if r, ok := t.members[0].inst.(Reader); ok {
		t.source, t.gen = r, r
	} else if g, ok := t.members[0].inst.(WatermarkGenerator); ok && t.head.AssignsEventTime {
		t.gen = g
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

// processingTimeTick is how often processing-time timers are checked.
const processingTimeTick = 10 * time.Millisecond

// stateCacheShare returns the cache bound of one keyed subtask: an equal
// share of Config.StateCacheBytes, which bounds the process's state cache,
// and at least statebackend.MinCacheBytes.
func (j *job) stateCacheShare() int64 {
	subtasks := 0
	for _, n := range j.g.Nodes {
		if n.Keyed {
			subtasks += j.localSubtasks(n)
		}
	}
	return max(j.cfg.StateCacheBytes/int64(max(subtasks, 1)), statebackend.MinCacheBytes)
}

// keyedOpen is the keyed state of one operator subtask, restored and
// opened ahead of the operator (openKeyedAhead).
type keyedOpen struct {
	done    chan struct{} // closed when backend or err is set
	backend *statebackend.Backend
	err     error
	// How long the files took to restore (RestoreKeyed) and Pebble to
	// open, for the log line of a restored start.
	restore, open time.Duration
	taken         bool // by the operator's member (job.open), which closes it
}

// openKeyedAhead restores and opens the keyed state of every keyed operator
// subtask of the job, each on a goroutine of its own, so that it proceeds
// while the operators open (openTasks; job.open takes each when
// its operator opens).
//
// NB: a task that moved to this member waits for its sinks' fencing of
// the prior epochs' transactions (round trips to the brokers) and for its
// keyed state (local files, and CPU); one after the other they added up
// (issue 12's failover breakdown: sink setup 0.02–0.7 s, keyed state
// 5 ms–5 s).
func (j *job) openKeyedAhead() {
	for _, t := range j.tasks {
		t.keyed = map[*Node]*keyedOpen{}
		for _, n := range j.chain(t.head) {
			if !n.Keyed {
				continue
			}
			k := &keyedOpen{done: make(chan struct{})}
			t.keyed[n] = k
			go func() {
				defer close(k.done)
				k.backend, k.err = j.openBackend(n, t, k)
			}()
		}
	}
}

// closeUntaken waits for the keyed states that openKeyedAhead opened and
// closes those that no operator took: the job failed to build.
func (j *job) closeUntaken() {
	for _, t := range j.tasks {
		for _, k := range t.keyed {
			<-k.done
			if !k.taken && k.backend != nil {
				k.backend.Close()
			}
		}
	}
}

// openBackend restores the keyed state of n's subtask in t if the job
// restored a checkpoint, opens it, and records in k how long each took.
func (j *job) openBackend(n *Node, t *task, k *keyedOpen) (*statebackend.Backend, error) {
	dir := filepath.Join(j.liveDir(), n.Name, strconv.Itoa(t.subtask))
	began := time.Now()
	if j.restored != nil {
		if err := j.restoreKeyed(n, t.subtask, dir); err != nil {
			return nil, err
		}
	}
	k.restore = time.Since(began)
	defer func() { k.open = time.Since(began) - k.restore }()
	return statebackend.Open(statebackend.Config{
		Dir:            dir,
		MaxParallelism: j.cfg.MaxParallelism,
		CacheBytes:     j.stateCacheShare(),
		BlockCache:     j.cache,
		Logger:         t.logger.With("operator", n.Name),
		Results:        t.results,
		// NB: the task starts without waiting for its restored state to be
		// cached (0.5–0.8 s for a million entries): drain loads it between
		// records (task.go).
		WarmLater: true,
	})
}
