package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// These tests run a whole event-time job spread over processes, as
// `--group` runs it, with its members in this process: each member is a
// runtime.Run of its own over a kafka.NewCluster, the input, the
// repartition topic and the output are topics of one kfake broker, and
// the job's tasks checkpoint into one shared directory. The job counts and
// sums readings per key in tumbling event-time windows; the input is
// partitioned by reading, the windows by key, so every reading crosses the
// repartition topic, between the members or within one, and a window's
// watermark is the minimum over the tasks that send to it.

const (
	gtTasks    = 4   // partitions of the input topic, so tasks of the job
	gtKeys     = 6   // keys of the readings
	gtWindowMs = 100 // event-time size of a tumbling window, and of a chunk
	gtChunks   = 8   // chunks of each partition
	gtPerChunk = 12  // readings of a partition in a chunk
	// gtLead is how many chunks of event time the leading partition runs
	// ahead of the others: a task whose watermark were the maximum over
	// its senders, not the minimum, would close the windows of the
	// others' next readings (the leader's watermark, less the strategy's
	// bound of one chunk, is past their end) and take those as late.
	gtLead    = 3
	gtLeader  = gtTasks - 1
	gtBase    = 1_700_000_000_000 // ms: the event time of chunk 0
	gtInput   = "readings"
	gtSession = 10 * time.Second // of members not killed: no rebalance on a loaded machine
	// gtKilledSession is the session of the member the test kills: its
	// tasks move once it passes.
	gtKilledSession = 1500 * time.Millisecond
	gtGuard         = 2 * time.Minute // a guard against hanging, not a synchronization
)

// reading is a record of the job: a value of a key at an event time, read
// from an input partition.
type reading struct {
	Key  string
	TS   int64
	Val  int64
	Part int
}

// windowAcc is a window's aggregate: how many readings, their sum, and the
// input partitions they came from (bit p for partition p).
type windowAcc struct{ N, Sum, Parts int64 }

func windowLine(key string, start int64, a windowAcc) string {
	return fmt.Sprintf("%s %d n=%d sum=%d parts=%04b", key, start-gtBase, a.N, a.Sum, a.Parts)
}

// gtInputData is the seeded input: chunks[p][c] are the readings of
// partition p in chunk c, of event times in chunk c's window (in random
// order within it: less disorder than the watermark strategy allows).
type gtInputData struct{ chunks [gtTasks][gtChunks][]reading }

func newInput(seed uint64) *gtInputData {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	in := &gtInputData{}
	for p := range gtTasks {
		for c := range gtChunks {
			for range gtPerChunk {
				in.chunks[p][c] = append(in.chunks[p][c], reading{
					Key:  fmt.Sprintf("k%d", rng.IntN(gtKeys)),
					TS:   gtBase + int64(c*gtWindowMs+rng.IntN(gtWindowMs)),
					Val:  rng.Int64N(1000),
					Part: p,
				})
			}
		}
	}
	return in
}

// chunkAt returns the chunk partition p gets at step s of the producer, or
// -1: the leader runs gtLead chunks ahead of the others.
func chunkAt(p, s int) int {
	c := s
	if p != gtLeader {
		c -= gtLead
	}
	if c < 0 || c >= gtChunks {
		return -1
	}
	return c
}

const gtSteps = gtChunks + gtLead

// oracle returns the window lines the job must commit, computed in plain
// Go, and the start of each.
func (in *gtInputData) oracle() (lines []string, starts map[string]int64) {
	type wk struct {
		key   string
		start int64
	}
	accs := map[wk]windowAcc{}
	for p := range gtTasks {
		for c := range gtChunks {
			for _, r := range in.chunks[p][c] {
				k := wk{r.Key, r.TS - (r.TS-gtBase)%gtWindowMs}
				a := accs[k]
				a.N, a.Sum, a.Parts = a.N+1, a.Sum+r.Val, a.Parts|1<<r.Part
				accs[k] = a
			}
		}
	}
	starts = map[string]int64{}
	for k, a := range accs {
		l := windowLine(k.key, k.start, a)
		lines = append(lines, l)
		starts[l] = k.start - gtBase
	}
	slices.Sort(lines)
	return lines, starts
}

