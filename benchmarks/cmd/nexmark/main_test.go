package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/benchmarks/nexmark"
)

// required are the fields every result must have, in JSON and CSV.
var required = []string{
	"query", "events", "events_per_second", "events_per_second_per_core", "latency_p50_ms", "latency_p99_ms",
	"checkpoints", "checkpoint_p99_ms", "reference_events_per_second", "ratio_to_reference",
	"flink_events_per_second_per_core", "ratio_to_flink", "feldera_events_per_second_per_core", "ratio_to_feldera",
	"output_matches_reference", "engine_page_faults", "reference_page_faults",
}

// runAndRead runs the command with args, 3000 events and quick
// checkpoints, results to out, and decodes results.json into results.
func runAndRead(t *testing.T, out string, results any, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append(args, "--events", "3000", "--out", out, "--progress=false",
		"--checkpoint-interval", "10ms", "--checkpoint-dir", t.TempDir())
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, results); err != nil {
		t.Fatal(err)
	}
}

func TestRunWritesResults(t *testing.T) {
	out := t.TempDir()
	var results []map[string]any
	runAndRead(t, out, &results, "--queries", "q0,q3,q7")
	if len(results) != 3 {
		t.Fatalf("%d results, want 3", len(results))
	}
	for _, r := range results {
		for _, f := range required {
			if _, ok := r[f]; !ok {
				t.Errorf("%v: no field %q", r["query"], f)
			}
		}
		if r["output_matches_reference"] != true {
			t.Errorf("%v: output does not match", r["query"])
		}
		if r["events"] != float64(3000) {
			t.Errorf("%v: events = %v", r["query"], r["events"])
		}
		if eps, _ := r["events_per_second"].(float64); eps <= 0 {
			t.Errorf("%v: events_per_second = %v", r["query"], r["events_per_second"])
		}
		if n, _ := r["checkpoints"].(float64); n < 1 {
			t.Errorf("%v: checkpoints = %v, want the final one at least", r["query"], r["checkpoints"])
		}
		flink := r["flink_events_per_second_per_core"]
		if flink == nil {
			t.Errorf("%v: flink_events_per_second_per_core = %v", r["query"], flink)
		}
		if feldera := r["feldera_events_per_second_per_core"]; (r["query"] == "q3") != (feldera == nil) {
			t.Errorf("%v: feldera_events_per_second_per_core = %v (Feldera published none for q3 only of these)", r["query"], feldera)
		}
	}

	f, err := os.Open(filepath.Join(out, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("%d CSV rows, want a header and 3", len(rows))
	}
	for _, c := range required {
		if !slices.Contains(rows[0], c) {
			t.Errorf("CSV has no column %q", c)
		}
	}
	if rows[1][0] != "q0" || rows[2][0] != "q3" || rows[3][0] != "q7" {
		t.Errorf("CSV queries %q %q %q", rows[1][0], rows[2][0], rows[3][0])
	}

	svg, err := os.ReadFile(filepath.Join(out, "results.svg"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(svg)
	if !strings.HasPrefix(s, "<svg") || !strings.HasSuffix(s, "</svg>\n") {
		t.Errorf("not an SVG document:\n%s", s)
	}
	for _, want := range []string{">q0<", ">q3<", ">q7<", "Flink", "reference"} {
		if !strings.Contains(s, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--queries", "q23"}, {"--events", "0"}, {"--cores", "0"}, {"--repeat", "0"}, {"extra"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

func TestChartMarksMismatch(t *testing.T) {
	f := 1000.0
	s := chart([]Result{{Query: "q1", EventsPerSecondPerCore: 2e6, ReferenceEventsPerSecond: 3e6, FlinkEventsPerSecondPerCore: &f}})
	if !strings.Contains(s, "q1 ✗") {
		t.Errorf("a mismatching query is not marked:\n%s", s)
	}
}

// TestSettleReturnsFreeHeap checks that each measurement starts without
// free heap pages kept from the one before: a measurement that inherits
// them skips the page faults that one that does not pays (twice the
// reference loop's CPU time for q18).
func TestSettleReturnsFreeHeap(t *testing.T) {
	const size = 256 << 20
	garbage := make([]byte, size)
	for i := range garbage {
		garbage[i] = 1 // fault every page in
	}
	garbage = nil
	settle()
	s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	if free := s[0].Value.Uint64(); free > size/4 {
		t.Errorf("%d MB of free heap kept after settle, want it returned to the OS", free>>20)
	}
}

func TestMedianBy(t *testing.T) {
	for _, c := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{[]time.Duration{5}, 5},
		{[]time.Duration{3, 1, 2}, 2},
		{[]time.Duration{4, 1, 3, 2}, 2},
		{[]time.Duration{9, 9, 1}, 9},
	} {
		if got := medianBy(c.in, func(d time.Duration) time.Duration { return d }); got != c.want {
			t.Errorf("medianBy(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestRepeatMeasuresEachSideAgain(t *testing.T) {
	var results []Result
	runAndRead(t, t.TempDir(), &results, "--queries", "q3", "--repeat", "3")
	if len(results) != 1 || !results[0].OutputMatchesReference || results[0].Results == 0 {
		t.Fatalf("results %+v", results)
	}
}

// probeQuery is a query whose engine run checks that the reference's
// output of the run before it is no longer reachable: the engine must not
// run (and collect garbage) with the other side's results live.
type probeQuery struct {
	timed     bool          // the next reference run is the timed one
	collected chan struct{} // closed when the timed run's output is collected
	live      bool          // the engine found it still reachable
}

func (q *probeQuery) Name() string        { return "q0" }
func (q *probeQuery) UsesEventTime() bool { return false }

func (q *probeQuery) RunReference(_ *nexmark.Generator, _ bool) (*nexmark.Output, time.Duration) {
	out := &nexmark.Output{Count: 1, Sum: 7}
	if q.timed {
		q.timed = false
		q.collected = make(chan struct{})
		goruntime.AddCleanup(out, func(c chan struct{}) { close(c) }, q.collected)
	}
	return out, time.Millisecond
}

func (q *probeQuery) RunEngine(context.Context, nexmark.EngineRun) (*nexmark.EngineResult, error) {
	goruntime.GC()
	select {
	case <-q.collected:
	case <-time.After(10 * time.Second): // a failure, not a synchronization
		q.live = true
	}
	q.timed = true
	return &nexmark.EngineResult{Output: &nexmark.Output{Count: 1, Sum: 7}, Elapsed: time.Millisecond}, nil
}

func TestEngineRunsWithoutReferenceOutput(t *testing.T) {
	q := &probeQuery{timed: true}
	o := &options{queries: []nexmark.Query{q}, events: 1000, cores: 1, exactLimit: 1000, repeat: 2, interval: time.Second}
	r, err := runQuery(q, o, t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if q.live {
		t.Error("the reference's timed output was still reachable while the engine ran")
	}
	if !r.OutputMatchesReference {
		t.Error("the outputs do not match")
	}
}

// warmupQuery is a query whose first run of each side in a pair burns
// CPU time: with --warmup the harness must measure only the second run.
type warmupQuery struct {
	refRuns, engineRuns int
}

const warmupBurn = 300 * time.Millisecond

// burn spends d of the process's CPU time.
func burn(d time.Duration) {
	for start := cpuTime(); cpuTime()-start < d; {
	}
}

func (q *warmupQuery) Name() string        { return "q0" }
func (q *warmupQuery) UsesEventTime() bool { return false }

func (q *warmupQuery) RunReference(*nexmark.Generator, bool) (*nexmark.Output, time.Duration) {
	if q.refRuns++; q.refRuns%2 == 1 {
		burn(warmupBurn)
	}
	return &nexmark.Output{Count: 1, Sum: 7}, time.Millisecond
}

func (q *warmupQuery) RunEngine(context.Context, nexmark.EngineRun) (*nexmark.EngineResult, error) {
	if q.engineRuns++; q.engineRuns%2 == 1 {
		burn(warmupBurn)
	}
	return &nexmark.EngineResult{Output: &nexmark.Output{Count: 1, Sum: 7}, Elapsed: time.Millisecond}, nil
}

func TestWarmupRunsAreNotMeasured(t *testing.T) {
	if cpuTime() == 0 {
		t.Skip("CPU time is not measured on this platform")
	}
	q := &warmupQuery{}
	// exactLimit 0: the reference does not run again after the engine.
	o := &options{queries: []nexmark.Query{q}, events: 1000, cores: 1, repeat: 2, warmup: true, interval: time.Second}
	r, err := runQuery(q, o, t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if q.refRuns != 4 || q.engineRuns != 4 {
		t.Errorf("%d reference and %d engine runs for --repeat 2 with warm-up, want 4 each", q.refRuns, q.engineRuns)
	}
	for side, cpu := range map[string]float64{"reference": r.ReferenceCPUSeconds, "engine": r.EngineCPUSeconds} {
		if cpu >= (warmupBurn / 2).Seconds() {
			t.Errorf("the %s's measured CPU time is %.3f s: it includes the warm-up run's %v", side, cpu, warmupBurn)
		}
	}
}
