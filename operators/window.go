package operators

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// Windows says how records are grouped into event-time windows: Tumbling,
// Sliding or Session.
type Windows struct {
	kind        windowKind
	size, slide time.Duration // tumbling: slide == size
	gap         time.Duration
}

type windowKind uint8

const (
	slidingWindows windowKind = iota // includes tumbling
	sessionWindows
)

// Tumbling returns fixed, non-overlapping windows of the given size, aligned
// to the epoch: [0,size), [size,2·size), …
func Tumbling(size time.Duration) Windows {
	return Windows{kind: slidingWindows, size: size, slide: size}
}

// Sliding returns windows of the given size starting every slide (hopping
// windows), aligned to the epoch: a record belongs to size/slide windows.
func Sliding(size, slide time.Duration) Windows {
	return Windows{kind: slidingWindows, size: size, slide: slide}
}

// Session returns per-key windows that close after gap without records: a
// record at t opens [t, t+gap), and windows that overlap merge. A record
// exactly gap after the last one starts a new session: so a session that
// fired (the watermark reached its end-1) can never merge with a record that
// is not late, and streaming sessions are what a batch computation gives.
func Session(gap time.Duration) Windows {
	return Windows{kind: sessionWindows, gap: gap}
}

// WindowedStream is a keyed stream grouped into windows, to be evaluated by
// WindowAggregate, WindowReduce or WindowProcess. Create it with Window.
type WindowedStream[K comparable, T any] struct {
	in       runtime.KeyedStream[K, T]
	name     string
	windows  Windows
	lateness time.Duration
	// preAggregate folds records into accumulators before the partition
	// by key; see PreAggregate.
	preAggregate bool
}

// Window groups the records of s into windows of event time, by the
// timestamp each record carries (runtime.OperatorContext.Timestamp): s
// must have event time (runtime.AssignTimestamps or the source's
// runtime.WithWatermarks upstream), or the pipeline fails with
// ErrNoEventTime. name names the window operator, whose state holds the
// open windows.
//
// A window fires (emits its result) when the watermark reaches its last
// millisecond, End-1; the end of a bounded input fires every window. The
// records a window emits carry End-1 as their timestamp (as Flink's), so a
// window of windows groups them by the window they came from.
func Window[K comparable, T any](s runtime.KeyedStream[K, T], name string, windows Windows) WindowedStream[K, T] {
	needEventTime(s.Stream, fmt.Sprintf("window %q", name))
	return WindowedStream[K, T]{in: s, name: name, windows: windows}
}

// AllowedLateness keeps each window's state for d after it fired. A record
// for a fired window that arrives while the watermark is below
// End-1+d updates the window and fires it again (the result is emitted once
// more, updated); the state is dropped when the watermark reaches End-1+d.
// A record all of whose windows are gone is late: it goes to the late
// stream. The default is zero: records are late once their windows fired.
func (w WindowedStream[K, T]) AllowedLateness(d time.Duration) WindowedStream[K, T] {
	if d < 0 {
		w.in.Pipeline().Fail(fmt.Errorf("window %q: negative allowed lateness %v", w.name, d))
		d = 0
	}
	w.lateness = d
	return w
}

// WindowAggregateFunc is an incremental window aggregation. Add folds a
// record into a window's accumulator (first is true for the window's first
// record, when acc is the zero value). Merge combines the accumulators of
// session windows that a record joins into one; it is required for session
// windows only. Result derives the emitted record, given the key and the
// window.
type WindowAggregateFunc[K comparable, In, Acc, Out any] struct {
	Add    func(acc Acc, rec In, first bool) Acc
	Merge  func(a, b Acc) Acc
	Result func(key K, w TimeWindow, acc Acc) Out
}

// WindowResult is the result of WindowReduce: a key's reduced value in one
// window.
type WindowResult[K comparable, V any] struct {
	Key    K
	Window TimeWindow
	Value  V
}

// WindowFunc is a full-window function: it receives all records of the
// window at once when the window fires (in arrival order; for merged
// sessions, the merged windows' records in window order) and may emit any
// number of records, to out and to side outputs (OutputTag.Emit with ctx).
// It must not keep recs.
type WindowFunc[K comparable, T, Out any] func(ctx *WindowContext[K], recs []T, out runtime.Collector[Out]) error