// encodeReading and decodeReading are the input's format: "key ts val";
// the sentinel that ends a partition's event time has no key.
func encodeReading(r reading) []byte { return fmt.Appendf(nil, "%s %d %d", r.Key, r.TS, r.Val) }

func decodeReading(r Record) (reading, error) {
	f := strings.Split(string(r.Value), " ")
	if len(f) != 3 {
		return reading{}, fmt.Errorf("reading %q: want key, ts and val", r.Value)
	}
	ts, err1 := strconv.ParseInt(f[1], 10, 64)
	val, err2 := strconv.ParseInt(f[2], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return reading{}, fmt.Errorf("reading %q: %w", r.Value, err)
	}
	return reading{Key: f[0], TS: ts, Val: val, Part: int(r.Partition)}, nil
}

// progress counts what the job's members did, and wakes the test.
type progress struct {
	mu      sync.Mutex
	read    int // input records decoded by the tasks, replays included
	changed chan struct{}
}

func newProgress() *progress { return &progress{changed: make(chan struct{})} }

func (p *progress) update(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f()
	close(p.changed)
	p.changed = make(chan struct{})
}

// await waits, on p's signals, until cond holds (under p.mu), failing the
// test after gtGuard or when cond returns an error.
func (p *progress) await(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	guard := time.NewTimer(gtGuard)
	defer guard.Stop()
	for {
		p.mu.Lock()
		ok, err := cond()
		changed := p.changed
		p.mu.Unlock()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-changed:
		case <-guard.C:
			t.Fatalf("still waiting for %s after %v", what, gtGuard)
		}
	}
}

