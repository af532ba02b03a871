package operators_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// These tests check that the event-time operators read the timestamp each
// record carries, wherever it was given (a source, AssignTimestamps, an
// operator's SetTimestamp), and what timestamps their results carry.

// restampOp gives each record the timestamp ts returns, as an operator
// that knows the event time only after decoding would.
type restampOp[T any] struct {
	runtime.OperatorBase
	ts  func(T) int64
	ctx *runtime.OperatorContext
	out runtime.Collector[T]
}

func (o *restampOp[T]) Open(ctx *runtime.OperatorContext, out runtime.Collector[T]) error {
	o.ctx, o.out = ctx, out
	return nil
}

func (o *restampOp[T]) Process(rec T) {
	o.ctx.SetTimestamp(o.ts(rec))
	o.out.Collect(rec)
}

func restamp[T any](s runtime.Stream[T], name string, ts func(T) int64) runtime.Stream[T] {
	return runtime.Apply(s, name, func() runtime.Operator[T, T] { return &restampOp[T]{ts: ts} })
}

// stampedOp formats each record with the timestamp it carries, "rec@ts".
type stampedOp[T any] struct {
	runtime.OperatorBase
	ctx *runtime.OperatorContext
	out runtime.Collector[string]
}

func (o *stampedOp[T]) Open(ctx *runtime.OperatorContext, out runtime.Collector[string]) error {
	o.ctx, o.out = ctx, out
	return nil
}

func (o *stampedOp[T]) Process(rec T) { o.out.Collect(fmt.Sprintf("%v@%d", rec, o.ctx.Timestamp())) }

func stamped[T any](s runtime.Stream[T], name string) runtime.Stream[string] {
	return runtime.Apply(s, name, func() runtime.Operator[T, string] { return &stampedOp[T]{} })
}

// countWindows returns what countPerWindow emits for records at times ts
// with keys key in tumbling windows of size ms: "key@[start,end)=count@end-1".
func countWindows(n uint64, key func(uint64) uint64, ts func(uint64) int64, size int64) []string {
	type window struct {
		key   uint64
		start int64
	}
	counts := map[window]int{}
	for v := range n {
		counts[window{key(v), ts(v) - ts(v)%size}]++
	}
	var want []string
	for w, c := range counts {
		want = append(want, fmt.Sprintf("%d@[%d,%d)=%d@%d", w.key, w.start, w.start+size, c, w.start+size-1))
	}
	return want
}

// countPerWindow counts the records of s per key (v % keys) in tumbling
// windows of size ms and formats each result with its timestamp.
func countPerWindow(s runtime.Stream[uint64], keys uint64, size int64) (results, late runtime.Stream[string]) {
	res, l := operators.WindowAggregate(
		operators.Window(operators.KeyBy(s, func(v uint64) uint64 { return v % keys }), "count", operators.Tumbling(time.Duration(size)*time.Millisecond)),
		operators.WindowAggregateFunc[uint64, uint64, int64, string]{
			Add:    func(n int64, _ uint64, _ bool) int64 { return n + 1 },
			Result: func(k uint64, w operators.TimeWindow, n int64) string { return fmt.Sprintf("%d@%v=%d", k, w, n) },
		}, state.Int64)
	return stamped(res, "count-stamps"), stamped(l, "late-stamps")
}

