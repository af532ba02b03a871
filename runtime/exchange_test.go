package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/internal/clustertest"
	"github.com/weirstream/weir/internal/engine"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// count is the record of the word count: a struct, so that it crosses
// the exchange in JSON, the default codec.
type count struct {
	Word string
	N    int
}

// pacing is how wordCount's generators emit their records.
type pacing struct {
	rate float64 // records per second of each generator (0: no limit)
	// held holds each generator subtask after every Read until a
	// checkpoint completes (heldSource).
	held bool
}

// wordCount builds the keyed pipeline of these tests: words from two
// generators, merged (a task with a gate), counted per word by a keyed
// Reduce that emits every new count, as "word=n" lines to sink.
func wordCount(t *testing.T, records uint64, pace pacing, sink runtime.SinkFactory[string]) *runtime.Pipeline {
	t.Helper()
	p := runtime.NewPipeline("wordcount")
	var inputs []runtime.Stream[count]
	for half := range uint64(2) {
		gen, err := generator.NewSource(generator.SourceConfig[count]{
			Record:        func(seq uint64) count { return count{Word: fmt.Sprintf("w%d", (2*seq+half)*7919%37), N: 1} },
			Count:         records / 2,
			RatePerSecond: pace.rate,
			ChunkSize:     64,
		})
		if err != nil {
			t.Fatal(err)
		}
		if pace.held {
			gen = heldEachRead(gen)
		}
		inputs = append(inputs, runtime.From(p, fmt.Sprintf("words-%d", half), gen))
	}
	words := runtime.Merge(inputs[0], "words", inputs[1])
	counts := operators.Reduce(operators.KeyBy(words, func(c count) string { return c.Word }), "count",
		func(acc, c count) count { return count{Word: acc.Word, N: acc.N + c.N} }, state.JSON[count]())
	runtime.To(operators.Map(counts, func(c count) string { return fmt.Sprintf("%s=%d", c.Word, c.N) }), "out", sink)
	return p
}

// heldEachRead returns f's sources, each held after every Read until a
// checkpoint completes: the input spans as many checkpoints as it has
// chunks, so a task reads records after its first checkpoint whatever the
// speed of the machine. (A rate limit did not: on a starved machine the
// first checkpoint took seconds, and a task had read all its input before
// it.)
func heldEachRead[T any](f runtime.SourceFactory[T]) runtime.SourceFactory[T] {
	return func() (runtime.Source[T], error) {
		src, err := f()
		if err != nil {
			return nil, err
		}
		return &heldSource[T]{Source: src}, nil
	}
}

type heldSource[T any] struct {
	runtime.Source[T]
	held bool // a Read was done and no checkpoint has completed since
}

func (s *heldSource[T]) Read(ctx context.Context, out runtime.Collector[T]) error {
	if s.held {
		// Read returns to let the task take the checkpoint it waits for.
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
		return nil
	}
	s.held = true
	return s.Source.Read(ctx, out)
}

func (s *heldSource[T]) CheckpointComplete(ctx context.Context, id uint64) error {
	s.held = false
	if l, ok := s.Source.(runtime.CheckpointListener); ok {
		return l.CheckpointComplete(ctx, id)
	}
	return nil
}

// runNormally runs p in one process at parallelism tasks and returns what
// it committed.
func runNormally(t *testing.T, records uint64, tasks int) []string {
	t.Helper()
	var out clustertest.Output[string]
	p := wordCount(t, records, pacing{}, out.Sink())
	cfg := runtime.Config{CheckpointDir: t.TempDir(), CheckpointInterval: 10 * time.Millisecond, Parallelism: tasks}
	if err := runtime.Run(t.Context(), p, cfg); err != nil {
		t.Fatal(err)
	}
	return sorted(out.Records())
}

func sorted(lines []string) []string {
	slices.Sort(lines)
	return lines
}

// groupConfig is the Config of the tasks of a group job on cl.
func groupConfig(cl runtime.Cluster) runtime.Config {
	return runtime.Config{CheckpointDir: "unused: each task has its own", CheckpointInterval: 10 * time.Millisecond,
		Group: "wc", Cluster: cl}
}

// startTask runs task i of tasks in the background; the returned channel
// gets runTask's error.
func startTask(ctx context.Context, p *runtime.Pipeline, cfg runtime.Config, dir string, i, tasks int, started func(engine.StartInfo)) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- runtime.RunTask(ctx, p, cfg, runtime.TaskRun{Index: i, Tasks: tasks,
			CheckpointDir: filepath.Join(dir, fmt.Sprintf("task-%d", i)), Started: started})
	}()
	return done
}

