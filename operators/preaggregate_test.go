package operators_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// windowsOf calls fn for each window [start, start+size) with starts at
// multiples of slide that contains ts.
func windowsOf(ts, size, slide int64, fn func(start int64)) {
	for start := ts - ((ts%slide)+slide)%slide; start > ts-size; start -= slide {
		fn(start)
	}
}

// TestPreAggregateMatchesReference runs pre-aggregated window aggregates
// (count and sum, and a top 3 with and without ties) over events with late
// records and compares them, and the late stream, with a direct
// computation. With pre-aggregation a record is late when all its windows
// had fired at the watermark it met where it was pre-aggregated: here the
// source's, as the pre-aggregation reads the source's only subtask.
func TestPreAggregateMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 2))
	evs := lateEvents(rng, 12000, 7)
	wms := watermarkBefore(evs)
	for _, c := range []struct {
		name        string
		size, slide int64
	}{{"tumbling", 1000, 1000}, {"sliding", 2000, 500}, {"sliding-gcd", 1500, 1000}} {
		type acc struct {
			n, sum int64
			recs   []tev
		}
		want := map[string]*acc{}
		var wantLate []string
		for i, e := range evs {
			added := false
			windowsOf(e.TS, c.size, c.slide, func(start int64) {
				if start+c.size-1 <= wms[i] {
					return
				}
				k := fmt.Sprintf("%d@[%d,%d)", e.Key, start, start+c.size)
				a := want[k]
				if a == nil {
					a = &acc{}
					want[k] = a
				}
				a.n, a.sum, a.recs, added = a.n+1, a.sum+e.V, append(a.recs, e), true
			})
			if !added {
				wantLate = append(wantLate, fmt.Sprint(e))
			}
		}
		if len(wantLate) == 0 {
			t.Fatalf("%s: no late records: the input does not exercise lateness", c.name)
		}
		// Top 3 by value: ties on the value kept (WithTies), or broken by
		// time and key (a total order).
		byV := func(a, b tev) int { return cmp.Compare(b.V, a.V) }
		total := func(a, b tev) int { return cmp.Or(byV(a, b), cmp.Compare(a.TS, b.TS), cmp.Compare(a.Key, b.Key)) }
		var wantAgg, wantTies, wantTop []string
		for k, a := range want {
			wantAgg = append(wantAgg, fmt.Sprintf("%s=%d/%d", k, a.n, a.sum))
			slices.SortFunc(a.recs, total)
			top := a.recs[:min(3, len(a.recs))]
			wantTop = append(wantTop, fmt.Sprintf("%s=%v", k, values(top)))
			ties := len(top)
			for ties < len(a.recs) && a.recs[ties].V == top[len(top)-1].V {
				ties++
			}
			wantTies = append(wantTies, fmt.Sprintf("%s=%v", k, values(a.recs[:ties])))
		}
		for _, par := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/parallelism=%d", c.name, par), func(t *testing.T) {
				aggOut, tiesOut, topOut, lateOut := newOutput[string](), newOutput[string](), newOutput[string](), newOutput[string]()
				p := runtime.NewPipeline("preaggregate")
				keyed := operators.KeyBy(fromEvents(p, "events", evs), func(e tev) int64 { return e.Key })
				win := operators.Sliding(time.Duration(c.size)*time.Millisecond, time.Duration(c.slide)*time.Millisecond)
				type ns struct{ N, Sum int64 }
				agg, late := operators.WindowAggregate(operators.Window(keyed, "agg", win).PreAggregate(),
					operators.WindowAggregateFunc[int64, tev, ns, string]{
						Add:   func(a ns, e tev, _ bool) ns { return ns{a.N + 1, a.Sum + e.V} },
						Merge: func(a, b ns) ns { return ns{a.N + b.N, a.Sum + b.Sum} },
						Result: func(k int64, w operators.TimeWindow, a ns) string {
							return fmt.Sprintf("%d@%v=%d/%d", k, w, a.N, a.Sum)
						},
					}, state.JSON[ns]())
				topStr := func(r operators.WindowResult[int64, []tev]) string {
					return fmt.Sprintf("%d@%v=%v", r.Key, r.Window, values(r.Value))
				}
				ties, _ := operators.WindowTopN(operators.Window(keyed, "ties", win).PreAggregate(),
					operators.TopN[tev]{N: 3, Compare: byV, WithTies: true}, state.JSON[tev]())
				top, _ := operators.WindowTopN(operators.Window(keyed, "top", win).PreAggregate(),
					operators.TopN[tev]{N: 3, Compare: total}, state.JSON[tev]())
				runtime.To(agg, "agg-sink", newMemSink(aggOut))
				runtime.To(operators.Map(ties, topStr), "ties-sink", newMemSink(tiesOut))
				runtime.To(operators.Map(top, topStr), "top-sink", newMemSink(topOut))
				runtime.To(operators.Map(late, func(e tev) string { return fmt.Sprint(e) }), "late-sink", newMemSink(lateOut))
				if err := runtime.Run(context.Background(), p, testConfig(t, par)); err != nil {
					t.Fatal(err)
				}
				check(t, "aggregate", aggOut.records(), wantAgg)
				check(t, "top 3 with ties", tiesOut.records(), wantTies)
				check(t, "top 3", topOut.records(), wantTop)
				check(t, "late", lateOut.records(), wantLate)
			})
		}
	}
}