// WindowContext is what a WindowFunc gets with each window that fires: its
// key (Key) and the window (Window), the clocks and the side outputs. It
// is valid only during the call.
type WindowContext[K comparable] struct {
	Context[K]
	window TimeWindow
}

// Window returns the window that fires.
func (c *WindowContext[K]) Window() TimeWindow { return c.window }

// WindowAggregate evaluates w incrementally: per key and window only the
// accumulator is kept (accs encodes it; nil selects the built-in codec). It
// returns the results and the late records, which are dropped unless routed
// somewhere (for example to a sink).
func WindowAggregate[K comparable, T, Acc, Out any](w WindowedStream[K, T], agg WindowAggregateFunc[K, T, Acc, Out], accs state.Codec[Acc]) (results runtime.Stream[Out], late runtime.Stream[T]) {
	p := w.in.Pipeline()
	accs = codecOr(p, accs, fmt.Sprintf("window %q: accumulators", w.name))
	if agg.Add == nil || agg.Result == nil {
		p.Fail(fmt.Errorf("window %q: WindowAggregateFunc needs Add and Result", w.name))
	}
	if w.windows.kind == sessionWindows && agg.Merge == nil {
		p.Fail(fmt.Errorf("window %q: session windows need WindowAggregateFunc.Merge", w.name))
	}
	c := contents[K, T, Acc, Out]{
		add:   agg.Add,
		merge: agg.Merge,
		emit: func(ctx *WindowContext[K], acc Acc, out runtime.Collector[Out]) error {
			out.Collect(agg.Result(ctx.key, ctx.window, acc))
			return nil
		},
		codec: accs,
	}
	if w.preAggregate {
		return buildPreAggregated(w, c)
	}
	return buildWindow(w, c)
}

// WindowReduce evaluates w with a reduce function: the first record of a
// window is its initial value, and fn folds in the others (it must be
// associative for session windows, whose values are combined with it too).
// values encodes the reduced value; nil selects the built-in codec.
func WindowReduce[K comparable, T any](w WindowedStream[K, T], fn func(acc, rec T) T, values state.Codec[T]) (results runtime.Stream[WindowResult[K, T]], late runtime.Stream[T]) {
	return WindowAggregate(w, WindowAggregateFunc[K, T, T, WindowResult[K, T]]{
		Add: func(acc, rec T, first bool) T {
			if first {
				return rec
			}
			return fn(acc, rec)
		},
		Merge: fn,
		Result: func(key K, win TimeWindow, v T) WindowResult[K, T] {
			return WindowResult[K, T]{Key: key, Window: win, Value: v}
		},
	}, values)
}

// WindowProcess evaluates w with a full-window function: the window's
// records are kept (recs encodes one; nil selects the built-in codec) and
// handed to fn when the window fires. Options declare the side outputs fn
// emits to (WithSideOutputs); SideOutput(results, tag) returns them.
func WindowProcess[K comparable, T, Out any](w WindowedStream[K, T], fn WindowFunc[K, T, Out], recs state.Codec[T], opts ...ProcessOption) (results runtime.Stream[Out], late runtime.Stream[T]) {
	p := w.in.Pipeline()
	recs = codecOr(p, recs, fmt.Sprintf("window %q: records", w.name))
	if fn == nil {
		p.Fail(fmt.Errorf("window %q: nil window function", w.name))
	}
	if w.preAggregate {
		p.Fail(fmt.Errorf("window %q: PreAggregate needs an incremental aggregation (WindowAggregate, WindowReduce), not WindowProcess", w.name))
	}
	return buildWindow(w, contents[K, T, []T, Out]{
		add:   func(l []T, rec T, _ bool) []T { return append(l, rec) },
		merge: func(a, b []T) []T { return append(slices.Clip(a), b...) },
		emit:  fn,
		codec: listCodec[T]{elems: recs},
		tags:  newProcessConfig(opts).tags,
	})
}

