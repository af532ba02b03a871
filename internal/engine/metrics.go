package engine

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/weirstream/weir/internal/statebackend"
)

// Metrics. The hot path never touches Prometheus: a task counts records in
// plain fields it owns (per gate delivery, per writer send, and through a
// counting collector on each chained edge) and publishes them to atomics
// once per batch; a prometheus.Collector reads the atomics at scrape time.
// Checkpoint histograms are observed by the coordinator, once per
// checkpoint.

// monoBase makes monoNow positive, so that 0 can mean "not set".
var monoBase = time.Now().Add(-time.Hour)

// monoNow returns monotonic nanoseconds.
func monoNow() int64 { return int64(time.Since(monoBase)) }

// taskStats holds a task's counters. The plain fields belong to the task
// goroutine; the atomics are what it publishes for scrapes.
type taskStats struct {
	start     int64 // monoNow at build
	idle      int64 // nanoseconds spent waiting for input or commands
	idleFrom  int64
	gateIn    uint64 // records delivered by the gate
	alignFrom time.Time
	members   []memberStats // parallel to task.members
	bp        backpressure  // shared by the task's writers

	busy      atomic.Int64 // published: nanoseconds neither idle nor backpressured
	watermark atomic.Int64 // unix nanoseconds of the current event-time watermark, 0: none

	// Guarded by jobMetrics.scrapeMu: the highest values reported, which
	// keep the counters monotonic across racing reads.
	maxBusy, maxBP int64
}

// memberStats are the counters of one chained operator subtask.
type memberStats struct {
	in, out       *uint64 // plain counters owned by the task goroutine; nil: not counted
	pubIn, pubOut atomic.Uint64
	late          atomic.Uint64 // records dropped as late (Env.LateDropped); rare, so counted atomically
	reports       Reports       // of a source or sink
}

// backpressure accumulates the time the writers of a task waited for a free
// buffer.
type backpressure struct {
	total atomic.Int64 // nanoseconds of finished waits
	since atomic.Int64 // monoNow at the start of the current wait, 0: none
}

func (b *backpressure) begin() int64 {
	now := monoNow()
	b.since.Store(now)
	return now
}

func (b *backpressure) end(start int64) {
	b.total.Add(monoNow() - start)
	b.since.Store(0)
}

// read returns the nanoseconds waited so far, including a wait in progress.
func (b *backpressure) read(now int64) int64 {
	v := b.total.Load()
	if s := b.since.Load(); s != 0 && now > s {
		v += now - s
	}
	return v
}

func (s *taskStats) idleBegin() { s.idleFrom = monoNow() }
func (s *taskStats) idleEnd()   { s.idle += monoNow() - s.idleFrom }

// delivered counts a data batch of type typ before the gate delivers it.
func (s *taskStats) delivered(typ StreamType, batch any) {
	s.gateIn += uint64(typ.(recordCounter).batchLen(batch))
}

// alignment returns the time since the first barrier of the checkpoint
// being aligned arrived, and resets it; 0 for sources.
func (s *taskStats) alignment() time.Duration {
	if s.alignFrom.IsZero() {
		return 0
	}
	d := time.Since(s.alignFrom)
	s.alignFrom = time.Time{}
	return d
}

// countChained wraps in, the input collector of the chained member to, so
// that it counts the records member from emits on its output number k.
func (s *taskStats) countChained(typ StreamType, from, k, to int, in any) any {
	c, n := typ.(recordCounter).counting(in)
	s.members[to].in = n
	if k == 0 {
		s.members[from].out = n
	}
	return c
}

// countWriter makes w report backpressure to the task and, for the first
// output of member from, count its records.
func (s *taskStats) countWriter(from, k int, w outputWriter) {
	n := w.(observedWriter).observe(&s.bp)
	if k == 0 {
		s.members[from].out = n
	}
}

// publish makes the task's counters visible to scrapes. The task calls it
// once per batch or event.
func (t *task) publish() {
	s := &t.stats
	for i := range s.members {
		m := &s.members[i]
		if m.in != nil {
			m.pubIn.Store(*m.in)
		}
		if m.out != nil {
			m.pubOut.Store(*m.out)
		}
	}
	s.busy.Store(monoNow() - s.start - s.idle - s.bp.total.Load())
}

