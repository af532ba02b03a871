package operators

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/statebackend"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// The data-driven tests run the scripts in testdata/*.txt. A script drives
// one event-time operator step by step, with real state handles and timers
// (state.Timers fired as the runtime fires them) but a watermark and a wall
// clock of its own, so that every firing happens at a known step:
//
//	# comment
//	op tumbling size=10000 [lateness=N] [fn=sum|max|list]   starts a case
//	op sliding size=10000 slide=5000 [lateness=N] [fn=...]
//	op session gap=3000 [lateness=N] [fn=...]
//	op window-join size=10000
//	op interval-join lower=-1000 upper=2000
//	op dedup ttl=5000 [domain=event|processing]
//	add key=a ts=1000 v=3 [side=left|right]   a record (side: joins only)
//	watermark 9999 | watermark max            advance the watermark
//	clock 5000                                advance the wall clock
//	expect a@[0,10000)=7                      an output of the last step
//	expect-late a ts=1000 v=3                 a record in the late stream
//	expect-none                               the last step emitted nothing
//	expect-state key=a n=2                    the key's state holds n entries:
//	                                          windows (open or kept for lateness),
//	                                          join buffers (distinct times, both
//	                                          sides), dedup (0 or 1)
//
// Every output of a step must be expected before the next step (in any
// order: timers of equal time fire in no defined order across keys), and
// every expectation must be met.
//
// Output formats: windows "key@[start,end)=value" (sum: the sum of v; max:
// the record with the largest v, as its v; list: the v's in window order);
// window join "key@[start,end)=(left v,right v)"; interval join
// "key=(left v,right v)"; dedup "key ts=… v=…" for each record let through.

type rec struct {
	Key string
	TS  int64
	V   int64
}

func (r rec) String() string { return fmt.Sprintf("%s ts=%d v=%d", r.Key, r.TS, r.V) }

var recCodec = state.JSON[rec]()

func recTime(r rec) int64 { return r.TS }

func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			runScript(t, f)
		})
	}
}

// driver is one operator under test.
type driver interface {
	add(r rec, right bool)
	watermark(wm int64)
	clock(now int64)
	drain() (out []string, err error)
	stateSize(key string) int
}

func runScript(t *testing.T, path string) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		d       driver
		pending []string
		cases   int
	)
	settle := func(line int) {
		if len(pending) > 0 {
			t.Fatalf("%s:%d: unexpected output %q", path, line, pending)
		}
	}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		cmd, rest, _ := strings.Cut(text, " ")
		rest = strings.TrimSpace(rest)
		if d == nil && cmd != "op" {
			t.Fatalf("%s:%d: %q before the first op", path, line, cmd)
		}
		switch cmd {
		case "expect", "expect-late":
			want := rest
			if cmd == "expect-late" {
				want = "late " + rest
			}
			i := slices.Index(pending, want)
			if i < 0 {
				t.Fatalf("%s:%d: expected %q; the step emitted (besides what was expected) %q", path, line, want, pending)
			}
			pending = slices.Delete(pending, i, i+1)
			continue
		case "expect-none":
			settle(line)
			continue
		case "expect-state":
			a := parseArgs(t, path, line, rest)
			if got, want := d.stateSize(a.str("key", "")), a.int("n"); int64(got) != want {
				t.Fatalf("%s:%d: key %q has %d state entries, want %d", path, line, a.str("key", ""), got, want)
			}
			continue
		}
		settle(line)
		args := parseArgs(t, path, line, rest)
		switch cmd {
		case "op":
			d = newDriver(t, path, line, rest, args)
			cases++
		case "add":
			side := args.str("side", "left")
			d.add(rec{Key: args.str("key", ""), TS: args.int("ts"), V: args.int("v")}, side == "right")
		case "watermark":
			wm := int64(math.MaxInt64)
			if rest != "max" {
				wm = mustInt(t, path, line, rest)
			}
			d.watermark(wm)
		case "clock":
			d.clock(mustInt(t, path, line, rest))
		default:
			t.Fatalf("%s:%d: unknown command %q", path, line, cmd)
		}
		out, err := d.drain()
		if err != nil {
			t.Fatalf("%s:%d: operator failed: %v", path, line, err)
		}
		pending = out
	}
	settle(-1)
	if cases == 0 {
		t.Fatalf("%s: no cases", path)
	}
}