// contents is what a window keeps (S) and how it becomes output.
type contents[K comparable, T, S, Out any] struct {
	add   func(s S, rec T, first bool) S
	merge func(a, b S) S
	emit  func(ctx *WindowContext[K], s S, out runtime.Collector[Out]) error
	codec state.Codec[S]
	// tags are the side outputs emit uses (WindowProcess).
	tags []AnyOutputTag
}

// lateRecord is the side record of a late record: the late stream is the
// window operator's first side output (see buildWindow).
func lateRecord[T any](rec T) sideRecord { return sideRecord{tag: 1, v: rec} }

func buildWindow[K comparable, T, S, Out any](w WindowedStream[K, T], c contents[K, T, S, Out]) (runtime.Stream[Out], runtime.Stream[T]) {
	p := w.in.Pipeline()
	cfg := windowConfig{kind: w.windows.kind}
	switch w.windows.kind {
	case sessionWindows:
		cfg.gap = millis(p, fmt.Sprintf("window %q: session gap", w.name), w.windows.gap)
	default:
		cfg.size = millis(p, fmt.Sprintf("window %q: size", w.name), w.windows.size)
		cfg.slide = millis(p, fmt.Sprintf("window %q: slide", w.name), w.windows.slide)
	}
	if w.lateness > 0 {
		cfg.lateness = w.lateness.Milliseconds()
	}
	// The late records are a side output, tagged 1 (lateRecord).
	lateTag := NewOutputTag[T]("late")
	c.tags = append([]AnyOutputTag{lateTag}, c.tags...)
	if !checkTags(p, w.name, c.tags) {
		c.tags = c.tags[:1]
	}
	raw := runtime.ApplyKeyed(w.in, w.name, func() runtime.KeyedOperator[K, T, sideEnvelope[Out]] {
		if cfg.kind == sessionWindows {
			return &sessionOp[K, T, S, Out]{windowBase: windowBase[K, T, S, Out]{cfg: cfg, c: c}}
		}
		return &fixedWindowOp[K, T, S, Out]{windowBase: windowBase[K, T, S, Out]{cfg: cfg, c: c}}
	})
	results := splitSides(raw, w.name, ".results", c.tags)
	return results, SideOutput(results, lateTag)
}

// splitOp emits what pick selects.
type splitOp[In, Out any] struct {
	runtime.OperatorBase
	pick func(In) (Out, bool)
	out  runtime.Collector[Out]
}

func (o *splitOp[In, Out]) Open(_ *runtime.OperatorContext, out runtime.Collector[Out]) error {
	o.out = out
	return nil
}

func (o *splitOp[In, Out]) Process(rec In) {
	if v, ok := o.pick(rec); ok {
		o.out.Collect(v)
	}
}

type windowConfig struct {
	kind        windowKind
	size, slide int64 // ms
	gap         int64
	lateness    int64
}

// fixedWindowOp is the operator of tumbling and sliding windows. Their
// windows are the same for every key, so the state is organized by window:
// a state.Namespaced whose namespace is the window start holds each key's
// contents of that window. A record updates its windows (one lookup each);
// a watermark fires each window that it completes by walking the window's
// keys, and drops the window's state in one step once its allowed lateness
// has passed. No timers: their cost per key and window (register, fire,
// delete, each persisted) was most of the cost of a window.
type fixedWindowOp[K comparable, T, S, Out any] struct {
	windowBase[K, T, S, Out]
	windows *state.Namespaced[K, S]
	// fired is the last watermark the operator acted on: window [s, e)
	// fired iff e-1 <= fired. It is checkpointed as operator state, as the
	// task's watermark is not restored until after Open (and not at all
	// when the operator shares a task with its source).
	fired int64
}

func (o *fixedWindowOp[K, T, S, Out]) Open(ctx *runtime.KeyedContext[K], out runtime.Collector[sideEnvelope[Out]]) error {
	if err := o.open(envOf(ctx), out); err != nil {
		return err
	}
	switch len(ctx.Restored) {
	case 0:
	case 8:
		o.fired = int64(binary.BigEndian.Uint64(ctx.Restored))
	default:
		return fmt.Errorf("window %q: %w: restored state of %d bytes", ctx.Operator, state.ErrCorruptValue, len(ctx.Restored))
	}
	return nil
}

