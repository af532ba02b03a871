package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/weirstream/weir/connectors/discard"
	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/internal/jobtest"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
)

// observedPipeline is gen → Map → KeyBy → count (keyed state) → sink, with
// an unbounded generator paced at rate records per second.
func observedPipeline(name string, rate float64, sink runtime.SinkFactory[string]) *runtime.Pipeline {
	p := runtime.NewPipeline(name)
	nums := runtime.From(p, "gen", must(generator.NewSource(generator.SourceConfig[uint64]{Record: func(seq uint64) uint64 { return seq }, RatePerSecond: rate, ChunkSize: 256})))
	keys := operators.Map(nums, func(v uint64) uint64 { return v % 1000 })
	counts := operators.Aggregate(operators.KeyBy(keys, func(v uint64) uint64 { return v }), "count",
		operators.AggregateFunc[uint64, uint64, int64, string]{
			Add:    func(acc int64, _ uint64, _ bool) int64 { return acc + 1 },
			Result: func(k uint64, acc int64) string { return fmt.Sprintf("%d\t%d", k, acc) },
		}, nil)
	runtime.To(counts, "sink", sink)
	return p
}

// startJob starts p and stops it at the end of the test.
func startJob(t *testing.T, p *runtime.Pipeline, cfg runtime.Config) *jobtest.Job {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	j, err := jobtest.Start(context.Background(), p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		j.Stop()
		if err := j.Wait(); err != nil {
			t.Errorf("job %s: %v", p.Name(), err)
		}
	})
	return j
}

// scrape fetches and parses /metrics.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// value returns the value of the series of family name whose labels include
// labels (name=value pairs), and whether there is one. Histograms give
// their sample count.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // polling an endpoint, not synchronization
	}
}

func TestMetricsEndpoint(t *testing.T) {
	dir := t.TempDir()
	name := "metrics-" + strings.ToLower(t.Name())
	cfg := runtime.Config{CheckpointDir: dir, CheckpointInterval: 50 * time.Millisecond, MetricsAddr: "127.0.0.1:0", BatchSize: 64, Parallelism: 2}
	var dropped discard.Counter
	j := startJob(t, observedPipeline(name, 50000, must(discard.NewSink(discard.SinkConfig[string]{Counter: &dropped}))), cfg)
	addr := j.MetricsAddr()
	if addr == "" {
		t.Fatal("MetricsAddr is empty: no metrics server")
	}

	var first map[string]*dto.MetricFamily
	// NB: a sink commits after the checkpoint counts as completed.
	eventually(t, 30*time.Second, "records counted and a checkpoint completed and committed", func() bool {
		first = scrape(t, addr)
		in, _ := value(first, "weir_records_in_total", "operator", "count")
		done, _ := value(first, "weir_checkpoints_total", "outcome", "completed")
		commits, _ := value(first, "weir_sink_commit_duration_seconds", "operator", "sink", "subtask", "0")
		return in > 0 && done >= 1 && commits >= 1
	})
	job := []string{"job", name}
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"weir_records_out_total", []string{"operator", "gen", "subtask", "0"}},
		{"weir_records_in_total", []string{"operator", "Map#1", "subtask", "0"}},
		{"weir_records_out_total", []string{"operator", "Map#1"}},
		{"weir_records_in_total", []string{"operator", "count"}},
		{"weir_records_out_total", []string{"operator", "count"}},
		{"weir_records_in_total", []string{"operator", "sink"}},
		{"weir_task_busy_seconds_total", []string{"operator", "gen"}},
		{"weir_checkpoint_duration_seconds", []string{"phase", "total"}},
		{"weir_checkpoint_duration_seconds", []string{"phase", "sync"}},
		{"weir_checkpoint_duration_seconds", []string{"phase", "alignment"}},
		{"weir_checkpoint_duration_seconds", []string{"phase", "async"}},
		{"weir_checkpoint_size_bytes", nil},
		{"weir_last_checkpoint_completed_timestamp_seconds", nil},
		{"weir_state_size_bytes", []string{"operator", "count"}},
		{"weir_sink_commit_duration_seconds", []string{"operator", "sink", "subtask", "0"}},
	} {
		v, ok := value(first, c.name, append(c.labels, job...)...)
		if !ok || v <= 0 {
			t.Errorf("%s%v = %v (present %v), want > 0", c.name, c.labels, v, ok)
		}
	}
	for _, c := range []string{"weir_task_backpressured_seconds_total", "weir_restarts_total", "weir_restored_checkpoint_id", "go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := value(first, c); !ok {
			t.Errorf("no %s", c)
		}
	}
	if v, _ := value(first, "weir_restored_checkpoint_id"); v != 0 {
		t.Errorf("weir_restored_checkpoint_id = %v on a fresh start", v)
	}
	if _, ok := value(first, "weir_records_in_total", "operator", "gen"); ok {
		t.Error("a source has weir_records_in_total")
	}

	// Later scrapes see more.
	in1, _ := value(first, "weir_records_in_total", "operator", "sink")
	cp1, _ := value(first, "weir_checkpoints_total", "outcome", "completed")
	busy1, _ := value(first, "weir_task_busy_seconds_total", "operator", "gen")
	eventually(t, 30*time.Second, "counters to grow", func() bool {
		later := scrape(t, addr)
		in2, _ := value(later, "weir_records_in_total", "operator", "sink")
		cp2, _ := value(later, "weir_checkpoints_total", "outcome", "completed")
		busy2, _ := value(later, "weir_task_busy_seconds_total", "operator", "gen")
		return in2 > in1 && cp2 > cp1 && busy2 > busy1
	})

	// The status carries the same numbers.
	st, err := j.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "running" || len(st.Operators) != 4 || len(st.Edges) != 3 || len(st.Checkpoints) == 0 {
		t.Fatalf("status: %+v", st)
	}
	if op := st.Operators[2]; op.Name != "count" || !op.Keyed || op.RecordsIn == 0 || op.StateBytes == 0 {
		t.Errorf("status of count: %+v", op)
	}
	if e := st.Edges[1]; e.From != "Map#1" || e.To != "count" || e.Partitioning != "hash" || e.Chained {
		t.Errorf("edge Map→count: %+v", e)
	}
	if c := st.Checkpoints[0]; c.Outcome != "completed" || c.Duration <= 0 {
		t.Errorf("newest checkpoint: %+v", c)
	}

	// After a restart, the job says it resumed.
	j.Stop()
	if err := j.Wait(); err != nil {
		t.Fatal(err)
	}
	j2 := startJob(t, observedPipeline(name, 50000, must(discard.NewSink(discard.SinkConfig[string]{Counter: &dropped}))), cfg)
	m := scrape(t, j2.MetricsAddr())
	if v, _ := value(m, "weir_restored_checkpoint_id"); v < 1 || uint64(v) != j2.RestoredFrom() {
		t.Errorf("weir_restored_checkpoint_id = %v, want %d", v, j2.RestoredFrom())
	}
	// A start from a checkpoint is not a restart after a failure, which
	// weir_restarts_total counts (TestRestartRecoversFromTransientFailures).
	if v, ok := value(m, "weir_restarts_total"); !ok || v != 0 {
		t.Errorf("weir_restarts_total = %v (present %v) after a new start, want 0", v, ok)
	}
}