// TestWindowOverTimestampsAssignedMidPipeline windows a stream whose
// source has no event time: AssignTimestamps gives it after a map, as
// after decoding. The results carry their window's End-1.
func TestWindowOverTimestampsAssignedMidPipeline(t *testing.T) {
	const n, keys, size = 2000, 3, 1000
	evTime := func(v uint64) int64 { return 1_000_000 + int64(v)*7 }
	want := countWindows(n, func(v uint64) uint64 { return v % keys }, evTime, size)
	for _, par := range []int{1, 3} {
		t.Run(fmt.Sprintf("parallelism=%d", par), func(t *testing.T) {
			out, lateOut := newOutput[string](), newOutput[string]()
			p := runtime.NewPipeline("assigned")
			src := runtime.From(p, "src", numbers(n)) // no event time
			decoded := operators.Map(src, func(v uint64) uint64 { return v })
			if decoded.HasEventTime() {
				t.Fatal("a stream from a source without watermarks has event time")
			}
			withTime := runtime.AssignTimestamps(decoded, "timestamps", runtime.Monotonic(evTime))
			if !withTime.HasEventTime() {
				t.Fatal("AssignTimestamps gave no event time")
			}
			res, late := countPerWindow(withTime, keys, size)
			runtime.To(res, "sink", newMemSink(out))
			runtime.To(late, "late-sink", newMemSink(lateOut))
			if err := runtime.Run(context.Background(), p, testConfig(t, par)); err != nil {
				t.Fatal(err)
			}
			check(t, "windows", out.records(), want)
			check(t, "late", lateOut.records(), nil)
		})
	}
}

// TestWindowBySetTimestamp windows by the timestamp an operator between
// the source and the window set: the source's would put the records whose
// time is in the second half of a window into another window.
func TestWindowBySetTimestamp(t *testing.T) {
	const n, keys, size = 2000, 3, 1000
	srcTime := func(v uint64) int64 { return int64(v) * 10 }
	newTime := func(v uint64) int64 { return int64(v)*10 + size/2 } // later: never behind the watermark
	want := countWindows(n, func(v uint64) uint64 { return v % keys }, newTime, size)
	for _, par := range []int{1, 3} {
		t.Run(fmt.Sprintf("parallelism=%d", par), func(t *testing.T) {
			out, lateOut := newOutput[string](), newOutput[string]()
			p := runtime.NewPipeline("restamped")
			src := runtime.From(p, "src", numbers(n), runtime.WithWatermarks(runtime.Monotonic(srcTime)))
			res, late := countPerWindow(restamp(src, "restamp", newTime), keys, size)
			runtime.To(res, "sink", newMemSink(out))
			runtime.To(late, "late-sink", newMemSink(lateOut))
			if err := runtime.Run(context.Background(), p, testConfig(t, par)); err != nil {
				t.Fatal(err)
			}
			check(t, "windows", out.records(), want)
			check(t, "late", lateOut.records(), nil)
		})
	}
}

// TestJoinResultTimestamps checks the timestamps joins give their results:
// a window join its window's End-1, an interval join the later of the two
// records'.
func TestJoinResultTimestamps(t *testing.T) {
	left := []tev{{Key: 1, TS: 1000, V: 1}, {Key: 1, TS: 2000, V: 2}}
	right := []tev{{Key: 1, TS: 1500, V: 3}}
	p := runtime.NewPipeline("join-stamps")
	src := func(name string, evs []tev) runtime.Stream[tev] {
		g := must(generator.NewSource(generator.SourceConfig[tev]{Record: func(i uint64) tev { return evs[i] }, Count: uint64(len(evs)), ChunkSize: 1}))
		return runtime.From(p, name, g, runtime.WithWatermarks(runtime.Monotonic(tevTime))).SetParallelism(1)
	}
	l, r := src("left", left), src("right", right)
	on := operators.JoinOn[int64, tev, tev]{LeftKey: func(e tev) int64 { return e.Key }, RightKey: func(e tev) int64 { return e.Key },
		LeftCodec: state.JSON[tev](), RightCodec: state.JSON[tev]()}
	wj := operators.WindowJoin(l, r, "window-join", on, time.Second, func(k int64, w operators.TimeWindow, a, b tev) string {
		return fmt.Sprintf("%v=(%d,%d)", w, a.V, b.V)
	})
	ij := operators.IntervalJoin(l, r, "interval-join", on, -time.Second, time.Second, func(k int64, a, b tev) string {
		return fmt.Sprintf("(%d,%d)", a.V, b.V)
	})
	wOut, iOut := newOutput[string](), newOutput[string]()
	runtime.To(stamped(wj, "window-stamps"), "window-sink", newMemSink(wOut))
	runtime.To(stamped(ij, "interval-stamps"), "interval-sink", newMemSink(iOut))
	if err := runtime.Run(context.Background(), p, testConfig(t, 2)); err != nil {
		t.Fatal(err)
	}
	check(t, "window join", wOut.records(), []string{"[1000,2000)=(1,3)@1999"})
	check(t, "interval join", iOut.records(), []string{"(1,3)@1500", "(2,3)@2000"})
}