func (o *fixedWindowOp[K, T, S, Out]) open(env timeEnv[K], out runtime.Collector[sideEnvelope[Out]]) error {
	o.setOutput(env, out)
	o.fired = runtime.MinWatermark
	var err error
	// NB: not "windows", the name of the per-key panes (sessions, and all
	// windows before): a checkpoint holding those must not be read as this.
	o.windows, err = state.NewNamespaced(env.scope, "windows-by-start", o.c.codec)
	if err == nil {
		// A record belongs to size/slide windows, the newest ones when
		// the input is in order.
		o.windows.SetPrefetch(int((o.cfg.size + o.cfg.slide - 1) / o.cfg.slide))
	}
	return err
}

// Snapshot keeps the watermark up to which windows fired.
func (o *fixedWindowOp[K, T, S, Out]) Snapshot(uint64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(nil, uint64(o.fired)), nil
}

func (o *fixedWindowOp[K, T, S, Out]) Process(key K, rec T) {
	ts, ok := o.env.timestamp()
	if !ok {
		return
	}
	// NB: lateness is judged by fired, not by the task's watermark, which
	// may be ahead of it (records that chained operators emitted before
	// the watermark, handed over as it arrives, precede it: the results of
	// a window feeding another) or behind it (just restored, in a source's
	// task).
	wm := o.fired
	added := false
	size, slide := o.cfg.size, o.cfg.slide
	add := func(s S, ok bool) S { return o.c.add(s, rec, !ok) }
	for start := floorTo(ts, slide); start > ts-size; start -= slide {
		end := start + size
		if o.isLate(end, wm) {
			continue
		}
		added = true
		acc := o.windows.Update(start, add)
		if end-1 <= o.fired { // fired before: fire again, updated
			o.fire(key, start, end, acc)
		}
	}
	if !added {
		o.env.droppedLate()
		o.out.Collect(sideEnvelope[Out]{side: lateRecord(rec)})
	}
}

// OnWatermark fires, in window order, the windows that wm completes (one
// result per key), then drops those past their allowed lateness.
func (o *fixedWindowOp[K, T, S, Out]) OnWatermark(wm int64) {
	if wm <= o.fired {
		return
	}
	for start := range o.windows.Namespaces() {
		end := start + o.cfg.size
		if end-1 > wm {
			break
		}
		if end-1 > o.fired {
			o.windows.All(start, func(key K, acc S) { o.fire(key, start, end, acc) })
		}
		if o.isLate(end, wm) {
			o.windows.Drop(start)
		}
	}
	o.fired = wm
}

// sessionOp is the operator of session windows, which are per key. Per key,
// its state is one value: the key's open sessions (panes) sorted by start,
// each with its end and contents. A key has few open sessions, so one small
// slice per key costs one state lookup per record.
//
// Timers: every open session has a pending event-time timer at or before
// its End-1. A new session registers one at End-1; a session that grows
// (a record extends it, or sessions merge) keeps the timers it has, since
// each is at or before its new End-1, and when one fires before End-1,
// OnTimer registers the next at End-1. So a key's timers follow its
// sessions' gaps, not its records: one per record cost most of a session
// window (measured on Nexmark q11: register and fire were 45% of its
// profile). When a session fires, with allowed lateness L a timer at
// End-1+L drops it (with L = 0 the firing timer does both). A timer carries
// only its time: OnTimer fires the key's sessions whose last millisecond is
// the timer's, re-arms those that end later and drops those past their
// lateness.
type sessionOp[K comparable, T, S, Out any] struct {
	windowBase[K, T, S, Out]
	panes *state.Value[K, []pane[S]]
}

// pane is one open window of a key.
type pane[S any] struct {
	Start, End int64
	Contents   S
}

func (o *sessionOp[K, T, S, Out]) Open(ctx *runtime.KeyedContext[K], out runtime.Collector[sideEnvelope[Out]]) error {
	return o.open(envOf(ctx), out)
}

func (o *sessionOp[K, T, S, Out]) open(env timeEnv[K], out runtime.Collector[sideEnvelope[Out]]) error {
	o.setOutput(env, out)
	var err error
	o.panes, err = state.NewValue(env.scope, "windows", state.Codec[[]pane[S]](paneCodec[S]{o.c.codec}))
	return err
}

