package operators

import (
	"fmt"
	"slices"
	"time"

	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// Joins have two inputs, and the runtime's operators have one. A join
// therefore tags each input's records as an either, merges the two tagged
// streams with runtime.Merge, keys the union by the join key and runs one
// keyed operator with timers over it: the runtime needs no two-input
// operators, and the merge's minimum watermark is exactly the join's.

// JoinOn describes the two inputs of a join: how to get each record's key,
// and how to store the records the join buffers (nil selects the built-in
// codec; state.JSON works for any type). A join reads each record's event
// time from the timestamp it carries, so both inputs must have event time
// (runtime.AssignTimestamps or the source's runtime.WithWatermarks).
type JoinOn[K comparable, A, B any] struct {
	LeftKey    func(A) K
	RightKey   func(B) K
	LeftCodec  state.Codec[A]
	RightCodec state.Codec[B]
	// KeyCodec encodes the keys; nil selects the built-in codec.
	KeyCodec state.Codec[K]
}

func (on *JoinOn[K, A, B]) check(left runtime.Stream[A], right runtime.Stream[B], name string) {
	p := left.Pipeline()
	if on.LeftKey == nil || on.RightKey == nil {
		p.Fail(fmt.Errorf("join %q: JoinOn needs LeftKey and RightKey", name))
	}
	needEventTime(left, fmt.Sprintf("join %q: left input", name))
	needEventTime(right, fmt.Sprintf("join %q: right input", name))
	on.LeftCodec = codecOr(p, on.LeftCodec, fmt.Sprintf("join %q: left records", name))
	on.RightCodec = codecOr(p, on.RightCodec, fmt.Sprintf("join %q: right records", name))
}

// union tags and merges the inputs and keys them by the join key.
func (on JoinOn[K, A, B]) union(left runtime.Stream[A], right runtime.Stream[B], name string) runtime.KeyedStream[K, either[A, B]] {
	l := runtime.Apply(left, name+".left", func() runtime.Operator[A, either[A, B]] {
		return &mapOp[A, either[A, B]]{fn: func(a A) either[A, B] { return either[A, B]{Left: a} }}
	})
	r := runtime.Apply(right, name+".right", func() runtime.Operator[B, either[A, B]] {
		return &mapOp[B, either[A, B]]{fn: func(b B) either[A, B] { return either[A, B]{Right: b, IsRight: true} }}
	})
	u := runtime.Merge(l, name+".inputs", r)
	var opts []KeyOption[K]
	if on.KeyCodec != nil {
		opts = append(opts, KeyCodec(on.KeyCodec))
	}
	return KeyBy(u, func(e either[A, B]) K {
		if e.IsRight {
			return on.RightKey(e.Right)
		}
		return on.LeftKey(e.Left)
	}, opts...)
}

// WindowJoin joins the records of left and right that have equal keys and
// fall into the same tumbling window of the given size: when the window
// fires, join is called for every such pair (left records in arrival order,
// then right records in arrival order) and its results are emitted, with
// the window's last millisecond, End-1, as timestamp (as a window's
// results; it is at least both records'). Records that arrive after their
// window fired are dropped.
func WindowJoin[K comparable, A, B, Out any](left runtime.Stream[A], right runtime.Stream[B], name string, on JoinOn[K, A, B], size time.Duration, join func(key K, w TimeWindow, a A, b B) Out) runtime.Stream[Out] {
	p := left.Pipeline()
	on.check(left, right, name)
	sz := millis(p, fmt.Sprintf("join %q: window size", name), size)
	keyed := on.union(left, right, name)
	return runtime.ApplyKeyed(keyed, name, func() runtime.KeyedOperator[K, either[A, B], Out] {
		return &windowJoinOp[K, A, B, Out]{joinBase: joinBase[K, A, B, Out]{on: on}, size: sz, join: join}
	})
}

// joinBase is what both joins keep: each side's records of a key, grouped
// by event time.
type joinBase[K comparable, A, B, Out any] struct {
	runtime.OperatorBase
	on    JoinOn[K, A, B]
	env   timeEnv[K]
	out   runtime.Collector[Out]
	left  *state.Map[K, int64, []A]
	right *state.Map[K, int64, []B]
}

func (o *joinBase[K, A, B, Out]) Open(ctx *runtime.KeyedContext[K], out runtime.Collector[Out]) error {
	return o.open(envOf(ctx), out)
}

func (o *joinBase[K, A, B, Out]) open(env timeEnv[K], out runtime.Collector[Out]) error {
	o.env, o.out = env, out
	var err error
	o.left, err = state.NewMap(env.scope, "left", state.Int64, state.Codec[[]A](listCodec[A]{o.on.LeftCodec}))
	if err != nil {
		return err
	}
	o.right, err = state.NewMap(env.scope, "right", state.Int64, state.Codec[[]B](listCodec[B]{o.on.RightCodec}))
	return err
}

// windowJoinOp buffers, per key and window start, the records of both sides
// until the window's timer at End-1.
type windowJoinOp[K comparable, A, B, Out any] struct {
	joinBase[K, A, B, Out]
	size int64
	join func(K, TimeWindow, A, B) Out
}

func (o *windowJoinOp[K, A, B, Out]) Process(_ K, e either[A, B]) {
	ts, ok := o.env.timestamp()
	if !ok {
		return
	}
	start := floorTo(ts, o.size)
	end := start + o.size
	if end-1 <= o.env.watermark() {
		o.env.droppedLate()
		return // the window fired: late
	}
	if e.IsRight {
		l, ok := o.right.Get(start)
		o.right.Put(start, append(l, e.Right))
		if !ok {
			o.env.timers.RegisterEventTime(end - 1) // idempotent if the left side has it
		}
	} else {
		l, ok := o.left.Get(start)
		o.left.Put(start, append(l, e.Left))
		if !ok {
			o.env.timers.RegisterEventTime(end - 1)
		}
	}
}

func (o *windowJoinOp[K, A, B, Out]) OnTimer(key K, t runtime.Timer) {
	if t.Domain != runtime.EventTime || t.At == runtime.MaxWatermark {
		return
	}
	start := t.At + 1 - o.size
	as, _ := o.left.Get(start)
	bs, _ := o.right.Get(start)
	w := TimeWindow{start, start + o.size}
	o.env.stamps.SetTimestamp(t.At) // the runtime does, for event-time timers; made explicit
	for _, a := range as {
		for _, b := range bs {
			o.out.Collect(o.join(key, w, a, b))
		}
	}
	o.left.Delete(start)
	o.right.Delete(start)
}

// IntervalJoin joins every left record a with the right records b of the
// same key whose event time lies in [time(a)+lower, time(a)+upper], and
// emits join(key, a, b) as soon as both have arrived, with the later of
// the two records' timestamps (as Flink's). Each side's records
// are buffered only as long as a partner can still arrive: a left record
// until the watermark reaches time(a)+upper, a right record until it reaches
// time(b)-lower. Records at or below the watermark on arrival are late and
// dropped.
func IntervalJoin[K comparable, A, B, Out any](left runtime.Stream[A], right runtime.Stream[B], name string, on JoinOn[K, A, B], lower, upper time.Duration, join func(key K, a A, b B) Out) runtime.Stream[Out] {
	p := left.Pipeline()
	on.check(left, right, name)
	if lower > upper || lower%time.Millisecond != 0 || upper%time.Millisecond != 0 {
		p.Fail(fmt.Errorf("join %q: bounds [%v, %v]: want lower <= upper, whole milliseconds", name, lower, upper))
	}
	lo, hi := lower.Milliseconds(), upper.Milliseconds()
	keyed := on.union(left, right, name)
	return runtime.ApplyKeyed(keyed, name, func() runtime.KeyedOperator[K, either[A, B], Out] {
		return &intervalJoinOp[K, A, B, Out]{joinBase: joinBase[K, A, B, Out]{on: on}, lower: lo, upper: hi, join: join}
	})
}

// intervalJoinOp buffers, per key, the records of both sides by event time.
// A left record at ta is dropped by the timer at ta+upper, a right record at
// tb by the timer at tb-lower; a timer's time says which entries it drops.
type intervalJoinOp[K comparable, A, B, Out any] struct {
	joinBase[K, A, B, Out]
	lower, upper int64
	join         func(K, A, B) Out
	match        []int64 // scratch
}

// matching returns the sorted times in m within [lo, hi].
func matching[K comparable, V any](m *state.Map[K, int64, V], lo, hi int64, scratch []int64) []int64 {
	scratch = scratch[:0]
	for ts := range m.All() {
		if lo <= ts && ts <= hi {
			scratch = append(scratch, ts)
		}
	}
	slices.Sort(scratch)
	return scratch
}

func (o *intervalJoinOp[K, A, B, Out]) Process(key K, e either[A, B]) {
	ts, ok := o.env.timestamp()
	if !ok {
		return
	}
	wm := o.env.watermark()
	if e.IsRight {
		b, tb := e.Right, ts
		if tb <= wm {
			o.env.droppedLate()
			return // late
		}
		o.match = matching(o.left, tb-o.upper, tb-o.lower, o.match)
		for _, ta := range o.match {
			as, _ := o.left.Get(ta)
			o.env.stamps.SetTimestamp(max(ta, tb))
			for _, a := range as {
				o.out.Collect(o.join(key, a, b))
			}
		}
		if expiry := tb - o.lower; expiry > wm {
			l, _ := o.right.Get(tb)
			o.right.Put(tb, append(l, b))
			o.env.timers.RegisterEventTime(expiry)
		}
		return
	}
	a, ta := e.Left, ts
	if ta <= wm {
		o.env.droppedLate()
		return // late
	}
	o.match = matching(o.right, ta+o.lower, ta+o.upper, o.match)
	for _, tb := range o.match {
		bs, _ := o.right.Get(tb)
		o.env.stamps.SetTimestamp(max(ta, tb))
		for _, b := range bs {
			o.out.Collect(o.join(key, a, b))
		}
	}
	if expiry := ta + o.upper; expiry > wm {
		l, _ := o.left.Get(ta)
		o.left.Put(ta, append(l, a))
		o.env.timers.RegisterEventTime(expiry)
	}
}

func (o *intervalJoinOp[K, A, B, Out]) OnTimer(_ K, t runtime.Timer) {
	if t.Domain != runtime.EventTime {
		return
	}
	o.left.Delete(t.At - o.upper)
	o.right.Delete(t.At + o.lower)
}
