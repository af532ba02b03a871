package operators_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"

	"time"

	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// These tests run the event-time operators in real pipelines and compare
// their output with the same computation done directly in Go. The
// data-driven tests (script_test.go) pin down the step-by-step semantics;
// these check the wiring: keying, parallelism, side outputs, watermarks
// through the runtime, the end of input.

type tev struct {
	Key int64
	TS  int64
	V   int64
}

func tevTime(e tev) int64 { return e.TS }

const (
	wtDisorder = 300 // ms of bounded out-of-orderness
	wtChunk    = 50  // records per source Read: a watermark follows each
)

// lateEvents returns n events of keys keys, 7 ms apart, jittered by up to
// wtDisorder; every 41st is very late (5 s behind). The source runs with
// parallelism 1, so the watermark a record meets is a function of its chunk:
// lateness is deterministic.
func lateEvents(rng *rand.Rand, n, keys int) []tev {
	evs := make([]tev, n)
	for i := range evs {
		ts := 1_000_000 + int64(i)*7 - rng.Int64N(wtDisorder)
		if i%41 == 40 {
			ts -= 5000
		}
		evs[i] = tev{Key: int64(i % keys), TS: ts, V: rng.Int64N(1000)}
	}
	return evs
}

// watermarkBefore returns, per event, the watermark downstream operators
// have when it arrives: the source's, after the chunks before it.
func watermarkBefore(evs []tev) []int64 {
	wms := make([]int64, len(evs))
	maxTS, wm := runtime.MinWatermark, runtime.MinWatermark
	for i, e := range evs {
		if i%wtChunk == 0 && maxTS != runtime.MinWatermark {
			wm = maxTS - wtDisorder - 1
		}
		wms[i] = wm
		maxTS = max(maxTS, e.TS)
	}
	return wms
}

func fromEvents(p *runtime.Pipeline, name string, evs []tev) runtime.Stream[tev] {
	gen := must(generator.NewSource(generator.SourceConfig[tev]{Record: func(i uint64) tev { return evs[i] }, Count: uint64(len(evs)), ChunkSize: wtChunk}))
	return runtime.From(p, name, gen, runtime.WithWatermarks(runtime.BoundedOutOfOrderness(tevTime, wtDisorder*time.Millisecond))).SetParallelism(1)
}

func TestSlidingWindowsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 1))
	evs := lateEvents(rng, 12000, 7)
	wms := watermarkBefore(evs)
	for _, c := range []struct {
		name        string
		size, slide int64
	}{{"tumbling", 1000, 1000}, {"sliding", 2000, 500}} {
		// Reference: a record counts in each of its windows that has not
		// fired (end-1 > watermark); one that counts nowhere is late.
		type acc struct{ n, sum, max int64 }
		want := map[string]*acc{}
		var wantLate []string
		for i, e := range evs {
			added := false
			for start := e.TS - ((e.TS%c.slide)+c.slide)%c.slide; start > e.TS-c.size; start -= c.slide {
				if start+c.size-1 <= wms[i] {
					continue
				}
				k := fmt.Sprintf("%d@[%d,%d)", e.Key, start, start+c.size)
				a := want[k]
				if a == nil {
					a = &acc{max: -1}
					want[k] = a
				}
				a.n, a.sum, a.max, added = a.n+1, a.sum+e.V, max(a.max, e.V), true
			}
			if !added {
				wantLate = append(wantLate, fmt.Sprint(e))
			}
		}
		if len(wantLate) == 0 || len(wantLate) > len(evs)/20 {
			t.Fatalf("%s: %d late records of %d: the input does not exercise lateness", c.name, len(wantLate), len(evs))
		}
		var wantAgg, wantMax []string
		for k, a := range want {
			wantAgg = append(wantAgg, fmt.Sprintf("%s=%d/%d", k, a.n, a.sum))
			wantMax = append(wantMax, fmt.Sprintf("%s=%d", k, a.max))
		}
		for _, par := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/parallelism=%d", c.name, par), func(t *testing.T) {
				aggOut, maxOut, lateOut := newOutput[string](), newOutput[string](), newOutput[string]()
				p := runtime.NewPipeline("windows")
				keyed := operators.KeyBy(fromEvents(p, "events", evs), func(e tev) int64 { return e.Key })
				win := operators.Sliding(time.Duration(c.size)*time.Millisecond, time.Duration(c.slide)*time.Millisecond)
				type ns struct{ N, Sum int64 }
				agg, late := operators.WindowAggregate(operators.Window(keyed, "agg", win),
					operators.WindowAggregateFunc[int64, tev, ns, string]{
						Add: func(a ns, e tev, _ bool) ns { return ns{a.N + 1, a.Sum + e.V} },
						Result: func(k int64, w operators.TimeWindow, a ns) string {
							return fmt.Sprintf("%d@%v=%d/%d", k, w, a.N, a.Sum)
						},
					}, state.JSON[ns]())
				maxes, _ := operators.WindowReduce(operators.Window(keyed, "max", win),
					func(a, b tev) tev {
						if b.V > a.V {
							return b
						}
						return a
					}, state.JSON[tev]())
				runtime.To(agg, "agg-sink", newMemSink(aggOut))
				runtime.To(operators.Map(maxes, func(r operators.WindowResult[int64, tev]) string {
					return fmt.Sprintf("%d@%v=%d", r.Key, r.Window, r.Value.V)
				}), "max-sink", newMemSink(maxOut))
				runtime.To(operators.Map(late, func(e tev) string { return fmt.Sprint(e) }), "late-sink", newMemSink(lateOut))
				if err := runtime.Run(context.Background(), p, testConfig(t, par)); err != nil {
					t.Fatal(err)
				}
				check(t, "aggregate", aggOut.records(), wantAgg)
				check(t, "reduce", maxOut.records(), wantMax)
				check(t, "late", lateOut.records(), wantLate)
			})
		}
	}
}