// TestMissingEventTime checks that an event-time operator on a stream
// without event time is a pipeline error that names the operator and says
// what to do.
func TestMissingEventTime(t *testing.T) {
	withTime := func(p *runtime.Pipeline, name string) runtime.Stream[uint64] {
		return runtime.From(p, name, numbers(10), runtime.WithWatermarks(runtime.Monotonic(func(v uint64) int64 { return int64(v) })))
	}
	plain := func(p *runtime.Pipeline, name string) runtime.Stream[uint64] {
		return runtime.From(p, name, numbers(10))
	}
	key := func(v uint64) uint64 { return v }
	on := operators.JoinOn[uint64, uint64, uint64]{LeftKey: key, RightKey: key}
	count := operators.WindowAggregateFunc[uint64, uint64, int64, int64]{
		Add:    func(n int64, _ uint64, _ bool) int64 { return n + 1 },
		Merge:  func(a, b int64) int64 { return a + b },
		Result: func(_ uint64, _ operators.TimeWindow, n int64) int64 { return n },
	}
	for _, tc := range []struct {
		name, want string // want: what the error names
		build      func(p *runtime.Pipeline)
	}{
		{"window", `window "w"`, func(p *runtime.Pipeline) {
			operators.WindowAggregate(operators.Window(operators.KeyBy(plain(p, "src"), key), "w", operators.Tumbling(time.Second)), count, nil)
		}},
		{"window after a map", `window "w"`, func(p *runtime.Pipeline) {
			m := operators.Map(plain(p, "src"), func(v uint64) uint64 { return v + 1 })
			operators.WindowAggregate(operators.Window(operators.KeyBy(m, key), "w", operators.Tumbling(time.Second)).PreAggregate(), count, nil)
		}},
		{"window after a merge with a stream without event time", `window "w"`, func(p *runtime.Pipeline) {
			m := runtime.Merge(withTime(p, "a"), "both", plain(p, "b"))
			operators.Window(operators.KeyBy(m, key), "w", operators.Session(time.Second))
		}},
		{"window join, left", `join "j": left input`, func(p *runtime.Pipeline) {
			operators.WindowJoin(plain(p, "l"), withTime(p, "r"), "j", on, time.Second, func(uint64, operators.TimeWindow, uint64, uint64) int { return 0 })
		}},
		{"interval join, right", `join "j": right input`, func(p *runtime.Pipeline) {
			operators.IntervalJoin(withTime(p, "l"), plain(p, "r"), "j", on, 0, time.Second, func(uint64, uint64, uint64) int { return 0 })
		}},
		{"event-time dedup", `dedup "d"`, func(p *runtime.Pipeline) {
			operators.Dedup(plain(p, "src"), "d", key, time.Second, operators.DedupEventTime())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := runtime.NewPipeline("no-event-time")
			tc.build(p)
			err := p.Err()
			if !errors.Is(err, operators.ErrNoEventTime) || !errors.Is(err, runtime.ErrInvalidPipeline) {
				t.Fatalf("error %v, want ErrNoEventTime and ErrInvalidPipeline", err)
			}
			for _, s := range []string{tc.want, "runtime.AssignTimestamps", "runtime.WithWatermarks"} {
				if !strings.Contains(err.Error(), s) {
					t.Fatalf("error %q does not say %q", err, s)
				}
			}
		})
	}
	// What needs no event time, or gets it after a merge, builds.
	p := runtime.NewPipeline("event-time")
	operators.Dedup(plain(p, "src"), "d", key, time.Second)
	m := runtime.AssignTimestamps(runtime.Merge(withTime(p, "a"), "both", plain(p, "b")), "timestamps", runtime.Monotonic(func(v uint64) int64 { return int64(v) }))
	operators.Window(operators.KeyBy(m, key), "w", operators.Session(time.Second))
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestRecordWithoutTimestampFailsJob checks that a record that reaches a
// window without a timestamp (as one a processing-time timer emitted) stops
// the job with ErrNoEventTime instead of being windowed at the start of
// time, or counted late.
func TestRecordWithoutTimestampFailsJob(t *testing.T) {
	for _, pre := range []bool{false, true} {
		t.Run(fmt.Sprintf("pre-aggregate=%v", pre), func(t *testing.T) {
			p := runtime.NewPipeline("no-timestamp")
			src := runtime.From(p, "src", numbers(100), runtime.WithWatermarks(runtime.Monotonic(func(v uint64) int64 { return int64(v) })))
			unstamped := restamp(src, "unstamp", func(uint64) int64 { return runtime.NoTimestamp })
			w := operators.Window(operators.KeyBy(unstamped, func(v uint64) uint64 { return v % 3 }), "w", operators.Tumbling(time.Second))
			if pre {
				w = w.PreAggregate()
			}
			res, _ := operators.WindowReduce(w, func(a, b uint64) uint64 { return a + b }, nil)
			runtime.To(res, "sink", newMemSink(newOutput[operators.WindowResult[uint64, uint64]]()))
			err := runtime.Run(context.Background(), p, testConfig(t, 1))
			if !errors.Is(err, operators.ErrNoEventTime) || !strings.Contains(err.Error(), "SetTimestamp") {
				t.Fatalf("error %v, want ErrNoEventTime saying what to do", err)
			}
		})
	}
}

// TestProcessContextTimestamp reads each record's timestamp in a process
// function through its per-call Context: the one AssignTimestamps gave on
// an event-time stream, runtime.NoTimestamp without event time.
func TestProcessContextTimestamp(t *testing.T) {
	const n = 500
	evTime := func(v uint64) int64 { return 5_000 + int64(v)*3 }
	for _, eventTime := range []bool{true, false} {
		t.Run(fmt.Sprintf("eventTime=%v", eventTime), func(t *testing.T) {
			var want []string
			for v := range uint64(n) {
				ts := int64(runtime.NoTimestamp)
				if eventTime {
					ts = evTime(v)
				}
				want = append(want, fmt.Sprintf("%d@%d", v, ts))
			}
			out := newOutput[string]()
			p := runtime.NewPipeline("process-timestamps")
			s := runtime.From(p, "src", numbers(n))
			if eventTime {
				s = runtime.AssignTimestamps(s, "timestamps", runtime.Monotonic(evTime))
			}
			keyed := operators.KeyBy(s, func(v uint64) uint64 { return v % 3 })
			res := operators.Process(keyed, "show", func(*operators.SetupContext[uint64]) (operators.ProcessFunc[uint64, uint64, string], error) {
				return func(ctx *operators.Context[uint64], v uint64, out runtime.Collector[string]) error {
					out.Collect(fmt.Sprintf("%d@%d", v, ctx.Timestamp()))
					return nil
				}, nil
			})
			runtime.To(res, "sink", newMemSink(out))
			if err := runtime.Run(context.Background(), p, testConfig(t, 2)); err != nil {
				t.Fatal(err)
			}
			check(t, "timestamps", out.records(), want)
		})
	}
}

// timedSource emits 0, 1, … n-1 (subtask i of p: i, i+p, …) in chunks of
// 7, at the event times ts gives, with CollectAt where its collector takes
// times (the source has WithWatermarks) and with Collect where not, as a
// source that knows its records' times (Kafka's record timestamps) does.
type timedSource struct {
	n, next, step uint64
	ts            func(uint64) int64
}

func timedNumbers(n uint64, ts func(uint64) int64) runtime.SourceFactory[uint64] {
	return func() (runtime.Source[uint64], error) { return &timedSource{n: n, ts: ts}, nil }
}

func (s *timedSource) Open(_ context.Context, info runtime.TaskInfo, restored []byte) error {
	s.next, s.step = uint64(info.Subtask), uint64(info.Parallelism)
	if len(restored) == 8 {
		s.next = binary.BigEndian.Uint64(restored)
	}
	return nil
}

func (s *timedSource) Read(_ context.Context, out runtime.Collector[uint64]) error {
	timed, isTimed := out.(runtime.TimestampCollector[uint64])
	for range 7 {
		if s.next >= s.n {
			return runtime.ErrEndOfInput
		}
		if isTimed {
			timed.CollectAt(s.next, s.ts(s.next))
		} else {
			out.Collect(s.next)
		}
		s.next += s.step
	}
	return nil
}

func (s *timedSource) Snapshot() ([]byte, error) {
	return binary.BigEndian.AppendUint64(nil, s.next), nil
}
func (s *timedSource) Close() error { return nil }

// TestWindowOverSourceTimestamps windows by the event times a source gives
// with CollectAt: under a strategy without a Timestamp function they are
// the records' times; with one, the function decides.
func TestWindowOverSourceTimestamps(t *testing.T) {
	const n, keys, size = 2000, 3, 1000
	srcTime := func(v uint64) int64 { return 1_000_000 + int64(v)*7 }
	fnTime := func(v uint64) int64 { return int64(v)*10 + size/2 }
	key := func(v uint64) uint64 { return v % keys }
	for _, tc := range []struct {
		name     string
		strategy runtime.WatermarkStrategy[uint64]
		want     []string
	}{
		{"source times", runtime.WatermarkStrategy[uint64]{}, countWindows(n, key, srcTime, size)},
		{"timestamp function", runtime.Monotonic(fnTime), countWindows(n, key, fnTime, size)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, lateOut := newOutput[string](), newOutput[string]()
			p := runtime.NewPipeline("source-times")
			src := runtime.From(p, "src", timedNumbers(n, srcTime), runtime.WithWatermarks(tc.strategy))
			res, late := countPerWindow(src, keys, size)
			runtime.To(res, "sink", newMemSink(out))
			runtime.To(late, "late-sink", newMemSink(lateOut))
			if err := runtime.Run(context.Background(), p, testConfig(t, 2)); err != nil {
				t.Fatal(err)
			}
			check(t, "windows", out.records(), tc.want)
			check(t, "late", lateOut.records(), nil)
		})
	}
}

// TestRecordWithoutSourceTimestamp checks that a record a source emits
// with Collect under a strategy without a Timestamp function fails the job
// with an error that names the source and says what to do, rather than
// reaching an operator without event time.
func TestRecordWithoutSourceTimestamp(t *testing.T) {
	out := newOutput[string]()
	p := runtime.NewPipeline("no-source-times")
	src := runtime.From(p, "plain-src", numbers(10), runtime.WithWatermarks(runtime.WatermarkStrategy[uint64]{}))
	runtime.To(stamped(src, "stamps"), "sink", newMemSink(out))
	err := runtime.Run(context.Background(), p, testConfig(t, 1))
	if err == nil || !strings.Contains(err.Error(), `"plain-src"`) || !strings.Contains(err.Error(), "CollectAt") {
		t.Fatalf("Run = %v, want an error that names the source and CollectAt", err)
	}
	if got := out.records(); len(got) != 0 {
		t.Fatalf("the sink received %v, want nothing: no record has an event time", got)
	}
}
