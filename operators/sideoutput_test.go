package operators_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// sideOutputStream routes the numbers of s by a keyed process function:
// multiples of 5 to the side output "fives" (strings), other multiples of
// 7 to "sevens" (numbers), the rest to the main stream, plus one main
// record per key once its state holds all its n/keys records. It returns
// the three streams merged, each record prefixed by its stream's name.
func sideOutputStream(s runtime.Stream[uint64], n, keys uint64) runtime.Stream[string] {
	fives := operators.NewOutputTag[string]("fives")
	sevens := operators.NewOutputTag[uint64]("sevens")
	keyed := operators.KeyBy(s, func(v uint64) string { return "key-" + strconv.FormatUint(v%keys, 10) })
	main := operators.Process(keyed, "route", func(sc *operators.SetupContext[string]) (operators.ProcessFunc[string, uint64, string], error) {
		seen, err := state.NewMap(sc.Scope, "seen", state.Uint64, state.Bool)
		if err != nil {
			return nil, err
		}
		return func(ctx *operators.Context[string], v uint64, out runtime.Collector[string]) error {
			if v%keys != mustKey(ctx.Key()) {
				return fmt.Errorf("record %d processed with key %q", v, ctx.Key())
			}
			if _, dup := seen.Get(v); dup {
				return fmt.Errorf("record %d seen twice", v)
			}
			seen.Put(v, true)
			switch {
			case v%5 == 0:
				fives.Emit(ctx, strconv.FormatUint(v, 10))
			case v%7 == 0:
				sevens.Emit(ctx, v)
			default:
				out.Collect("main " + strconv.FormatUint(v, 10))
			}
			if uint64(seen.Len()) == n/keys {
				out.Collect("complete " + ctx.Key())
			}
			return nil
		}, nil
	}, operators.WithSideOutputs(fives, sevens))
	f := operators.Map(operators.SideOutput(main, fives), func(v string) string { return "five " + v })
	sv := operators.Map(operators.SideOutput(main, sevens), func(v uint64) string { return "seven " + strconv.FormatUint(v, 10) })
	return runtime.Merge(main, "all", f, sv)
}

func wantSideOutputs(n, keys uint64) []string {
	var want []string
	for v := range n {
		switch {
		case v%5 == 0:
			want = append(want, fmt.Sprint("five ", v))
		case v%7 == 0:
			want = append(want, fmt.Sprint("seven ", v))
		default:
			want = append(want, fmt.Sprint("main ", v))
		}
	}
	for k := range keys {
		want = append(want, fmt.Sprint("complete key-", k))
	}
	return want
}

// TestSideOutputsExactlyOnce routes records to two side outputs and the
// main stream at parallelism 1 and 3, interrupts the job in the middle
// (stop, or a crash before the sink commits) and restores it: the three
// streams together are committed exactly once.
func TestSideOutputsExactlyOnce(t *testing.T) {
	const n, keys = 3000, 6
	want := wantSideOutputs(n, keys)
	for _, par := range []int{1, 3} {
		for _, mode := range []string{"uninterrupted", "stop", "crash"} {
			t.Run(fmt.Sprintf("parallelism=%d/%s", par, mode), func(t *testing.T) {
				dir := t.TempDir()
				out := newOutput[string]()
				rj := restartJob{name: "side-outputs", par: par, n: n, build: func(p *runtime.Pipeline, src runtime.SourceFactory[uint64], out *output[string]) {
					runtime.To(sideOutputStream(runtime.From(p, "src", src), n, keys), "sink", newMemSink(out))
				}}
				if mode == "uninterrupted" {
					r := rj.start(t, dir, out, 0, nil)
					err := r.job.Wait()
					r.cancel()
					if err != nil {
						t.Fatal(err)
					}
					check(t, "output", out.records(), want)
					return
				}
				if out1 := rj.interrupt(t, dir, out, n/2, mode); mode == "stop" && (out1 == 0 || out1 >= len(want)) {
					t.Fatalf("first run committed %d of %d records: not interrupted in the middle", out1, len(want))
				}
				rj.resume(t, dir, out)
				check(t, "output", out.records(), want)
			})
		}
	}
}

// TestTimerSideOutput emits to a side output from a timer: each key's
// event-time timer, set by its first record, reports the key there when
// the end of the input fires it.
func TestTimerSideOutput(t *testing.T) {
	const n, keys = 200, 4
	fired := operators.NewOutputTag[string]("fired")
	p := runtime.NewPipeline("timer-side")
	s := runtime.From(p, "src", numbers(n), runtime.WithWatermarks(runtime.Monotonic(func(v uint64) int64 { return int64(v) })))
	keyed := operators.KeyBy(s, func(v uint64) string { return "key-" + strconv.FormatUint(v%keys, 10) })
	main := operators.ProcessWithTimers(keyed, "timers", func(*operators.SetupContext[string]) (operators.TimedProcessFunc[string, uint64, string], operators.TimerFunc[string, string], error) {
		return func(ctx *operators.TimerContext[string], v uint64, out runtime.Collector[string]) error {
				ctx.Timers().RegisterEventTime(n) // one per key: idempotent
				return nil
			}, func(ctx *operators.TimerContext[string], tm runtime.Timer, out runtime.Collector[string]) error {
				fired.Emit(ctx, ctx.Key())
				out.Collect("main " + ctx.Key())
				return nil
			}, nil
	}, operators.WithSideOutputs(fired))
	all := runtime.Merge(main, "all", operators.Map(operators.SideOutput(main, fired), func(k string) string { return "fired " + k }))
	out := newOutput[string]()
	runtime.To(all, "sink", newMemSink(out))
	if err := runtime.Run(context.Background(), p, testConfig(t, 2)); err != nil {
		t.Fatal(err)
	}
	var want []string
	for k := range keys {
		want = append(want, fmt.Sprint("fired key-", k), fmt.Sprint("main key-", k))
	}
	check(t, "output", out.records(), want)
}