// gatedSink is a two-phase sink whose Write or PreCommit can be held by
// the test.
type gatedSink struct {
	g *sinkGate
}

type sinkGate struct {
	mu              sync.Mutex
	write, precomit chan struct{} // nil: pass
}

func (g *sinkGate) hold(which *chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	*which = make(chan struct{})
}

func (g *sinkGate) release(which *chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if *which != nil {
		close(*which)
		*which = nil
	}
}

func (g *sinkGate) wait(ctx context.Context, which *chan struct{}) {
	g.mu.Lock()
	ch := *which
	g.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
}

func (s gatedSink) Open(context.Context, runtime.TaskInfo, []byte) error { return nil }
func (s gatedSink) Write(ctx context.Context, _ string) error {
	s.g.wait(ctx, &s.g.write)
	return nil
}
func (s gatedSink) PreCommit(ctx context.Context, _ uint64) ([]byte, error) {
	s.g.wait(ctx, &s.g.precomit)
	return nil, nil
}
func (s gatedSink) Commit(context.Context, uint64) error { return nil }
func (s gatedSink) Close() error                         { return nil }

func readyz(t *testing.T, addr string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("/readyz body: %v", err)
	}
	return resp.StatusCode, body
}

func TestReadyzFollowsCheckpoints(t *testing.T) {
	g := &sinkGate{}
	cfg := runtime.Config{
		CheckpointDir: t.TempDir(), MetricsAddr: "127.0.0.1:0",
		CheckpointInterval: 50 * time.Millisecond, CheckpointTimeout: 400 * time.Millisecond, ReadyCheckpointFactor: 4,
	}
	j := startJob(t, observedPipeline("readyz", 20000, func() (runtime.Sink[string], error) { return gatedSink{g}, nil }), cfg)
	defer g.release(&g.precomit) // before the cleanup stops the job
	addr := j.MetricsAddr()

	if code, body := readyz(t, addr); code != http.StatusOK && body["ready"] != true {
		// Just started: ready until the first interval multiple passes.
		t.Fatalf("/readyz at start: %d %v", code, body)
	}
	eventually(t, 30*time.Second, "a completed checkpoint", func() bool {
		v, _ := value(scrape(t, addr), "weir_checkpoints_total", "outcome", "completed")
		return v >= 1
	})

	g.hold(&g.precomit) // checkpoints stop completing
	var body map[string]any
	eventually(t, 30*time.Second, "/readyz to turn unready after a checkpoint timed out", func() bool {
		var code int
		code, body = readyz(t, addr)
		return code == http.StatusServiceUnavailable && strings.Contains(fmt.Sprint(body["reason"]), "aborted")
	})
	if body["ready"] != false || !strings.Contains(fmt.Sprint(body["reason"]), "no checkpoint completed") {
		t.Errorf("unready body: %v", body)
	}
	if v, _ := value(scrape(t, addr), "weir_checkpoints_total", "outcome", "aborted"); v < 1 {
		t.Errorf("weir_checkpoints_total{outcome=aborted} = %v", v)
	}
	if st, err := j.Status(); err != nil || st.Ready || len(st.Checkpoints) == 0 || st.Checkpoints[0].Outcome != "aborted" {
		t.Errorf("status (%v) while stalled: ready %v, checkpoints %+v", err, st.Ready, st.Checkpoints)
	}

	g.release(&g.precomit)
	eventually(t, 30*time.Second, "/readyz to be ready again", func() bool {
		code, body := readyz(t, addr)
		return code == http.StatusOK && body["ready"] == true
	})

	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %s", resp.Status)
	}
}