// groupWindowJob builds the job: readings from the input topic (task i
// reads partition i), their event times bounded out of order by a
// window, the sentinels dropped, windows per key, the results and any
// late reading written to topic out, exactly once.
func groupWindowJob(t *testing.T, c *kfake.Cluster, prog *progress) *runtime.Pipeline {
	t.Helper()
	src, err := NewSource(SourceConfig[reading]{
		Brokers: c.ListenAddrs(), Topics: []string{gtInput},
		Deserializer: func(r Record) (reading, error) {
			prog.update(func() { prog.read++ })
			return decodeReading(r)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sink, err := NewSink(SinkConfig[string]{
		Brokers: c.ListenAddrs(), Topic: topic, TransactionalIDPrefix: "windows", Logger: quiet,
		TransactionTimeout: time.Minute, ExpectedRestartTime: time.Second,
		EncodeValue: func(dst []byte, s string) ([]byte, error) { return append(dst, s...), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	p := runtime.NewPipeline("group-windows")
	in := runtime.From(p, "readings", src,
		runtime.WithWatermarks(runtime.BoundedOutOfOrderness(func(r reading) int64 { return r.TS }, gtWindowMs*time.Millisecond)))
	readings := operators.Filter(in, func(r reading) bool { return r.Key != "" })
	windows, late := operators.WindowAggregate(
		operators.Window(operators.KeyBy(readings, func(r reading) string { return r.Key }), "per-key", operators.Tumbling(gtWindowMs*time.Millisecond)),
		operators.WindowAggregateFunc[string, reading, windowAcc, string]{
			Add: func(a windowAcc, r reading, _ bool) windowAcc {
				return windowAcc{a.N + 1, a.Sum + r.Val, a.Parts | 1<<r.Part}
			},
			Result: func(k string, w operators.TimeWindow, a windowAcc) string { return windowLine(k, w.Start, a) },
		}, state.JSON[windowAcc]())
	lateLines := operators.Map(late, func(r reading) string { return fmt.Sprintf("late %s %d from partition %d", r.Key, r.TS-gtBase, r.Part) })
	runtime.To(runtime.Merge(windows, "results", lateLines), "out", sink)
	return p
}

// gtBroker starts the broker of these tests: the input topic, one task per
// partition, and the output topic.
func gtBroker(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(gtTasks, gtInput), kfake.SeedTopics(partitions, topic),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// gtProducer writes the input, partition by partition.
type gtProducer struct {
	cl   *kgo.Client
	sent int
}

func newProducer(t *testing.T, c *kfake.Cluster) *gtProducer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &gtProducer{cl: cl}
}

func (p *gtProducer) produce(t *testing.T, rs []reading) {
	t.Helper()
	recs := make([]*kgo.Record, len(rs))
	for i, r := range rs {
		recs[i] = &kgo.Record{Topic: gtInput, Partition: int32(r.Part), Value: encodeReading(r), Timestamp: time.UnixMilli(r.TS)}
	}
	if err := p.cl.ProduceSync(testCtx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p.sent += len(rs)
}

// outputWatch reads topic out read_committed while the job runs: what it
// holds, and signals on prog at each fetch.
type outputWatch struct {
	prog  *progress
	lines map[string]int // under prog.mu
}

func watchOutput(t *testing.T, c *kfake.Cluster, prog *progress) *outputWatch {
	t.Helper()
	w := &outputWatch{prog: prog, lines: map[string]int{}}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			prog.update(func() {
				fs.EachRecord(func(r *kgo.Record) { w.lines[string(r.Value)]++ })
			})
		}
	}()
	return w
}

// firedUpTo returns the condition "every window of want that starts at or
// before end (ms after gtBase) is in the output". A line committed that
// want does not have, or twice, fails the test at once.
func (w *outputWatch) firedUpTo(want []string, starts map[string]int64, end int64) func() (bool, error) {
	return func() (bool, error) {
		for l, n := range w.lines {
			if _, ok := starts[l]; !ok || n > 1 {
				return false, fmt.Errorf("the group committed %q %d times; the oracle's line of that window: %q", l, n, sameWindow(want, l))
			}
		}
		for _, l := range want {
			if starts[l] <= end && w.lines[l] == 0 {
				return false, nil
			}
		}
		return true, nil
	}
}

// gtMember is one member of the group, a runtime.Run of its own.
type gtMember struct {
	name    string
	stop    chan struct{}
	cancel  context.CancelCauseFunc
	done    chan error
	started []runtime.StartInfo // under the progress's mu
}

// memberCluster is a member's Cluster: kafka's, with its callbacks
// recorded on a board and its exchange sinks' pre-commits observed.
type memberCluster struct {
	runtime.Cluster
	member string
	b      *board
	// preCommitted, if set, runs after each successful pre-commit of an
	// exchange sink of the member that wrote records of records; an error
	// fails the pre-commit.
	preCommitted func(records int) error
}

func (c *memberCluster) Join(ctx context.Context, req runtime.JoinRequest) (runtime.Membership, error) {
	assigned, revoked, lost := req.Assigned, req.Revoked, req.Lost
	req.Assigned = func(ctx context.Context, tasks []int) { assigned(ctx, tasks); c.b.record(c.member, "assigned", tasks) }
	req.Revoked = func(ctx context.Context, tasks []int) { revoked(ctx, tasks); c.b.record(c.member, "revoked", tasks) }
	req.Lost = func(ctx context.Context, tasks []int) { lost(ctx, tasks); c.b.record(c.member, "lost", tasks) }
	return c.Cluster.Join(ctx, req)
}

func (c *memberCluster) Exchange(ctx context.Context, name string, tasks int) (runtime.SinkFactory[runtime.ExchangeRecord], runtime.SourceFactory[runtime.ExchangeRecord], error) {
	newSink, newSource, err := c.Cluster.Exchange(ctx, name, tasks)
	if err != nil || c.preCommitted == nil {
		return newSink, newSource, err
	}
	return func() (runtime.Sink[runtime.ExchangeRecord], error) {
		s, err := newSink()
		return &observedSink{Sink: s, preCommitted: c.preCommitted}, err
	}, newSource, nil
}

// observedSink is an exchange sink whose pre-commits a test observes.
// NB: the runtime does not see through it to the Kafka sink's optional
// interfaces (its promise checks, its transaction reports): the test's
// checkpoints complete long before any transaction timeout.
type observedSink struct {
	runtime.Sink[runtime.ExchangeRecord]
	preCommitted func(records int) error
	records      int // written since the last pre-commit
}

func (s *observedSink) Write(ctx context.Context, r runtime.ExchangeRecord) error {
	if r.Marker == runtime.NoMarker {
		s.records++
	}
	return s.Sink.Write(ctx, r)
}

func (s *observedSink) PreCommit(ctx context.Context, id uint64) ([]byte, error) {
	st, err := s.Sink.PreCommit(ctx, id)
	n := s.records
	s.records = 0
	if err == nil {
		err = s.preCommitted(n)
	}
	return st, err
}

// gtRun is a run of the job: its broker, input, progress, board (the
// members' callbacks), output and checkpoint directory.
type gtRun struct {
	c    *kfake.Cluster
	in   *gtInputData
	prog *progress
	b    *board
	out  *outputWatch
	p    *runtime.Pipeline
	dir  string
}

func newRun(t *testing.T) *gtRun {
	t.Helper()
	r := &gtRun{c: gtBroker(t), in: newInput(testseed.Seed(t)), prog: newProgress(), b: newBoard(), dir: t.TempDir()}
	r.out = watchOutput(t, r.c, r.prog)
	r.p = groupWindowJob(t, r.c, r.prog)
	return r
}

// start runs a member of group "g" of the job.
func (r *gtRun) start(t *testing.T, name, instanceID string, session time.Duration, events runtime.EventListener, preCommitted func(int) error) *gtMember {
	t.Helper()
	c, b, prog := r.c, r.b, r.prog
	kc, err := NewCluster(ClusterConfig{Brokers: c.ListenAddrs(), Topics: []string{gtInput}, RebalanceTimeout: gtGuard})
	if err != nil {
		t.Fatal(err)
	}
	m := &gtMember{name: name, stop: make(chan struct{}), done: make(chan error, 1)}
	ctx, cancel := context.WithCancelCause(context.Background())
	m.cancel = cancel
	started := events.Started
	events.Started = func(info runtime.StartInfo) {
		prog.update(func() { m.started = append(m.started, info) })
		if started != nil {
			started(info)
		}
	}
	cfg := runtime.Config{
		CheckpointDir: r.dir, CheckpointInterval: 30 * time.Millisecond, Logger: gtLogger(name), Events: events, Stop: m.stop,
		Group: "g", InstanceID: instanceID, GroupSessionTimeout: session,
		Cluster: &memberCluster{Cluster: kc, member: name, b: b, preCommitted: preCommitted},
	}
	go func() { m.done <- runtime.Run(ctx, r.p, cfg) }()
	t.Cleanup(func() {
		cancel(errors.New("test over"))
		<-m.done
	})
	return m
}

// stopMember stops m with final checkpoints and waits for its end.
func stopMember(t *testing.T, m *gtMember) {
	t.Helper()
	close(m.stop)
	select {
	case err := <-m.done:
		m.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("member %s: %v", m.name, err)
		}
	case <-time.After(gtGuard):
		t.Fatalf("member %s did not stop within %v", m.name, gtGuard)
	}
}

// splitOf is the condition "every task is owned, each member in
// perMember owning that many" (under b.mu).
func (b *board) splitOf(tasks int, perMember map[string]int) func() bool {
	return func() bool {
		count := map[string]int{}
		for _, o := range b.owner {
			count[o]++
		}
		if len(b.owner) != tasks || len(count) != len(perMember) {
			return false
		}
		for m, n := range perMember {
			if count[m] != n {
				return false
			}
		}
		return true
	}
}

// runInput produces the input step by step, each after the tasks have
// read the previous one and the windows that its watermarks close have
// been committed, so that windows fire while the input runs, not only
// at its end; before step s it calls before(s). Then it ends every
// partition's event time with a sentinel and waits for every window.
func (r *gtRun) runInput(t *testing.T, before func(s int)) (want []string) {
	t.Helper()
	in, prog, out, prod := r.in, r.prog, r.out, newProducer(t, r.c)
	want, starts := in.oracle()
	for s := range gtSteps {
		if before != nil {
			before(s)
		}
		var rs []reading
		for p := range gtTasks {
			if c := chunkAt(p, s); c >= 0 {
				rs = append(rs, in.chunks[p][c]...)
			}
		}
		prod.produce(t, rs)
		prog.await(t, fmt.Sprintf("the tasks to read the %d records of steps 0-%d", prod.sent, s), func() (bool, error) { return prog.read >= prod.sent, nil })
		// The laggards' watermark after step s is at the end of chunk
		// s-gtLead, less the strategy's bound: windows two chunks back are
		// closed everywhere.
		if closed := s - gtLead - 2; closed >= 0 {
			prog.await(t, fmt.Sprintf("the windows of chunks 0-%d to be committed after step %d", closed, s),
				out.firedUpTo(want, starts, int64(closed*gtWindowMs)))
		}
	}
	var sentinels []reading
	for p := range gtTasks {
		sentinels = append(sentinels, reading{TS: gtBase + int64((gtChunks+3)*gtWindowMs), Part: p})
	}
	prod.produce(t, sentinels)
	prog.await(t, fmt.Sprintf("all %d windows to be committed", len(want)), out.firedUpTo(want, starts, gtChunks*gtWindowMs))
	return want
}

// checkOutput reads everything committed to the output and compares it,
// as a multiset, with want.
func checkOutput(t *testing.T, c *kfake.Cluster, want []string) []string {
	t.Helper()
	var got []string
	for _, r := range readTopic(t, c, topic, true) {
		got = append(got, r.Value)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("the group committed %d lines, the oracle wants %d windows:\nextra (lines twice, wrong aggregates, late readings): %q\nmissing: %q",
			len(got), len(want), multisetDiff(got, want), multisetDiff(want, got))
	}
	return got
}

// sameWindow returns the lines of want of the key and window of line.
func sameWindow(want []string, line string) []string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return nil
	}
	var out []string
	for _, l := range want {
		if strings.HasPrefix(l, f[0]+" "+f[1]+" ") {
			out = append(out, l)
		}
	}
	return out
}

// multisetDiff returns what a has beyond b, as multisets.
func multisetDiff(a, b []string) []string {
	left := map[string]int{}
	for _, s := range b {
		left[s]++
	}
	var out []string
	for _, s := range a {
		if left[s] > 0 {
			left[s]--
		} else {
			out = append(out, s)
		}
	}
	return out
}

// partsOf returns the partition bits of a window line.
func partsOf(t *testing.T, line string) int64 {
	t.Helper()
	_, bin, _ := strings.Cut(line, "parts=")
	parts, err := strconv.ParseInt(bin, 2, 64)
	if err != nil {
		t.Fatalf("window line %q: %v", line, err)
	}
	return parts
}

// TestGroupEventTimeWindowsExactlyOnce runs the windowed job as a group of
// two members over Kafka: the members split the four tasks, the readings
// cross the repartition topic to the task of their key, and the watermark
// of a window's task is the minimum over the four senders, two of them in
// the other member, one running ahead of the others in event time. Every
// window must be committed exactly once with the oracle's aggregate, none
// of them late, windows must fire as the input runs (the test waits for
// them step by step), and windows must hold readings of both members.
func TestGroupEventTimeWindowsExactlyOnce(t *testing.T) {
	r := newRun(t)
	b := r.b
	a := r.start(t, "a", "", gtSession, runtime.EventListener{}, nil)
	b.waitFor(t, "a owns all tasks", gtGuard, b.splitOf(gtTasks, map[string]int{"a": gtTasks}))
	bm := r.start(t, "b", "", gtSession, runtime.EventListener{}, nil)
	b.waitFor(t, "the tasks split 2 and 2", gtGuard, b.splitOf(gtTasks, map[string]int{"a": 2, "b": 2}))
	b.mu.Lock()
	split := len(b.events)
	var aParts, bParts int64
	for task, o := range b.owner {
		if o == "a" {
			aParts |= 1 << task
		} else {
			bParts |= 1 << task
		}
	}
	b.mu.Unlock()

	want := r.runInput(t, nil)
	b.mu.Lock()
	moved := slices.Clone(b.events[split:])
	b.mu.Unlock()
	stopMember(t, a)
	stopMember(t, bm)
	if len(moved) > 0 {
		t.Fatalf("tasks moved while the input ran (%q): the test cannot tell which member read which partition", moved)
	}
	got := checkOutput(t, r.c, want)
	both := 0
	for _, l := range got {
		if parts := partsOf(t, l); parts&aParts != 0 && parts&bParts != 0 {
			both++
		}
	}
	if both == 0 {
		t.Fatalf("no window holds readings of both members (a read partitions %04b, b %04b): %q", aParts, bParts, got)
	}
	t.Logf("%d windows, %d of them of readings from both members", len(got), both)
}

var errMemberKilled = errors.New("member killed by the test")

// TestGroupEventTimeKilledMemberExactlyOnce is the job of
// TestGroupEventTimeWindowsExactlyOnce with one member killed mid-run: it
// stops at once, without a checkpoint and without leaving the group (a
// static member, as after SIGKILL), just after an exchange sink of it
// pre-committed readings and their watermark markers in a transaction its
// checkpoint will never complete. Once its session passes, the other
// member takes its tasks and restores them from their last complete
// checkpoints (the new owners fence the killed transactions); then the
// killed member comes back and gets tasks again, which move with final
// checkpoints. Every window must still be committed exactly once, with
// the oracle's aggregate and none late.
func TestGroupEventTimeKilledMemberExactlyOnce(t *testing.T) {
	r := newRun(t)
	b, prog := r.b, r.prog
	var checkpointed, armed, killed atomic.Bool
	var victim *gtMember
	victimReady := make(chan struct{})
	kill := func(records int) error {
		<-victimReady
		if records == 0 || !armed.Load() || !checkpointed.Load() || !killed.CompareAndSwap(false, true) {
			return nil
		}
		victim.cancel(errMemberKilled)
		b.mu.Lock()
		tasks := b.ownedBy("victim")
		b.mu.Unlock()
		b.record("victim", "lost", tasks) // the test's record: the killed member is told nothing
		prog.update(func() {})
		return errMemberKilled
	}
	survivor := r.start(t, "survivor", "", gtSession, runtime.EventListener{}, nil)
	b.waitFor(t, "the survivor owns all tasks", gtGuard, b.splitOf(gtTasks, map[string]int{"survivor": gtTasks}))
	victim = r.start(t, "victim", "victim", gtKilledSession,
		runtime.EventListener{CheckpointCompleted: func(runtime.CheckpointInfo) { checkpointed.Store(true) }}, kill)
	close(victimReady)
	b.waitFor(t, "the tasks split 2 and 2", gtGuard, b.splitOf(gtTasks, map[string]int{"survivor": 2, "victim": 2}))

	// The kill is armed once windows have fired (step gtLead+2 waited for
	// them, which takes every sender's checkpoints), so the victim has
	// checkpoints of its own with state, and lands with the readings of
	// the next step, each partition's.
	const armAt = gtLead + 3
	var back *gtMember
	want := r.runInput(t, func(s int) {
		switch s {
		case armAt:
			armed.Store(true)
		case armAt + 1:
			prog.await(t, "the victim to be killed after it pre-committed readings", func() (bool, error) { return killed.Load(), nil })
			select {
			case err := <-victim.done:
				victim.done <- err
				if !errors.Is(err, errMemberKilled) {
					t.Fatalf("the killed member ended with %v", err)
				}
			case <-time.After(gtGuard):
				t.Fatal("the killed member did not end")
			}
			b.waitFor(t, "the survivor owns all tasks after the victim's session", gtGuard,
				b.splitOf(gtTasks, map[string]int{"survivor": gtTasks}))
			prog.mu.Lock()
			restored := 0
			for _, info := range survivor.started {
				if info.RestoredFrom > 0 {
					restored++
				}
			}
			prog.mu.Unlock()
			if restored == 0 {
				t.Fatal("the survivor took the killed member's tasks without restoring a checkpoint of them")
			}
			back = r.start(t, "back", "victim", gtSession, runtime.EventListener{}, nil)
			b.waitFor(t, "the tasks split 2 and 2 again", gtGuard, b.splitOf(gtTasks, map[string]int{"survivor": 2, "back": 2}))
		}
	})
	stopMember(t, survivor)
	stopMember(t, back)
	got := checkOutput(t, r.c, want)
	t.Logf("%d windows; the killed member's restarted tasks restored checkpoints", len(got))
}

// gtLogger is the logger of member name: silent, unless
// WEIR_TEST_GROUP_LOG is set (to see a failure's rebalances and
// restores).
func gtLogger(name string) *slog.Logger {
	if os.Getenv("WEIR_TEST_GROUP_LOG") == "" {
		return quiet
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("member", name)
}