type args struct {
	t    *testing.T
	at   string
	vals map[string]string
}

func parseArgs(t *testing.T, path string, line int, s string) args {
	a := args{t: t, at: fmt.Sprintf("%s:%d", path, line), vals: map[string]string{}}
	for _, f := range strings.Fields(s) {
		if k, v, ok := strings.Cut(f, "="); ok {
			a.vals[k] = v
		}
	}
	return a
}

func (a args) str(k, def string) string {
	if v, ok := a.vals[k]; ok {
		return v
	}
	return def
}

func (a args) int(k string) int64 {
	v, ok := a.vals[k]
	if !ok {
		a.t.Fatalf("%s: missing %s=", a.at, k)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		a.t.Fatalf("%s: %s=%q: %v", a.at, k, v, err)
	}
	return n
}

func mustInt(t *testing.T, path string, line int, s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s:%d: %v", path, line, err)
	}
	return n
}

// harness plays the runtime for one keyed operator with string keys.
type harness[In any] struct {
	scope       *statebackend.Scope[string] // as the runtime holds it, to set the key
	event, proc *statebackend.Timers[string]
	wm, now     int64
	key         func(In) string
	time        func(In) int64 // the event time a record carries
	stamp       stamp
	op          interface{ Process(string, In) }
	out         []string
	err         error
	size        func() int // state entries of the current key
	dropped     int        // records counted through timeEnv.late
}

func (h *harness[In]) stateSize(key string) int {
	h.scope.SetKey(key)
	return h.size()
}

// stamp plays the task's record timestamp (runtime.OperatorContext's).
type stamp struct{ ts int64 }

func (s *stamp) Timestamp() int64      { return s.ts }
func (s *stamp) SetTimestamp(ts int64) { s.ts = ts }

type harnessTimers struct{ event, proc *statebackend.Timers[string] }

func (h harnessTimers) RegisterEventTime(at int64)      { h.event.Register(at) }
func (h harnessTimers) DeleteEventTime(at int64)        { h.event.Delete(at) }
func (h harnessTimers) RegisterProcessingTime(at int64) { h.proc.Register(at) }
func (h harnessTimers) DeleteProcessingTime(at int64)   { h.proc.Delete(at) }