// values lists the values of the records, in order, sorting the runs of
// equal values by their other fields: ties keep arrival order, which the
// comparison must not depend on.
func values(recs []tev) string {
	s := slices.Clone(recs)
	slices.SortStableFunc(s, func(a, b tev) int {
		return cmp.Or(cmp.Compare(b.V, a.V), cmp.Compare(a.TS, b.TS), cmp.Compare(a.Key, b.Key))
	})
	var b strings.Builder
	for _, e := range s {
		fmt.Fprintf(&b, "%d/%d/%d ", e.Key, e.TS, e.V)
	}
	return b.String()
}

// TestCascadedWindows feeds the results of one window into a second one on
// their window's last millisecond, as a global top N over per-key results
// does. At parallelism 1 the second window runs in the first one's task,
// where the results reach it as the watermark that fired them arrives: they
// precede that watermark and must not be late.
func TestCascadedWindows(t *testing.T) {
	const n, keys, step, size = 3000, 5, 10, 1000
	var want []string
	for start := int64(0); start < n*step; start += size {
		want = append(want, fmt.Sprintf("[%d,%d)=%d", start, start+size, size/step))
	}
	for _, par := range []int{1, 3} {
		for _, pre := range []bool{false, true} {
			t.Run(fmt.Sprintf("parallelism=%d/pre-aggregate=%v", par, pre), func(t *testing.T) {
				out := newOutput[string]()
				p := runtime.NewPipeline("cascade")
				ts := func(v uint64) int64 { return int64(v) * step }
				s := runtime.From(p, "src", numbers(n), runtime.WithWatermarks(runtime.Monotonic(ts)))
				counts, _ := operators.WindowAggregate(operators.Window(operators.KeyBy(s, func(v uint64) uint64 { return v % keys }), "per-key", operators.Tumbling(size*time.Millisecond)),
					operators.WindowAggregateFunc[uint64, uint64, int64, operators.WindowResult[uint64, int64]]{
						Add: func(a int64, _ uint64, _ bool) int64 { return a + 1 },
						Result: func(k uint64, w operators.TimeWindow, a int64) operators.WindowResult[uint64, int64] {
							return operators.WindowResult[uint64, int64]{Key: k, Window: w, Value: a}
						},
					}, nil)
				w := operators.Window(operators.KeyBy(counts, func(operators.WindowResult[uint64, int64]) int { return 0 }), "total", operators.Tumbling(size*time.Millisecond))
				if pre {
					w = w.PreAggregate()
				}
				totals, late := operators.WindowAggregate(w, operators.WindowAggregateFunc[int, operators.WindowResult[uint64, int64], int64, string]{
					Add:    func(a int64, r operators.WindowResult[uint64, int64], _ bool) int64 { return a + r.Value },
					Merge:  func(a, b int64) int64 { return a + b },
					Result: func(_ int, w operators.TimeWindow, a int64) string { return fmt.Sprintf("%v=%d", w, a) },
				}, nil)
				lateOut := newOutput[string]()
				runtime.To(totals, "sink", newMemSink(out))
				runtime.To(operators.Map(late, func(r operators.WindowResult[uint64, int64]) string { return fmt.Sprint(r) }), "late-sink", newMemSink(lateOut))
				if err := runtime.Run(context.Background(), p, testConfig(t, par)); err != nil {
					t.Fatal(err)
				}
				check(t, "totals", out.records(), want)
				check(t, "late", lateOut.records(), nil)
			})
		}
	}
}

// TestPreAggregateRestart stops or crashes a job with pre-aggregated
// sliding windows in the middle of its input and restarts it from its
// checkpoint: the open panes of the pre-aggregation are operator state, and
// every window must fire once with its full count.
func TestPreAggregateRestart(t *testing.T) {
	const n, keys = 3000, 7
	const step, size, slide = 10, 200, 100 // ms of event time per record, window size and slide
	counts := map[string]int{}
	for v := int64(0); v < n; v++ {
		windowsOf(v*step, size, slide, func(start int64) {
			counts[fmt.Sprintf("k%d@[%d,%d)", v%keys, start, start+size)]++
		})
	}
	var want []string
	for w, c := range counts {
		want = append(want, fmt.Sprintf("%s=%d", w, c))
	}
	for _, par := range []int{1, 2} {
		for _, mode := range []string{"stop", "crash"} {
			t.Run(fmt.Sprintf("parallelism=%d/%s", par, mode), func(t *testing.T) {
				dir := t.TempDir()
				out := newOutput[string]()
				rj := restartJob{name: "preaggregate-restart", par: par, n: n, build: func(p *runtime.Pipeline, src runtime.SourceFactory[uint64], out *output[string]) {
					ts := func(v uint64) int64 { return int64(v) * step }
					s := runtime.From(p, "src", src, runtime.WithWatermarks(runtime.Monotonic(ts)))
					keyed := operators.KeyBy(s, func(v uint64) string { return fmt.Sprintf("k%d", v%keys) })
					win := operators.Window(keyed, "count", operators.Sliding(size*time.Millisecond, slide*time.Millisecond)).PreAggregate()
					res, _ := operators.WindowAggregate(win, operators.WindowAggregateFunc[string, uint64, int64, string]{
						Add:    func(acc int64, _ uint64, _ bool) int64 { return acc + 1 },
						Merge:  func(a, b int64) int64 { return a + b },
						Result: func(k string, w operators.TimeWindow, acc int64) string { return fmt.Sprintf("%s@%v=%d", k, w, acc) },
					}, nil)
					runtime.To(res, "sink", newMemSink(out))
				}}
				if out1 := rj.interrupt(t, dir, out, n/2, mode); mode == "stop" && (out1 == 0 || out1 >= len(want)) {
					t.Fatalf("first run committed %d of %d windows: not interrupted in the middle", out1, len(want))
				}
				rj.resume(t, dir, out)
				check(t, "windows", out.records(), want)
			})
		}
	}
}