// TestUndeclaredSideOutput checks both misuses of a tag: SideOutput on a
// stream whose operator did not declare it is a pipeline error, and a
// function emitting to an undeclared tag fails the job; neither panics.
func TestUndeclaredSideOutput(t *testing.T) {
	declared := operators.NewOutputTag[uint64]("declared")
	other := operators.NewOutputTag[uint64]("other")
	route := func(tag *operators.OutputTag[uint64]) func(*operators.SetupContext[uint64]) (operators.ProcessFunc[uint64, uint64, uint64], error) {
		return func(*operators.SetupContext[uint64]) (operators.ProcessFunc[uint64, uint64, uint64], error) {
			return func(ctx *operators.Context[uint64], v uint64, out runtime.Collector[uint64]) error {
				tag.Emit(ctx, v)
				return nil
			}, nil
		}
	}
	t.Run("SideOutput", func(t *testing.T) {
		p := runtime.NewPipeline("undeclared")
		s := runtime.From(p, "src", numbers(10))
		main := operators.Process(operators.KeyBy(s, func(v uint64) uint64 { return v }), "proc", route(declared), operators.WithSideOutputs(declared))
		plain := operators.Map(main, func(v uint64) uint64 { return v })
		runtime.To(operators.SideOutput(main, other), "a", newMemSink(newOutput[uint64]()))
		runtime.To(operators.SideOutput(plain, declared), "b", newMemSink(newOutput[uint64]()))
		err := p.Err()
		if !errors.Is(err, runtime.ErrInvalidPipeline) || !errors.Is(err, operators.ErrUndeclaredSideOutput) ||
			!strings.Contains(err.Error(), `"other"`) || !strings.Contains(err.Error(), `"proc.main"`) {
			t.Fatalf("Err = %v, want ErrUndeclaredSideOutput naming the tag and the stream", err)
		}
	})
	t.Run("Emit", func(t *testing.T) {
		p := runtime.NewPipeline("undeclared")
		s := runtime.From(p, "src", numbers(10))
		main := operators.Process(operators.KeyBy(s, func(v uint64) uint64 { return v }), "proc", route(other), operators.WithSideOutputs(declared))
		runtime.To(main, "sink", newMemSink(newOutput[uint64]()))
		err := runtime.Run(context.Background(), p, testConfig(t, 1))
		if !errors.Is(err, operators.ErrUndeclaredSideOutput) || !strings.Contains(err.Error(), `"other"`) {
			t.Fatalf("Run = %v, want ErrUndeclaredSideOutput naming the tag", err)
		}
	})
	t.Run("duplicate names", func(t *testing.T) {
		p := runtime.NewPipeline("dup")
		s := runtime.From(p, "src", numbers(10))
		operators.Process(operators.KeyBy(s, func(v uint64) uint64 { return v }), "proc", route(declared),
			operators.WithSideOutputs(declared, operators.NewOutputTag[string]("declared")))
		if err := p.Err(); err == nil || !strings.Contains(err.Error(), "two side outputs") {
			t.Fatalf("Err = %v, want two side outputs with one name rejected", err)
		}
	})
}

// TestWindowSideOutput emits to a side output from a WindowFunc, next to
// the late stream, which is the window's side output too: each window's
// count goes to the results, its start to the side output "starts".
func TestWindowSideOutput(t *testing.T) {
	const n, size = 100, 10
	starts := operators.NewOutputTag[int64]("starts")
	p := runtime.NewPipeline("window-side")
	s := runtime.From(p, "src", numbers(n), runtime.WithWatermarks(runtime.Monotonic(func(v uint64) int64 { return int64(v) })))
	keyed := operators.KeyBy(s, func(v uint64) uint64 { return v % 2 })
	win := operators.Window(keyed, "count", operators.Tumbling(size*time.Millisecond))
	results, late := operators.WindowProcess(win, func(ctx *operators.WindowContext[uint64], recs []uint64, out runtime.Collector[string]) error {
		if ctx.Key() == 0 {
			starts.Emit(ctx, ctx.Window().Start)
		}
		out.Collect(fmt.Sprintf("%d@%v=%d", ctx.Key(), ctx.Window(), len(recs)))
		return nil
	}, nil, operators.WithSideOutputs(starts))
	all := runtime.Merge(results, "all",
		operators.Map(operators.SideOutput(results, starts), func(v int64) string { return fmt.Sprint("start ", v) }),
		operators.Map(late, func(v uint64) string { return fmt.Sprint("late ", v) }))
	out := newOutput[string]()
	runtime.To(all, "sink", newMemSink(out))
	if err := runtime.Run(context.Background(), p, testConfig(t, 2)); err != nil {
		t.Fatal(err)
	}
	var want []string
	for start := int64(0); start < n; start += size {
		w := operators.TimeWindow{Start: start, End: start + size}
		want = append(want, fmt.Sprintf("0@%v=%d", w, size/2), fmt.Sprintf("1@%v=%d", w, size/2), fmt.Sprint("start ", start))
	}
	check(t, "output", out.records(), want)
}