// reportWatermark records the task's current event-time watermark (ms since
// the epoch), for weir_watermark_lag_seconds (wall clock minus watermark).
// It is the one hook for the event-time machinery: call it from the task
// goroutine whenever the task's watermark advances (task.advance). It costs
// one atomic store; MinWatermark and MaxWatermark (end of input) are not
// lags and clear the gauge.
func (t *task) reportWatermark(wm int64) {
	if wm == MinWatermark || wm == MaxWatermark {
		t.stats.watermark.Store(0)
		return
	}
	t.stats.watermark.Store(wm * int64(time.Millisecond))
}

// recordCounter is implemented by typeOps.
type recordCounter interface {
	batchLen(batch any) int
	counting(in any) (any, *uint64)
}

func (typeOps[T]) batchLen(b any) int { return len(b.(*batch[T]).recs) }

func (typeOps[T]) counting(in any) (any, *uint64) {
	if p, ok := in.(ProcessorInput[T]); ok {
		c := &countingProcessor[T]{op: p.Processor()}
		return Collector[T](c), &c.n
	}
	c := &countingCollector[T]{next: in.(Collector[T])}
	return Collector[T](c), &c.n
}

// countingCollector counts the records passed along a chained edge. The
// count is a plain field: only the task goroutine touches it. NB: a panic
// is traced to its operator through these frames and counts (panic.go).
type countingCollector[T any] struct {
	next Collector[T]
	n    uint64
}

// NB: Collect passes rec on before it counts (task.inProgress relies on
// that order): counting first makes the compiler copy a record that does
// not fit in registers once more, into a temporary, in the generic code
// (BenchmarkChainedEdgeLarge; Nexmark q7 passes two such edges per event).
func (c *countingCollector[T]) Collect(rec T) {
	c.next.Collect(rec)
	c.n++
}

// countingProcessor is a countingCollector into an Operator's Process, in
// one call. NB: it is a chained edge for panic tracing too (panic.go).
type countingProcessor[T any] struct {
	op Processor[T]
	n  uint64
}

func (c *countingProcessor[T]) Collect(rec T) {
	c.op.Process(rec) // before counting: see countingCollector.Collect
	c.n++
}

// DirectProcessor is a chained edge into an operator's Process that the
// member upstream calls directly rather than through its Collector: the
// engine's own emitters (the watermark generator of a source or of
// AssignTimestamps) use it to save, per record, the dynamic call into the
// edge and a copy of the record, which for a record passed in memory cost
// as much as the operator's own call. Obtain one with Direct.
type DirectProcessor[T any] struct {
	c *countingProcessor[T]
}

// Direct returns out, an Env.Out, as a DirectProcessor if it is a single
// chained edge into an operator's Process, and false otherwise (several
// outputs, a channel, a keyed collector, a sink, or no output).
func Direct[T any](out any) (DirectProcessor[T], bool) {
	c, ok := out.(*countingProcessor[T])
	return DirectProcessor[T]{c}, ok
}

// Collect passes rec to the operator and counts it, as the edge's Collect
// does. NB: it is small enough to be inlined into its caller, where its
// frame still marks a chained edge for panic tracing (panic.go).
func (d DirectProcessor[T]) Collect(rec T) {
	d.c.op.Process(rec) // before counting: see countingCollector.Collect
	d.c.n++
}

// observedWriter is implemented by writer.
type observedWriter interface {
	observe(bp *backpressure) *uint64
}

func (w *writer[T]) observe(bp *backpressure) *uint64 {
	w.bp = bp
	return &w.sent
}

// sinkCommit times a sink's Commit and records, when it returns, that it
// did (TaskInfo.RestoredCommitted of the next start).
type sinkCommit struct {
	Instance
	obs       prometheus.Observer
	committed func(checkpointID uint64) error
}