func compare(t *testing.T, got, want []string, records uint64) {
	t.Helper()
	if uint64(len(want)) != records {
		t.Fatalf("the job in one process committed %d records, want %d", len(want), records)
	}
	if !slices.Equal(got, want) {
		extra, missing := diff(got, want), diff(want, got)
		t.Fatalf("the tasks committed %d records, the job in one process %d: %d extra (first: %v), %d missing (first: %v)",
			len(got), len(want), len(extra), first(extra), len(missing), first(missing))
	}
}

// diff returns what a has beyond b, as multisets; both are sorted.
func diff(a, b []string) []string {
	var out []string
	for i, j := 0, 0; i < len(a); {
		switch {
		case j < len(b) && a[i] == b[j]:
			i, j = i+1, j+1
		case j < len(b) && b[j] < a[i]:
			j++
		default:
			out = append(out, a[i])
			i++
		}
	}
	return out
}

func first(s []string) []string { return s[:min(len(s), 5)] }

// Three tasks of a keyed job, each its own engine job in task mode,
// exchanging records through the in-memory cluster, commit exactly what
// the job commits in one process at parallelism 3.
func TestTasksMatchOneProcess(t *testing.T) {
	const records, tasks = 3000, 3
	want := runNormally(t, records, tasks)

	var out clustertest.Output[string]
	p := wordCount(t, records, pacing{}, out.Sink())
	if err := runGroup(t, p, tasks, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	compare(t, sorted(out.Records()), want, records)
}

var errKilled = errors.New("killed by the test")

// A task killed between the pre-commit of its exchange writes and the
// checkpoint they belong to, then restarted from its last complete
// checkpoint, replays its input from there: the exchange must have
// dropped what it staged after that checkpoint, or the keyed operator
// counts those records twice.
func TestKilledTaskResumesExactly(t *testing.T) {
	const records, tasks, victim = 3000, 3, 1
	want := runNormally(t, records, tasks)

	var out clustertest.Output[string]
	// The generators are held until a checkpoint completes, so that the
	// victim still writes to the exchange after its first checkpoint.
	p := wordCount(t, records, pacing{held: true}, out.Sink())
	runWithKilledTask(t, p, tasks, victim)
	compare(t, sorted(out.Records()), want, records)
}

// runGroup runs every task of a job of tasks tasks of p in dir, on a
// cluster of its own, and returns their errors joined. The first task to
// fail cancels the others, which would wait for its exchange writes.
func runGroup(t *testing.T, p *runtime.Pipeline, tasks int, dir string) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cl := clustertest.New(tasks)
	errs := make(chan error, tasks)
	for i := range tasks {
		done := startTask(ctx, p, groupConfig(cl), dir, i, tasks, nil)
		go func() {
			err := <-done
			if err != nil {
				err = fmt.Errorf("task %d: %w", i, err)
				cancel()
			}
			errs <- err
		}()
	}
	var all []error
	for range tasks {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// secret has a field JSON would drop.
type secret struct {
	Word string
	n    int
}

// A record type JSON would not carry whole refuses to start, naming the
// KeyBy and the type; WithCodec gives it a codec.
func TestRecordCodecGuard(t *testing.T) {
	build := func(withCodec bool) *runtime.Pipeline {
		gen, err := generator.NewSource(generator.SourceConfig[secret]{Record: func(seq uint64) secret { return secret{Word: "w", n: int(seq)} }, Count: 10})
		if err != nil {
			t.Fatal(err)
		}
		p := runtime.NewPipeline("guard")
		s := runtime.From(p, "src", gen)
		if withCodec {
			s = runtime.WithCodec(s, state.Codec[secret](secretCodec{}))
		}
		n := operators.Reduce(operators.KeyBy(s, func(v secret) string { return v.Word }), "sum",
			func(acc, v secret) secret { return secret{Word: acc.Word, n: acc.n + v.n} }, secretCodec{})
		runtime.To(operators.Map(n, func(v secret) int { return v.n }), "out", (&clustertest.Output[int]{}).Sink())
		return p
	}
	err := runGroup(t, build(false), 2, t.TempDir())
	for _, want := range []string{`KeyBy after "src" (into "sum")`, "runtime_test.secret", "unexported field runtime_test.secret.n", "runtime.WithCodec"} {
		if !errors.Is(err, runtime.ErrInvalidPipeline) || err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want ErrInvalidPipeline with %q", err, want)
		}
	}
	if err := runGroup(t, build(true), 2, t.TempDir()); err != nil {
		t.Fatalf("with WithCodec: %v", err)
	}
}

// secretCodec encodes a secret whole.
type secretCodec struct{}

func (secretCodec) Append(dst []byte, v secret) []byte {
	return fmt.Appendf(dst, "%d %s", v.n, v.Word)
}

func (secretCodec) Decode(src []byte) (secret, error) {
	var v secret
	_, err := fmt.Sscanf(string(src), "%d %s", &v.n, &v.Word)
	return v, err
}

// The refusals of a group job at start: an operator with a parallelism of
// its own, no Cluster, a node name the
// exchange needs, more tasks than key groups.
func TestTaskRefusals(t *testing.T) {
	gen := func(t *testing.T) runtime.SourceFactory[count] {
		g, err := generator.NewSource(generator.SourceConfig[count]{Record: func(uint64) count { return count{} }, Count: 10})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	keyed := func(s runtime.Stream[count], name string) runtime.Stream[count] {
		return operators.Reduce(operators.KeyBy(s, func(c count) string { return c.Word }), name,
			func(acc, c count) count { return acc }, state.JSON[count]())
	}
	sink := (&clustertest.Output[count]{}).Sink()
	for _, tc := range []struct {
		name  string
		build func(p *runtime.Pipeline)
		cfg   func(*runtime.Config)
		want  string
	}{
		{"parallelism", func(p *runtime.Pipeline) {
			runtime.To(keyed(runtime.From(p, "src", gen(t)).SetParallelism(1), "k"), "out", sink)
		}, nil, `operator "src" has parallelism 1, the job 2 tasks: in a job spread over processes (--group) every operator runs one subtask per task; remove its SetParallelism`},
		{"name taken", func(p *runtime.Pipeline) {
			s := operators.Map(runtime.From(p, "src", gen(t)), func(c count) count { return c })
			s = runtime.Apply(s, "k.exchange.send", func() runtime.Operator[count, count] { return passOp{} })
			runtime.To(keyed(s, "k"), "out", sink)
		}, nil, `needs an operator called "k.exchange.send", which is taken`},
		{"no cluster", func(p *runtime.Pipeline) {
			runtime.To(keyed(runtime.From(p, "src", gen(t)), "k"), "out", sink)
		}, func(c *runtime.Config) { c.Cluster = nil }, "needs Config.Cluster"},
		{"tasks", func(p *runtime.Pipeline) {
			runtime.To(keyed(runtime.From(p, "src", gen(t)), "k"), "out", sink)
		}, func(c *runtime.Config) { c.MaxParallelism = 1 }, "2 tasks (the partitions of the input topics) but --max-parallelism 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := runtime.NewPipeline("refuse")
			tc.build(p)
			cfg := groupConfig(clustertest.New(2))
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			err := <-startTask(t.Context(), p, cfg, t.TempDir(), 0, 2, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

type passOp struct{ runtime.OperatorBase }

func (passOp) Open(*runtime.OperatorContext, runtime.Collector[count]) error { return nil }
func (passOp) Process(count)                                                 {}

// A task restored with another task count is refused (rescaling a group
// job means changing the partition count of its inputs), and so is a
// task given another task's checkpoints, and a task of another group (its
// job has exchanges: the checkpoint's offsets are in the first group's
// repartition topics).
func TestTaskCountChangeRefused(t *testing.T) {
	var out clustertest.Output[string]
	p := wordCount(t, 100, pacing{}, out.Sink())
	dir := t.TempDir()
	if err := runGroup(t, p, 2, dir); err != nil {
		t.Fatal(err)
	}
	err := <-startTask(t.Context(), p, groupConfig(clustertest.New(3)), dir, 0, 3, nil)
	if !errors.Is(err, runtime.ErrIncompatibleCheckpoint) || !strings.Contains(err.Error(), "was taken with 2 tasks") ||
		!strings.Contains(err.Error(), "rescaling a job spread over processes (--group), that is changing the partition count of its input topics, is not supported yet") {
		t.Fatalf("err = %v, want the change of task count refused", err)
	}
	// Task 1 given task 0's checkpoints.
	err = runtime.RunTask(t.Context(), p, groupConfig(clustertest.New(2)), runtime.TaskRun{Index: 1, Tasks: 2, CheckpointDir: filepath.Join(dir, "task-0")})
	if !errors.Is(err, runtime.ErrIncompatibleCheckpoint) || !strings.Contains(err.Error(), "holds task 0") {
		t.Fatalf("err = %v, want another task's checkpoint refused", err)
	}
	blue := groupConfig(clustertest.New(2))
	blue.Group = "wc-blue"
	err = <-startTask(t.Context(), p, blue, dir, 0, 2, nil)
	if !errors.Is(err, runtime.ErrIncompatibleCheckpoint) ||
		!strings.Contains(err.Error(), `was taken by group "wc", not "wc-blue"`) || !strings.Contains(err.Error(), "run the members with --group wc,") {
		t.Fatalf("err = %v, want a checkpoint of another group refused", err)
	}
}

// A task serves the metrics of its own subtasks, labelled with the task's
// index, and stops with a final checkpoint when its Stop closes.
func TestTaskMetricsAndStop(t *testing.T) {
	const tasks, index = 2, 1
	var out clustertest.Output[string]
	p := wordCount(t, 0, pacing{rate: 2000}, out.Sink()) // unbounded
	cl := clustertest.New(tasks)
	dir, stop := t.TempDir(), make(chan struct{})
	checkpointed := make(chan struct{})
	var once sync.Once
	addr := make(chan string, 1)
	var done []<-chan error
	for i := range tasks {
		cfg, run := groupConfig(cl), runtime.TaskRun{Index: i, Tasks: tasks, Stop: stop,
			CheckpointDir: filepath.Join(dir, fmt.Sprintf("task-%d", i))}
		if i == index {
			run.MetricsAddr = "127.0.0.1:0"
			run.Started = func(info engine.StartInfo) { addr <- info.MetricsAddr }
			cfg.Events.CheckpointCompleted = func(runtime.CheckpointInfo) { once.Do(func() { close(checkpointed) }) }
		}
		d := make(chan error, 1)
		go func() { d <- runtime.RunTask(t.Context(), p, cfg, run) }()
		done = append(done, d)
	}
	metricsURL := "http://" + <-addr + "/metrics"
	<-checkpointed
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`weir_records_in_total{job="wordcount",operator="count",subtask="1"}`,
		`weir_records_out_total{job="wordcount",operator="count.exchange.receive",subtask="1"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics of task %d lack %s", index, want)
		}
	}
	if strings.Contains(string(body), `subtask="0"`) {
		t.Errorf("metrics of task %d have a subtask 0", index)
	}
	close(stop)
	for i, d := range done {
		if err := <-d; err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
	}
	if len(out.Records()) == 0 {
		t.Fatal("nothing committed")
	}
}

// runWithKilledTask runs p as tasks tasks over one in-memory cluster, kills
// task victim once it pre-commits records after its first completed
// checkpoint, restarts it, and waits for every task to end; the restarted
// victim must restore a checkpoint.
func runWithKilledTask(t *testing.T, p *runtime.Pipeline, tasks, victim int) {
	t.Helper()
	cl := clustertest.New(tasks)
	ctx, kill := context.WithCancelCause(t.Context())
	var checkpointed, killed atomic.Bool
	cl.PreCommitted = func(_ string, task int, id uint64, n int) error {
		if task != victim || n == 0 || !checkpointed.Load() || !killed.CompareAndSwap(false, true) {
			return nil
		}
		t.Logf("killing task %d after it pre-committed %d records (and markers) for checkpoint %d", task, n, id)
		kill(errKilled)
		return errKilled
	}
	dir := t.TempDir()
	var done []<-chan error
	for i := range tasks {
		cfg, taskCtx := groupConfig(cl), t.Context()
		if i == victim {
			cfg.Events.CheckpointCompleted = func(runtime.CheckpointInfo) { checkpointed.Store(true) }
			taskCtx = ctx
		}
		done = append(done, startTask(taskCtx, p, cfg, dir, i, tasks, nil))
	}
	if err := <-done[victim]; err == nil {
		t.Fatal("the victim ended without error")
	}
	if !killed.Load() {
		t.Fatal("the victim ended before it was killed: it wrote nothing after its first checkpoint")
	}
	var restored atomic.Uint64
	done[victim] = startTask(t.Context(), p, groupConfig(cl), dir, victim, tasks, func(info engine.StartInfo) { restored.Store(info.RestoredFrom) })
	for i, d := range done {
		if err := <-d; err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
	}
	if restored.Load() == 0 {
		t.Fatal("the restarted victim restored no checkpoint")
	}
}