func check(t *testing.T, what string, got, want []string) {
	t.Helper()
	got, want = sorted(got), sorted(want)
	if !slices.Equal(got, want) {
		i := firstDiff(got, want)
		t.Fatalf("%s: got %d records, want %d; first difference at %d: got %q, want %q", what, len(got), len(want), i, at(got, i), at(want, i))
	}
}

func TestSessionWindowsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 2))
	const keys, gap, disorder = 5, 150, 100
	// Bursts: 50 records within 100 ms every 400 ms, so that each key has
	// sessions of about 10 records.
	evs := make([]tev, 10000)
	for i := range evs {
		evs[i] = tev{Key: int64(i % keys), TS: 1_000_000 + int64(i/50)*400 + int64(i%50)*2 - rng.Int64N(disorder), V: int64(i)}
	}
	// Reference: per key, sorted times; a record less than gap after the
	// session's last one joins it.
	byKey := map[int64][]tev{}
	for _, e := range evs {
		byKey[e.Key] = append(byKey[e.Key], e)
	}
	var want []string
	for k, es := range byKey {
		slices.SortStableFunc(es, func(a, b tev) int { return int(a.TS - b.TS) })
		for i := 0; i < len(es); {
			j, end := i+1, es[i].TS+gap
			for j < len(es) && es[j].TS < end {
				end = max(end, es[j].TS+gap)
				j++
			}
			want = append(want, fmt.Sprintf("%d@[%d,%d)=%d", k, es[i].TS, end, j-i))
			i = j
		}
	}
	if len(want) < 100 {
		t.Fatalf("only %d sessions: the input does not exercise sessions", len(want))
	}
	for _, par := range []int{1, 2} {
		t.Run(fmt.Sprintf("parallelism=%d", par), func(t *testing.T) {
			out, lateOut := newOutput[string](), newOutput[string]()
			p := runtime.NewPipeline("sessions")
			gen := must(generator.NewSource(generator.SourceConfig[tev]{Record: func(i uint64) tev { return evs[i] }, Count: uint64(len(evs)), ChunkSize: 64}))
			src := runtime.From(p, "events", gen, runtime.WithWatermarks(runtime.BoundedOutOfOrderness(tevTime, disorder*time.Millisecond)))
			keyed := operators.KeyBy(src, func(e tev) int64 { return e.Key })
			sessions, late := operators.WindowProcess(operators.Window(keyed, "sessions", operators.Session(gap*time.Millisecond)),
				func(ctx *operators.WindowContext[int64], recs []tev, out runtime.Collector[string]) error {
					k, w := ctx.Key(), ctx.Window()
					for _, r := range recs {
						if r.TS < w.Start || r.TS >= w.End-gap+1 {
							return fmt.Errorf("record at %d outside session %v", r.TS, w)
						}
					}
					out.Collect(fmt.Sprintf("%d@%v=%d", k, w, len(recs)))
					return nil
				}, state.JSON[tev]())
			runtime.To(sessions, "sink", newMemSink(out))
			runtime.To(operators.Map(late, func(e tev) string { return fmt.Sprint(e) }), "late-sink", newMemSink(lateOut))
			if err := runtime.Run(context.Background(), p, testConfig(t, par)); err != nil {
				t.Fatal(err)
			}
			check(t, "sessions", out.records(), want)
			check(t, "late", lateOut.records(), nil)
		})
	}
}

func TestJoinsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 3))
	const keys, n, disorder, size, lower, upper = 13, 3000, 200, 1000, -300, 500
	gen := func(side int64) []tev {
		evs := make([]tev, n)
		for i := range evs {
			evs[i] = tev{Key: rng.Int64N(keys), TS: 1_000_000 + int64(i)*5 - rng.Int64N(disorder), V: side*100000 + int64(i)}
		}
		return evs
	}
	left, right := gen(1), gen(2)
	var wantWindow, wantInterval []string
	for _, a := range left {
		for _, b := range right {
			if a.Key != b.Key {
				continue
			}
			if a.TS/size == b.TS/size {
				wantWindow = append(wantWindow, fmt.Sprintf("%d@[%d,%d)=%d,%d", a.Key, a.TS/size*size, a.TS/size*size+size, a.V, b.V))
			}
			if a.TS+lower <= b.TS && b.TS <= a.TS+upper {
				wantInterval = append(wantInterval, fmt.Sprintf("%d=%d,%d", a.Key, a.V, b.V))
			}
		}
	}
	for _, par := range []int{1, 3} {
		t.Run(fmt.Sprintf("parallelism=%d", par), func(t *testing.T) {
			wOut, iOut := newOutput[string](), newOutput[string]()
			p := runtime.NewPipeline("joins")
			src := func(name string, evs []tev) runtime.Stream[tev] {
				g := must(generator.NewSource(generator.SourceConfig[tev]{Record: func(i uint64) tev { return evs[i] }, Count: uint64(len(evs)), ChunkSize: 32}))
				return runtime.From(p, name, g, runtime.WithWatermarks(runtime.BoundedOutOfOrderness(tevTime, disorder*time.Millisecond)))
			}
			l, r := src("left", left), src("right", right)
			on := operators.JoinOn[int64, tev, tev]{
				LeftKey: func(e tev) int64 { return e.Key }, RightKey: func(e tev) int64 { return e.Key },
				LeftCodec: state.JSON[tev](), RightCodec: state.JSON[tev](),
			}
			wj := operators.WindowJoin(l, r, "window-join", on, size*time.Millisecond, func(k int64, w operators.TimeWindow, a, b tev) string {
				return fmt.Sprintf("%d@%v=%d,%d", k, w, a.V, b.V)
			})
			ij := operators.IntervalJoin(l, r, "interval-join", on, lower*time.Millisecond, upper*time.Millisecond, func(k int64, a, b tev) string {
				return fmt.Sprintf("%d=%d,%d", k, a.V, b.V)
			})
			runtime.To(wj, "window-sink", newMemSink(wOut))
			runtime.To(ij, "interval-sink", newMemSink(iOut))
			if err := runtime.Run(context.Background(), p, testConfig(t, par)); err != nil {
				t.Fatal(err)
			}
			check(t, "window join", wOut.records(), wantWindow)
			check(t, "interval join", iOut.records(), wantInterval)
		})
	}
}