func (c sinkCommit) NotifyComplete(ctx context.Context, id uint64) error {
	start := time.Now()
	err := c.Instance.NotifyComplete(ctx, id)
	c.obs.Observe(time.Since(start).Seconds())
	if err != nil {
		return err
	}
	return c.committed(id)
}

// instrument records what the metrics need about member i of t, an opened
// subtask of n, and returns the instance to use.
func (j *job) instrument(t *task, i int, n *Node, sub Subtask) Instance {
	t.stats.members[i].reports = sub.Reports
	if n.Kind == SinkNode {
		return sinkCommit{
			Instance:  sub.Instance,
			obs:       j.metrics.commitDuration.WithLabelValues(n.Name, strconv.Itoa(t.subtask)),
			committed: func(id uint64) error { return j.store.MarkCommitted(id, n.Name, t.subtask) },
		}
	}
	return sub.Instance
}

// errCheckpointTimedOut marks the abort of a checkpoint that took longer
// than Config.CheckpointTimeout.
var errCheckpointTimedOut = errors.New("timed out")

// Checkpoint outcomes, the values of the outcome label.
const (
	outcomeCompleted = "completed"
	outcomeFailed    = "failed"  // declined by a task, or could not be written
	outcomeAborted   = "aborted" // timed out
)

// historyLen is the number of checkpoints the status keeps.
const historyLen = 32

// jobMetrics holds a job's metrics and checkpoint history.
type jobMetrics struct {
	j   *job
	reg *prometheus.Registry

	checkpointDuration *prometheus.HistogramVec // phase
	checkpointSize     prometheus.Histogram
	commitDuration     *prometheus.HistogramVec // operator, subtask

	completed, failed, aborted atomic.Uint64
	lastCompleted              atomic.Int64   // unix nanoseconds
	restarts                   *atomic.Uint64 // the restart loop's count; nil only in tests

	scrapeMu sync.Mutex // serializes Collect, for the monotonic guards

	// stateMu guards reading the state backends' sizes against their
	// closing at the end of the job.
	stateMu     sync.RWMutex
	stateClosed bool

	mu      sync.Mutex
	history []CheckpointStatus // oldest first
	samples []sample           // for Status rates
}

func newJobMetrics(j *job) *jobMetrics {
	m := &jobMetrics{j: j, reg: prometheus.NewRegistry()}
	constLabels := prometheus.Labels{"job": j.g.Name}
	m.checkpointDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "weir_checkpoint_duration_seconds",
		Help: "Duration of completed checkpoints by phase: sync (longest synchronous pause of a task), " +
			"alignment (longest time from first to last barrier at a task's inputs), async (longest time " +
			"from the end of a task's synchronous part to its acknowledgement), total (trigger to durable manifest).",
		ConstLabels: constLabels,
		Buckets:     prometheus.ExponentialBuckets(0.0005, 2, 18), // 0.5ms to ~65s
	}, []string{"phase"})
	m.checkpointSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:        "weir_checkpoint_size_bytes",
		Help:        "Bytes each completed checkpoint added to storage.",
		ConstLabels: constLabels,
		Buckets:     prometheus.ExponentialBuckets(1024, 4, 12), // 1KiB to 4GiB
	})
	m.commitDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "weir_sink_commit_duration_seconds",
		Help:        "Duration of a sink subtask's Commit after a checkpoint completed.",
		ConstLabels: constLabels,
		Buckets:     prometheus.ExponentialBuckets(0.0001, 2, 18), // 0.1ms to ~13s
	}, []string{"operator", "subtask"})
	if j.loop != nil {
		m.restarts = &j.loop.restarts
	}
	m.reg.MustRegister(m.checkpointDuration, m.checkpointSize, m.commitDuration,
		jobCollector{m}, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// checkpointCompleted records a completed checkpoint; the coordinator calls it.
func (m *jobMetrics) checkpointCompleted(info CheckpointInfo, in *inflight) {
	var align, async time.Duration
	for _, a := range in.acks {
		align = max(align, a.alignment)
		async = max(async, a.acked.Sub(a.syncEnd))
	}
	m.checkpointDuration.WithLabelValues("sync").Observe(info.MaxSyncPause.Seconds())
	m.checkpointDuration.WithLabelValues("alignment").Observe(align.Seconds())
	m.checkpointDuration.WithLabelValues("async").Observe(async.Seconds())
	m.checkpointDuration.WithLabelValues("total").Observe(info.Duration.Seconds())
	m.checkpointSize.Observe(float64(info.BytesWritten))
	m.completed.Add(1)
	now := time.Now()
	m.lastCompleted.Store(now.UnixNano())
	m.record(CheckpointStatus{
		ID: info.ID, Outcome: outcomeCompleted, Final: info.Final, Started: in.started, Ended: now,
		Duration: info.Duration, SyncPause: info.MaxSyncPause, Alignment: align, Async: async,
		BytesWritten: info.BytesWritten,
	})
}

// checkpointAborted records a checkpoint given up; the coordinator calls it.
func (m *jobMetrics) checkpointAborted(in *inflight, cause error) {
	outcome := outcomeFailed
	if errors.Is(cause, errCheckpointTimedOut) {
		outcome = outcomeAborted
		m.aborted.Add(1)
	} else {
		m.failed.Add(1)
	}
	now := time.Now()
	m.record(CheckpointStatus{
		ID: in.id, Outcome: outcome, Final: in.final, Started: in.started, Ended: now,
		Duration: now.Sub(in.started), Error: cause.Error(),
	})
}

func (m *jobMetrics) record(st CheckpointStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.history) == historyLen {
		m.history = append(m.history[:0], m.history[1:]...)
	}
	m.history = append(m.history, st)
}