// windowBase is what the window operators share: configuration, output
// and firing.
type windowBase[K comparable, T, S, Out any] struct {
	runtime.OperatorBase
	cfg windowConfig
	c   contents[K, T, S, Out]

	env     timeEnv[K]
	out     runtime.Collector[sideEnvelope[Out]]
	results runtime.Collector[Out] // a mainCollector, boxed once
	ctx     WindowContext[K]       // of the window firing
}

func (o *windowBase[K, T, S, Out]) setOutput(env timeEnv[K], out runtime.Collector[sideEnvelope[Out]]) {
	var sides *sideOutputs
	o.results, sides = newOutputs[Out](out, o.c.tags, env.name, env.fail)
	o.env, o.out = env, out
	o.ctx = WindowContext[K]{Context: Context[K]{clock: env, sides: sides}}
}

// isLate reports whether a window ending at end is gone (or would be
// dropped at once) at watermark wm.
func (o *windowBase[K, T, S, Out]) isLate(end, wm int64) bool {
	return addSat(end-1, o.cfg.lateness) <= wm
}

// fire emits the result of key's window [start, end) holding contents,
// with the window's last millisecond as its timestamp.
func (o *windowBase[K, T, S, Out]) fire(key K, start, end int64, contents S) {
	w := TimeWindow{start, end}
	o.env.stamps.SetTimestamp(end - 1)
	o.ctx.key, o.ctx.window = key, w
	if err := o.c.emit(&o.ctx, contents, o.results); err != nil {
		o.env.fail(fmt.Errorf("window %q: key %v, window %v: %w", o.env.name, key, w, err))
	}
}

func (o *sessionOp[K, T, S, Out]) Process(key K, rec T) {
	if ts, ok := o.env.timestamp(); ok {
		o.addToSession(key, rec, ts, o.env.watermark())
	}
}

// paneIndex returns the index of the first pane that starts at or after
// start. A key has few panes: a linear scan beats a binary search.
func paneIndex[S any](panes []pane[S], start int64) int {
	for i := range panes {
		if panes[i].Start >= start {
			return i
		}
	}
	return len(panes)
}

// registerTimers sets the timers of a session ending at end at watermark
// wm: its firing timer if it has none pending (armed: it grew from
// sessions that all had one), or its drop timer if it fires now.
func (o *sessionOp[K, T, S, Out]) registerTimers(end, wm int64, armed bool) {
	switch {
	case end-1 > wm:
		if !armed {
			o.env.timers.RegisterEventTime(end - 1)
		}
	case o.cfg.lateness > 0:
		o.env.timers.RegisterEventTime(addSat(end-1, o.cfg.lateness))
	}
}

// OnTimer fires the key's sessions whose last millisecond is at and drops
// those past their allowed lateness.
func (o *sessionOp[K, T, S, Out]) OnTimer(key K, t runtime.Timer) {
	if t.Domain != runtime.EventTime {
		return
	}
	panes, ok := o.panes.Get()
	if !ok {
		return
	}
	keep := 0
	for _, p := range panes {
		switch {
		case p.End-1 == t.At:
			o.fire(key, p.Start, p.End, p.Contents)
			if o.cfg.lateness > 0 {
				o.env.timers.RegisterEventTime(addSat(p.End-1, o.cfg.lateness))
			}
		case p.End-1 > t.At:
			// The session grew after this timer was set: re-arm it
			// (idempotent if it has a timer at End-1 already).
			o.env.timers.RegisterEventTime(p.End - 1)
		}
		if addSat(p.End-1, o.cfg.lateness) > t.At {
			keep++
		}
	}
	switch {
	case keep == 0:
		o.panes.Delete()
	case keep < len(panes):
		o.panes.Put(panes) // copy on write before the change in place; see Process
		o.panes.Put(slices.DeleteFunc(panes, func(p pane[S]) bool { return addSat(p.End-1, o.cfg.lateness) <= t.At }))
	}
}