// TestPreAggregateNeedsMerge checks the construction errors.
func TestPreAggregateErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(w operators.WindowedStream[uint64, uint64])
		want  string
	}{
		{"no merge", func(w operators.WindowedStream[uint64, uint64]) {
			operators.WindowAggregate(w.PreAggregate(), operators.WindowAggregateFunc[uint64, uint64, int64, int64]{
				Add:    func(a int64, _ uint64, _ bool) int64 { return a + 1 },
				Result: func(_ uint64, _ operators.TimeWindow, a int64) int64 { return a },
			}, nil)
		}, "needs WindowAggregateFunc.Merge"},
		{"window process", func(w operators.WindowedStream[uint64, uint64]) {
			operators.WindowProcess(w.PreAggregate(), func(*operators.WindowContext[uint64], []uint64, runtime.Collector[int]) error { return nil }, nil)
		}, "needs an incremental aggregation"},
		{"top 0", func(w operators.WindowedStream[uint64, uint64]) {
			operators.WindowTopN(w, operators.TopN[uint64]{Compare: cmp.Compare[uint64]}, nil)
		}, "TopN needs N >= 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := runtime.NewPipeline("errors")
			s := runtime.From(p, "src", numbers(1), runtime.WithWatermarks(runtime.Monotonic(func(v uint64) int64 { return int64(v) })))
			tc.build(operators.Window(operators.KeyBy(s, func(v uint64) uint64 { return v }), "w", operators.Tumbling(time.Second)))
			if err := p.Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	p := runtime.NewPipeline("errors")
	s := runtime.From(p, "src", numbers(1), runtime.WithWatermarks(runtime.Monotonic(func(v uint64) int64 { return int64(v) })))
	operators.WindowReduce(operators.Window(operators.KeyBy(s, func(v uint64) uint64 { return v }), "w", operators.Session(time.Second)).PreAggregate(),
		func(a, b uint64) uint64 { return a + b }, nil)
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "not sessions") {
		t.Fatalf("sessions: error %v", err)
	}
}

// TestPreAggregateWithLateness checks that pre-aggregation gives the same
// results as the plain window with allowed lateness, fired again for late
// records, at parallelism 1, where both see the source's watermark.
func TestPreAggregateWithLateness(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 5))
	evs := lateEvents(rng, 8000, 5)
	run := func(pre bool) (results, late []string) {
		res, lateOut := newOutput[string](), newOutput[string]()
		p := runtime.NewPipeline("lateness")
		keyed := operators.KeyBy(fromEvents(p, "events", evs), func(e tev) int64 { return e.Key })
		w := operators.Window(keyed, "sum", operators.Tumbling(time.Second)).AllowedLateness(4200 * time.Millisecond)
		if pre {
			w = w.PreAggregate()
		}
		sums, lateRecs := operators.WindowReduce(w, func(a, b tev) tev { return tev{Key: a.Key, TS: max(a.TS, b.TS), V: a.V + b.V} }, state.JSON[tev]())
		runtime.To(operators.Map(sums, func(r operators.WindowResult[int64, tev]) string {
			return fmt.Sprintf("%d@%v=%d", r.Key, r.Window, r.Value.V)
		}), "sink", newMemSink(res))
		runtime.To(operators.Map(lateRecs, func(e tev) string { return fmt.Sprint(e) }), "late-sink", newMemSink(lateOut))
		if err := runtime.Run(context.Background(), p, testConfig(t, 1)); err != nil {
			t.Fatal(err)
		}
		return res.records(), lateOut.records()
	}
	wantRes, wantLate := run(false)
	gotRes, gotLate := run(true)
	windows := map[string]bool{}
	for _, r := range wantRes {
		w, _, _ := strings.Cut(r, "=")
		windows[w] = true
	}
	if len(windows) == len(wantRes) || len(wantLate) == 0 {
		t.Fatalf("%d results of %d windows, %d late: the input does not exercise lateness", len(wantRes), len(windows), len(wantLate))
	}
	check(t, "results", gotRes, wantRes)
	check(t, "late", gotLate, wantLate)
}