// closeState stops reading state sizes; the job calls it before closing the
// backends.
func (m *jobMetrics) closeState() {
	m.stateMu.Lock()
	m.stateClosed = true
	m.stateMu.Unlock()
}

// stateBytes returns the on-disk size of a keyed state backend, or false
// once the backends are closed. NB: a Backend belongs to its task
// goroutine; only DiskBytes (Pebble's Metrics, which locks) is safe here.
func (m *jobMetrics) stateBytes(b *statebackend.Backend) (uint64, bool) {
	m.stateMu.RLock()
	defer m.stateMu.RUnlock()
	if m.stateClosed {
		return 0, false
	}
	return b.DiskBytes(), true
}

// jobCollector exports the counters the tasks publish and the gauges read
// at scrape time.
type jobCollector struct{ m *jobMetrics }

var (
	subtaskLabels = []string{"job", "operator", "subtask"}

	descRecordsIn = prometheus.NewDesc("weir_records_in_total",
		"Records received by an operator subtask (published once per batch).", subtaskLabels, nil)
	descRecordsOut = prometheus.NewDesc("weir_records_out_total",
		"Records emitted by an operator subtask (published once per batch).", subtaskLabels, nil)
	descBusy = prometheus.NewDesc("weir_task_busy_seconds_total",
		"Time a task (a chain of operators, named by its first) spent neither waiting for input nor backpressured; "+
			"time inside Source.Read counts as busy.", subtaskLabels, nil)
	descBackpressured = prometheus.NewDesc("weir_task_backpressured_seconds_total",
		"Time a task waited for a free output buffer because a downstream task was slower.", subtaskLabels, nil)
	descStateSize = prometheus.NewDesc("weir_state_size_bytes",
		"On-disk size of the keyed state of an operator subtask (its live Pebble database).", subtaskLabels, nil)
	descLateDropped = prometheus.NewDesc("weir_late_records_dropped_total",
		"Records an operator subtask took off its main path because they arrived behind the watermark (windows and pre-aggregations route them to their late stream; joins drop them).",
		subtaskLabels, nil)
	descWatermarkLag = prometheus.NewDesc("weir_watermark_lag_seconds",
		"Wall-clock time minus the event-time watermark of a task.", subtaskLabels, nil)
	descSourceLag = prometheus.NewDesc("weir_source_lag_records",
		"Records a source subtask is behind the end of a partition of its input (Kafka: the high watermark).",
		append(subtaskLabels[:3:3], "partition"), nil)
	descTransactions = prometheus.NewDesc("weir_sink_transactions_total",
		"Transactions a two-phase sink subtask committed or aborted.", append(subtaskLabels[:3:3], "outcome"), nil)
	descCheckpoints = prometheus.NewDesc("weir_checkpoints_total",
		"Checkpoints by outcome: completed; failed (declined by a task or not writable); aborted (timed out).",
		[]string{"job", "outcome"}, nil)
	descLastCompleted = prometheus.NewDesc("weir_last_checkpoint_completed_timestamp_seconds",
		"Unix time of the last completed checkpoint (0: none yet).", []string{"job"}, nil)
	descRestarts = prometheus.NewDesc("weir_restarts_total",
		"Restarts of the job after a failure in this process (Config.Restart, the --restart-* flags).", []string{"job"}, nil)
	descRestored = prometheus.NewDesc("weir_restored_checkpoint_id",
		"Id of the checkpoint the job resumed from (0: a fresh start).", []string{"job"}, nil)
	descRunning = prometheus.NewDesc("weir_job_running",
		"1 while the job runs, 0 once it has ended.", []string{"job"}, nil)
)