func newHarness[In any](t *testing.T, key func(In) string, time func(In) int64) (*harness[In], timeEnv[string]) {
	b, err := statebackend.Open(statebackend.Config{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	scope, err := statebackend.NewScope(b, statebackend.String)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness[In]{scope: scope, key: key, time: time, wm: runtime.MinWatermark, stamp: stamp{runtime.NoTimestamp}}
	if h.event, err = statebackend.NewTimers(scope, "weir.timers.event"); err != nil {
		t.Fatal(err)
	}
	if h.proc, err = statebackend.NewTimers(scope, "weir.timers.processing"); err != nil {
		t.Fatal(err)
	}
	env := timeEnv[string]{
		name:      "test",
		scope:     (*state.Scope[string])(scope),
		timers:    harnessTimers{h.event, h.proc},
		watermark: func() int64 { return h.wm },
		now:       func() int64 { return h.now },
		fail:      func(err error) { h.err = err },
		late:      func(n int) { h.dropped += n },
		stamps:    &h.stamp,
	}
	return h, env
}

func (h *harness[In]) process(in In) {
	k := h.key(in)
	h.scope.SetKey(k)
	h.stamp.ts = h.time(in)
	h.op.Process(k, in)
}

func (h *harness[In]) watermark(wm int64) {
	if wm <= h.wm {
		return // as the runtime: watermarks only advance
	}
	h.wm = wm
	if th, ok := h.op.(runtime.TimerHandler[string]); ok {
		h.event.Fire(wm, func(k string, at int64) {
			h.stamp.ts = at // as runtime.keyedInstance
			th.OnTimer(k, runtime.Timer{At: at, Domain: runtime.EventTime})
		})
	}
	// As runtime.keyedInstance: OnWatermark runs after the timers.
	if wh, ok := h.op.(runtime.WatermarkHandler); ok {
		wh.OnWatermark(wm)
	}
}

func (h *harness[In]) clock(now int64) {
	h.now = now
	if th, ok := h.op.(runtime.TimerHandler[string]); ok {
		h.proc.Fire(now, func(k string, at int64) {
			h.stamp.ts = runtime.NoTimestamp
			th.OnTimer(k, runtime.Timer{At: at, Domain: runtime.ProcessingTime})
		})
	}
}

func (h *harness[In]) drain() ([]string, error) {
	out := h.out
	h.out = nil
	return out, h.err
}

func (h *harness[In]) collect(s string) { h.out = append(h.out, s) }

// recDriver drives an operator whose input is rec.
type recDriver struct{ *harness[rec] }

func (d recDriver) add(r rec, _ bool) { d.process(r) }

// joinDriver drives a join.
type joinDriver struct{ *harness[either[rec, rec]] }

func (d joinDriver) add(r rec, right bool) {
	if right {
		d.process(either[rec, rec]{Right: r, IsRight: true})
	} else {
		d.process(either[rec, rec]{Left: r})
	}
}

func newDriver(t *testing.T, path string, line int, spec string, a args) driver {
	kind, _, _ := strings.Cut(spec, " ")
	at := fmt.Sprintf("%s:%d", path, line)
	switch kind {
	case "tumbling", "sliding", "session":
		var cfg windowConfig
		switch kind {
		case "tumbling":
			cfg = windowConfig{kind: slidingWindows, size: a.int("size"), slide: a.int("size")}
		case "sliding":
			cfg = windowConfig{kind: slidingWindows, size: a.int("size"), slide: a.int("slide")}
		case "session":
			cfg = windowConfig{kind: sessionWindows, gap: a.int("gap")}
		}
		if _, ok := a.vals["lateness"]; ok {
			cfg.lateness = a.int("lateness")
		}
		h, env := newHarness(t, func(r rec) string { return r.Key }, recTime)
		switch fn := a.str("fn", "sum"); fn {
		case "sum":
			h.op = openWindow(t, h, env, cfg, contents[string, rec, int64, string]{
				add:   func(acc int64, r rec, _ bool) int64 { return acc + r.V },
				merge: func(a, b int64) int64 { return a + b },
				emit: func(ctx *WindowContext[string], acc int64, out runtime.Collector[string]) error {
					out.Collect(fmt.Sprintf("%s@%v=%d", ctx.Key(), ctx.Window(), acc))
					return nil
				},
				codec: state.Int64,
			})
		case "max":
			h.op = openWindow(t, h, env, cfg, contents[string, rec, rec, string]{
				add: func(acc, r rec, first bool) rec {
					if first || r.V > acc.V {
						return r
					}
					return acc
				},
				merge: func(a, b rec) rec {
					if b.V > a.V {
						return b
					}
					return a
				},
				emit: func(ctx *WindowContext[string], m rec, out runtime.Collector[string]) error {
					out.Collect(fmt.Sprintf("%s@%v=%d", ctx.Key(), ctx.Window(), m.V))
					return nil
				},
				codec: recCodec,
			})
		case "list":
			h.op = openWindow(t, h, env, cfg, contents[string, rec, []rec, string]{
				add:   func(l []rec, r rec, _ bool) []rec { return append(l, r) },
				merge: func(a, b []rec) []rec { return append(slices.Clip(a), b...) },
				emit: func(ctx *WindowContext[string], l []rec, out runtime.Collector[string]) error {
					vs := make([]string, len(l))
					for i, r := range l {
						vs[i] = strconv.FormatInt(r.V, 10)
					}
					out.Collect(fmt.Sprintf("%s@%v=[%s]", ctx.Key(), ctx.Window(), strings.Join(vs, " ")))
					return nil
				},
				codec: listCodec[rec]{recCodec},
			})
		default:
			t.Fatalf("%s: unknown fn=%s", at, fn)
		}
		return recDriver{h}
	case "window-join", "interval-join":
		on := JoinOn[string, rec, rec]{LeftKey: func(r rec) string { return r.Key }, RightKey: func(r rec) string { return r.Key },
			LeftCodec: recCodec, RightCodec: recCodec}
		side := func(e either[rec, rec]) rec {
			if e.IsRight {
				return e.Right
			}
			return e.Left
		}
		h, env := newHarness(t, func(e either[rec, rec]) string { return side(e).Key }, func(e either[rec, rec]) int64 { return side(e).TS })
		out := runtime.CollectorFunc[string](h.collect)
		if kind == "window-join" {
			op := &windowJoinOp[string, rec, rec, string]{joinBase: joinBase[string, rec, rec, string]{on: on}, size: a.int("size"), join: func(k string, w TimeWindow, l, r rec) string {
				return fmt.Sprintf("%s@%v=(%d,%d)", k, w, l.V, r.V)
			}}
			if err := op.open(env, out); err != nil {
				t.Fatal(err)
			}
			h.op, h.size = op, func() int { return op.left.Len() + op.right.Len() }
		} else {
			op := &intervalJoinOp[string, rec, rec, string]{joinBase: joinBase[string, rec, rec, string]{on: on}, lower: a.int("lower"), upper: a.int("upper"), join: func(k string, l, r rec) string {
				return fmt.Sprintf("%s=(%d,%d)", k, l.V, r.V)
			}}
			if err := op.open(env, out); err != nil {
				t.Fatal(err)
			}
			h.op, h.size = op, func() int { return op.left.Len() + op.right.Len() }
		}
		return joinDriver{h}
	case "dedup":
		h, env := newHarness(t, func(r rec) string { return r.Key }, recTime)
		op := &dedupOp[string, rec]{ttl: a.int("ttl")}
		switch dom := a.str("domain", "processing"); dom {
		case "event":
			op.eventTime = true
		case "processing":
		default:
			t.Fatalf("%s: unknown domain=%s", at, dom)
		}
		if err := op.open(env, runtime.CollectorFunc[rec](func(r rec) { h.collect(r.String()) })); err != nil {
			t.Fatal(err)
		}
		h.op, h.size = op, func() int {
			if _, ok := op.expiry.Get(); ok {
				return 1
			}
			return 0
		}
		return recDriver{h}
	}
	t.Fatalf("%s: unknown op %q", at, kind)
	return nil
}

func openWindow[S any](t *testing.T, h *harness[rec], env timeEnv[string], cfg windowConfig, c contents[string, rec, S, string]) interface{ Process(string, rec) } {
	c.tags = []AnyOutputTag{NewOutputTag[rec]("late")} // as buildWindow
	lateOut := 0
	out := runtime.CollectorFunc[sideEnvelope[string]](func(e sideEnvelope[string]) {
		if e.side.tag == 1 {
			// Every late record is counted for weir_late_records_dropped_total.
			if lateOut++; h.dropped != lateOut {
				t.Errorf("late record %s: %d counted as dropped, want %d", e.side.v.(rec), h.dropped, lateOut)
			}
			h.collect("late " + e.side.v.(rec).String())
		} else {
			h.collect(e.main)
		}
	})
	if cfg.kind == sessionWindows {
		op := &sessionOp[string, rec, S, string]{windowBase: windowBase[string, rec, S, string]{cfg: cfg, c: c}}
		if err := op.open(env, out); err != nil {
			t.Fatal(err)
		}
		h.size = func() int {
			ps, _ := op.panes.Get()
			return len(ps)
		}
		return op
	}
	op := &fixedWindowOp[string, rec, S, string]{windowBase: windowBase[string, rec, S, string]{cfg: cfg, c: c}}
	if err := op.open(env, out); err != nil {
		t.Fatal(err)
	}
	h.size = func() int {
		n := 0
		for ns := range op.windows.Namespaces() {
			if _, ok := op.windows.Get(ns); ok {
				n++
			}
		}
		return n
	}
	return op
}