func TestDedupPipeline(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 4))
	// Each id appears 1-4 times, redeliveries soon after the original (as
	// at-least-once inputs make them), with the original's event time.
	type msg struct {
		ID string
		TS int64
	}
	var msgs []msg
	var want []string
	for i := range 3000 {
		m := msg{ID: fmt.Sprintf("m%d", i), TS: 1_000_000 + int64(i)*3}
		want = append(want, m.ID)
		for range 1 + rng.IntN(4) {
			msgs = append(msgs, m)
		}
	}
	rng.Shuffle(len(msgs), func(i, j int) {
		if d := i - j; d < 40 && d > -40 { // local reordering only
			msgs[i], msgs[j] = msgs[j], msgs[i]
		}
	})
	for _, domain := range []string{"event", "processing"} {
		t.Run(domain, func(t *testing.T) {
			out := newOutput[string]()
			p := runtime.NewPipeline("dedup")
			g := must(generator.NewSource(generator.SourceConfig[msg]{Record: func(i uint64) msg { return msgs[i] }, Count: uint64(len(msgs)), ChunkSize: 20}))
			src := runtime.From(p, "msgs", g, runtime.WithWatermarks(runtime.BoundedOutOfOrderness(func(m msg) int64 { return m.TS }, time.Second)))
			var opts []operators.DedupOption
			if domain == "event" {
				opts = append(opts, operators.DedupEventTime())
			}
			// Event time: a TTL of 1 s covers the redeliveries, and ids are
			// forgotten as the watermark moves on. Processing time: an hour.
			ttl := time.Hour
			if domain == "event" {
				ttl = time.Second
			}
			unique := operators.Dedup(src, "dedup", func(m msg) string { return m.ID }, ttl, opts...)
			runtime.To(operators.Map(unique, func(m msg) string { return m.ID }), "sink", newMemSink(out))
			if err := runtime.Run(context.Background(), p, testConfig(t, 2)); err != nil {
				t.Fatal(err)
			}
			check(t, "ids", out.records(), want)
		})
	}
}

// TestProcessingTimeTimerFiresInKeyedTask checks that a processing-time timer
// fires while its (keyed, so gate-fed) task has nothing else to do: the
// source emits one record and then nothing until the timer's output is
// committed.
func TestProcessingTimeTimerFiresInKeyedTask(t *testing.T) {
	out := newOutput[string]()
	var fired atomic.Bool
	p := runtime.NewPipeline("ptimer")
	// Parallelism 1 for the source and 2 for the rest: the keyed operator
	// is not chained to the source but reads from a gate.
	src := runtime.From(p, "one", func() (runtime.Source[int64], error) { return &waitingSource{fired: &fired}, nil }).SetParallelism(1)
	timed := operators.ProcessWithTimers(operators.KeyBy(src, func(v int64) int64 { return v }), "timer",
		func(*operators.SetupContext[int64]) (operators.TimedProcessFunc[int64, int64, string], operators.TimerFunc[int64, string], error) {
			return func(ctx *operators.TimerContext[int64], _ int64, _ runtime.Collector[string]) error {
					ctx.Timers().RegisterProcessingTime(ctx.ProcessingTime() + 20)
					return nil
				}, func(ctx *operators.TimerContext[int64], tm runtime.Timer, out runtime.Collector[string]) error {
					if tm.Domain != runtime.ProcessingTime {
						return fmt.Errorf("timer of domain %d", tm.Domain)
					}
					fired.Store(true)
					out.Collect(fmt.Sprintf("fired %d", ctx.Key()))
					return nil
				}, nil
		})
	runtime.To(timed, "sink", newMemSink(out))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// No checkpoint until the end (whose drain would poll the clock too),
	// and batches of one record, so that the record needs no barrier.
	cfg := testConfig(t, 2)
	cfg.CheckpointInterval, cfg.BatchSize = time.Minute, 1
	if err := runtime.Run(ctx, p, cfg); err != nil {
		t.Fatalf("%v (the processing-time timer never fired?)", err)
	}
	check(t, "output", out.records(), []string{"fired 7"})
}

// waitingSource emits 7, then polls (returning nothing) until fired is set,
// then ends.
type waitingSource struct {
	fired *atomic.Bool
	sent  bool
}

func (s *waitingSource) Open(context.Context, runtime.TaskInfo, []byte) error { return nil }
func (s *waitingSource) Read(ctx context.Context, out runtime.Collector[int64]) error {
	if !s.sent {
		s.sent = true
		out.Collect(7)
		return nil
	}
	if s.fired.Load() {
		return runtime.ErrEndOfInput
	}
	select { // poll interval; the test does not depend on it
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Millisecond):
	}
	return nil
}
func (s *waitingSource) Snapshot() ([]byte, error) { return nil, nil }
func (s *waitingSource) Close() error              { return nil }