func TestBackpressureIsMeasured(t *testing.T) {
	g := &sinkGate{}
	g.hold(&g.write) // the sink takes nothing: the generator must wait
	defer g.release(&g.write)
	cfg := runtime.Config{CheckpointDir: t.TempDir(), MetricsAddr: "127.0.0.1:0", CheckpointInterval: time.Second, BatchSize: 16, Parallelism: 2}
	j := startJob(t, observedPipeline("backpressure", 0, func() (runtime.Sink[string], error) { return gatedSink{g}, nil }), cfg)
	eventually(t, 30*time.Second, "the generator to be backpressured for 100ms", func() bool {
		v, _ := value(scrape(t, j.MetricsAddr()), "weir_task_backpressured_seconds_total", "operator", "gen")
		return v > 0.1
	})
	m := scrape(t, j.MetricsAddr())
	if v, _ := value(m, "weir_task_backpressured_seconds_total", "operator", "count"); v != 0 {
		t.Errorf("count, which has no writer, is backpressured for %vs", v)
	}
}

func TestMetricsAddrInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	var dropped discard.Counter
	p := runtime.NewPipeline("inuse")
	runtime.To(runtime.From(p, "gen", must(generator.NewSource(generator.SourceConfig[string]{Record: func(seq uint64) string { return fmt.Sprint(seq) }, Count: 1000}))),
		"sink", must(discard.NewSink(discard.SinkConfig[string]{Counter: &dropped})))
	j, err := jobtest.Start(context.Background(), p, runtime.Config{CheckpointDir: t.TempDir(), MetricsAddr: ln.Addr().String(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Wait(); err != nil {
		t.Fatalf("the job did not run on without its endpoint: %v", err)
	}
	if j.MetricsAddr() != "" || dropped.Count() != 1000 {
		t.Errorf("MetricsAddr %q, %d records", j.MetricsAddr(), dropped.Count())
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "level=WARN msg=\"cannot serve metrics and status") || !strings.Contains(logs.String(), ln.Addr().String()) {
		t.Errorf("no warning naming the address in the log:\n%s", &logs)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func TestObservabilityFlags(t *testing.T) {
	for _, c := range []struct {
		args      []string
		addr      string
		factor    float64
		wantError string
	}{
		{nil, runtime.DefaultMetricsAddr, 3, ""},
		{[]string{"--metrics-addr="}, "", 3, ""},
		{[]string{"--metrics-addr", "127.0.0.1:0", "--ready-checkpoint-factor", "5"}, "127.0.0.1:0", 5, ""},
		{[]string{"--ready-checkpoint-factor", "0.5"}, "", 0, "--ready-checkpoint-factor"},
	} {
		fs := flag.NewFlagSet("job", flag.ContinueOnError)
		f := runtime.RegisterFlags(fs, runtime.Config{CheckpointDir: t.TempDir()})
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		cfg := f.Config()
		if c.wantError != "" {
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.wantError) {
				t.Errorf("%v: Validate = %v, want an error naming %s", c.args, err, c.wantError)
			}
			continue
		}
		if cfg.MetricsAddr != c.addr || cfg.ReadyCheckpointFactor != c.factor {
			t.Errorf("%v: addr %q factor %v, want %q %v", c.args, cfg.MetricsAddr, cfg.ReadyCheckpointFactor, c.addr, c.factor)
		}
	}
}