// addToSession merges rec into the key's sessions. The sessions change in
// place with one state lookup (Update keeps a checkpoint's copy first): a
// record that extends a session allocates nothing.
func (o *sessionOp[K, T, S, Out]) addToSession(key K, rec T, ts, wm int64) {
	var at int
	var armed, late bool
	panes := o.panes.Update(func(panes []pane[S], _ bool) []pane[S] {
		panes, at, armed, late = o.merge(panes, rec, ts, wm)
		return panes
	})
	if late {
		if len(panes) == 0 {
			o.panes.Delete() // Update made an empty entry
		}
		o.env.droppedLate()
		o.out.Collect(sideEnvelope[Out]{side: lateRecord(rec)})
		return
	}
	p := &panes[at]
	o.registerTimers(p.End, wm, armed)
	if p.End-1 <= wm {
		o.fire(key, p.Start, p.End, p.Contents)
	}
}

// merge merges rec, at ts, into panes at watermark wm and returns them, the
// index of rec's session and whether every session merged into it has a
// timer pending (armed); or late, with panes unchanged, if rec would start
// a session that is already late.
func (o *sessionOp[K, T, S, Out]) merge(panes []pane[S], rec T, ts, wm int64) (_ []pane[S], at int, armed, late bool) {
	start, end := ts, addSat(ts, o.cfg.gap)
	// Sessions do not overlap, so those that overlap [start, end) are
	// consecutive in start order.
	first := len(panes)
	last := first
	for i, p := range panes {
		if p.Start < end && p.End > start {
			if first == len(panes) {
				first = i
			}
			last = i + 1
		}
	}
	merged := panes[first:last]
	if len(merged) == 0 && o.isLate(end, wm) {
		return panes, 0, false, true
	}
	var contents S
	armed = len(merged) > 0 // every merged session has a timer pending
	for i, p := range merged {
		armed = armed && p.End-1 > wm
		start, end = min(start, p.Start), max(end, p.End)
		if i == 0 {
			contents = p.Contents
		} else {
			contents = o.c.merge(contents, p.Contents)
		}
	}
	contents = o.c.add(contents, rec, len(merged) == 0)
	p := pane[S]{Start: start, End: end, Contents: contents}
	if len(merged) == 0 {
		first = paneIndex(panes, start)
		return slices.Insert(panes, first, p), first, armed, false
	}
	return slices.Replace(panes, first, last, p), first, armed, false
}

// paneCodec stores a key's panes: their number, then start, end and
// length-prefixed contents of each.
type paneCodec[S any] struct{ contents state.Codec[S] }

func (c paneCodec[S]) Append(dst []byte, ps []pane[S]) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ps)))
	for _, p := range ps {
		dst = binary.BigEndian.AppendUint64(dst, uint64(p.Start))
		dst = binary.BigEndian.AppendUint64(dst, uint64(p.End))
		// Reserve a fixed-size length, so that contents encode in place.
		at := len(dst)
		dst = binary.BigEndian.AppendUint32(dst, 0)
		dst = c.contents.Append(dst, p.Contents)
		binary.BigEndian.PutUint32(dst[at:], uint32(len(dst)-at-4))
	}
	return dst
}

func (c paneCodec[S]) Decode(src []byte) ([]pane[S], error) {
	n, k := binary.Uvarint(src)
	if k <= 0 || n > uint64(len(src)) {
		return nil, fmt.Errorf("%w: window list header", state.ErrCorruptValue)
	}
	src = src[k:]
	ps := make([]pane[S], 0, n)
	for range n {
		if len(src) < 20 {
			return nil, fmt.Errorf("%w: window of %d bytes", state.ErrCorruptValue, len(src))
		}
		start, end := int64(binary.BigEndian.Uint64(src)), int64(binary.BigEndian.Uint64(src[8:]))
		m := binary.BigEndian.Uint32(src[16:])
		if uint64(m) > uint64(len(src)-20) {
			return nil, fmt.Errorf("%w: window contents of %d bytes", state.ErrCorruptValue, m)
		}
		v, err := c.contents.Decode(src[20 : 20+m])
		if err != nil {
			return nil, err
		}
		ps = append(ps, pane[S]{Start: start, End: end, Contents: v})
		src = src[20+m:]
	}
	if len(src) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after windows", state.ErrCorruptValue, len(src))
	}
	return ps, nil
}