func (c jobCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRecordsIn, descRecordsOut, descBusy, descBackpressured,
		descStateSize, descLateDropped, descWatermarkLag, descSourceLag, descTransactions, descCheckpoints,
		descLastCompleted, descRestarts, descRestored, descRunning} {
		ch <- d
	}
}

func (c jobCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	j := m.j
	job := j.g.Name
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	counter(descCheckpoints, float64(m.completed.Load()), job, outcomeCompleted)
	counter(descCheckpoints, float64(m.failed.Load()), job, outcomeFailed)
	counter(descCheckpoints, float64(m.aborted.Load()), job, outcomeAborted)
	gauge(descLastCompleted, float64(m.lastCompleted.Load())/1e9, job)
	var restarts uint64
	if m.restarts != nil {
		restarts = m.restarts.Load()
	}
	counter(descRestarts, float64(restarts), job)
	gauge(descRestored, float64(j.RestoredFrom()), job)
	running := 1.0
	if j.ended() {
		running = 0
	}
	gauge(descRunning, running, job)

	m.scrapeMu.Lock()
	defer m.scrapeMu.Unlock()
	now := monoNow()
	wall := time.Now().UnixNano()
	for _, t := range j.tasks {
		sub := strconv.Itoa(t.subtask)
		s := &t.stats
		s.maxBusy = max(s.maxBusy, s.busy.Load())
		s.maxBP = max(s.maxBP, s.bp.read(now))
		counter(descBusy, float64(s.maxBusy)/1e9, job, t.head.Name, sub)
		counter(descBackpressured, float64(s.maxBP)/1e9, job, t.head.Name, sub)
		if wm := s.watermark.Load(); wm != 0 {
			gauge(descWatermarkLag, float64(wall-wm)/1e9, job, t.head.Name, sub)
		}
		for i, mem := range t.members {
			ms := &s.members[i]
			op := mem.node.Name
			if ms.in != nil {
				counter(descRecordsIn, float64(ms.pubIn.Load()), job, op, sub)
			}
			if ms.out != nil {
				counter(descRecordsOut, float64(ms.pubOut.Load()), job, op, sub)
			}
			if mem.node.Kind == OperatorNode {
				counter(descLateDropped, float64(ms.late.Load()), job, op, sub)
			}
			if mem.backend != nil {
				if n, ok := m.stateBytes(mem.backend); ok {
					gauge(descStateSize, float64(n), job, op, sub)
				}
			}
			if lag := ms.reports.SourceLag; lag != nil {
				for _, l := range lag() {
					gauge(descSourceLag, float64(l.Records), job, op, sub, l.Partition)
				}
			}
			if txns := ms.reports.Transactions; txns != nil {
				committed, aborted := txns()
				counter(descTransactions, float64(committed), job, op, sub, "committed")
				counter(descTransactions, float64(aborted), job, op, sub, "aborted")
			}
		}
	}
}
