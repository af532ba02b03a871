package operators

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/weirstream/weir/internal/keying"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// PreAggregate evaluates the window in two steps, like Flink's local-global
// aggregation: before the records are partitioned by key, each subtask of
// the input folds its own records into one accumulator per key and pane
// (the gcd of the window size and slide: the window itself for tumbling
// windows), and sends a pane's accumulators on when the watermark passes
// the pane's end. After the partition by key, the window operator merges
// the accumulators of each window with WindowAggregateFunc.Merge. A key
// with many records per pane then crosses the network, and touches keyed
// state, once per pane and input subtask instead of once per record; for
// a global aggregate (every record under one key) this is what lets the
// work spread over the input's subtasks.
//
// It applies to WindowAggregate and WindowReduce on tumbling and sliding
// windows; Merge is required. The open panes are operator state of the
// input's subtasks, in checkpoints like all state.
//
// Lateness is decided where the records are pre-aggregated, against the
// watermark there: a record whose windows are all past their allowed
// lateness goes to the late stream. A record for a pane already sent on
// (allowed lateness) is sent on alone. Either way no accumulator reaches a
// window that has fired, other than to fire it again within its lateness:
// the window operator's watermark is the minimum of its inputs', and an
// input subtask sends a pane on before it forwards a watermark past the
// pane.
func (w WindowedStream[K, T]) PreAggregate() WindowedStream[K, T] {
	w.preAggregate = true
	return w
}

// partial is a pane's accumulator of one key, sent by the pre-aggregation
// to the window operator.
type partial[K comparable, S any] struct {
	key  K
	pane int64 // start
	acc  S
}

// localEmit is what the pre-aggregation emits: a partial or, if late is
// set, a late record.
//
// NB: the late record is boxed, as a side output's (sideoutput.go): it is
// the exception, while every partial is copied into both split operators
// behind. With the record inline, a partial of q5 (an int64 count of 80-byte
// bids) was a 112-byte value passed in memory; boxed, it is 4 words, passed
// in registers.
type localEmit[K comparable, S, T any] struct {
	partial partial[K, S]
	late    *T
}

// buildPreAggregated is buildWindow with a pre-aggregation before the
// partition by key.
func buildPreAggregated[K comparable, T, S, Out any](w WindowedStream[K, T], c contents[K, T, S, Out]) (runtime.Stream[Out], runtime.Stream[T]) {
	p := w.in.Pipeline()
	if w.windows.kind == sessionWindows {
		p.Fail(fmt.Errorf("window %q: PreAggregate needs tumbling or sliding windows, not sessions", w.name))
		return buildWindow(w, c)
	}
	if c.merge == nil {
		p.Fail(fmt.Errorf("window %q: PreAggregate needs WindowAggregateFunc.Merge", w.name))
		return buildWindow(w, c)
	}
	size := millis(p, fmt.Sprintf("window %q: size", w.name), w.windows.size)
	slide := millis(p, fmt.Sprintf("window %q: slide", w.name), w.windows.slide)
	cfg := localConfig{size: size, slide: slide, pane: gcd(size, slide), lateness: w.lateness.Milliseconds()}
	anyKey, anyKeys := keying.Parts(&w.in)
	keys, _ := anyKeys.(state.Codec[K]) // nil after a KeyBy that failed the pipeline
	key, add := anyKey.(func(T) K), c.add
	raw := runtime.Apply(w.in.Stream, w.name+".local", func() runtime.Operator[T, localEmit[K, S, T]] {
		return &localWindowOp[K, T, S]{cfg: cfg, key: key, keys: keys, add: add, accs: c.codec}
	})
	partials := runtime.Apply(raw, w.name+".partials", func() runtime.Operator[localEmit[K, S, T], partial[K, S]] {
		return &splitOp[localEmit[K, S, T], partial[K, S]]{pick: func(e localEmit[K, S, T]) (partial[K, S], bool) { return e.partial, e.late == nil }}
	})
	late := runtime.Apply(raw, w.name+".local-late", func() runtime.Operator[localEmit[K, S, T], T] {
		return &splitOp[localEmit[K, S, T], T]{pick: func(e localEmit[K, S, T]) (T, bool) {
			if e.late == nil {
				var zero T
				return zero, false
			}
			return *e.late, true
		}}
	})
	merge := c.merge
	global := WindowedStream[K, partial[K, S]]{
		in:       keyBy(partials, func(x partial[K, S]) K { return x.key }, keys),
		name:     w.name,
		windows:  w.windows,
		lateness: w.lateness, // the partials carry their pane's start as timestamp
	}
	results, unexpected := buildWindow(global, contents[K, partial[K, S], S, Out]{
		add: func(s S, x partial[K, S], first bool) S {
			if first {
				return x.acc
			}
			return merge(s, x.acc)
		},
		merge: merge,
		emit:  c.emit,
		codec: c.codec,
	})
	runtime.Apply(unexpected, w.name+".check", func() runtime.Operator[partial[K, S], struct{}] { return &noLateOp[K, S]{} })
	return results, late
}

// noLateOp fails the job if the window operator finds a pre-aggregated
// accumulator late, which PreAggregate's doc comment shows cannot happen:
// rather than lose it silently.
type noLateOp[K comparable, S any] struct {
	runtime.OperatorBase
	ctx *runtime.OperatorContext
}

func (o *noLateOp[K, S]) Open(ctx *runtime.OperatorContext, _ runtime.Collector[struct{}]) error {
	o.ctx = ctx
	return nil
}

func (o *noLateOp[K, S]) Process(x partial[K, S]) {
	o.ctx.Fail(fmt.Errorf("operator %q: internal error: the pre-aggregated pane %d of key %v reached its windows after they were dropped", o.ctx.Operator, x.pane, x.key))
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

type localConfig struct {
	size, slide, pane, lateness int64
}

// localWindowOp is the pre-aggregation of PreAggregate. Each open pane
// holds its keys' accumulators in a slice, in order of first arrival,
// indexed by a Go map; the pane and the key of the last record are cached,
// since records mostly come in time order and often with the same key
// (one map lookup per record at most, none for a global aggregate).
type localWindowOp[K comparable, T, S any] struct {
	runtime.OperatorBase
	cfg  localConfig
	key  func(T) K
	keys state.Codec[K]
	add  func(S, T, bool) S
	accs state.Codec[S]

	out   runtime.Collector[localEmit[K, S, T]]
	ctx   *runtime.OperatorContext
	panes map[int64]*localPane[K, S]
	last  *localPane[K, S] // the pane of the last record, or nil
	// lastKey is the key of the last record and lastAt its index in last,
	// if lastOK.
	lastKey K
	lastAt  int
	lastOK  bool
	free    []*localPane[K, S] // emptied panes, reused
	// fired is the last watermark acted on: panes ending at or before it
	// were sent on. NB: not the task's watermark, which is ahead of it
	// while the records before the watermark are handed over (chained
	// operators), and not restored in a source's task.
	fired    int64
	firstEnd int64 // the smallest last millisecond of the open panes
}

// localPane is one open pane: keys[i] has the accumulator accs[i].
type localPane[K comparable, S any] struct {
	start int64
	index map[K]int
	keys  []K
	accs  []S
}

func (o *localWindowOp[K, T, S]) Open(ctx *runtime.OperatorContext, out runtime.Collector[localEmit[K, S, T]]) error {
	o.out, o.ctx, o.panes, o.fired, o.firstEnd = out, ctx, map[int64]*localPane[K, S]{}, runtime.MinWatermark, runtime.MaxWatermark
	if ctx.Restored == nil {
		return nil
	}
	if err := o.restore(ctx.Restored); err != nil {
		return fmt.Errorf("operator %q: restore: %w", ctx.Operator, err)
	}
	return nil
}

func (o *localWindowOp[K, T, S]) Process(rec T) {
	ts := o.ctx.Timestamp()
	if ts == runtime.NoTimestamp {
		o.ctx.Fail(errNoTimestamp(o.ctx.Operator))
		return
	}
	p := o.last
	// The common case: rec is in the pane of the last record, which is
	// open, so none of rec's windows has fired (each holds the whole
	// pane): no division to find the pane, no lateness to check.
	// (Unsigned: ts before the pane, or so far after that the difference
	// overflows, is outside it.)
	if p == nil || uint64(ts-p.start) >= uint64(o.cfg.pane) {
		var ok bool
		if p, ok = o.paneOf(rec, ts); !ok {
			return
		}
	}
	var zero S
	k := o.key(rec)
	if o.lastOK && k == o.lastKey {
		p.accs[o.lastAt] = o.add(p.accs[o.lastAt], rec, false)
		return
	}
	i, ok := p.index[k]
	if !ok {
		i = len(p.accs)
		p.index[k] = i
		p.keys = append(p.keys, k)
		p.accs = append(p.accs, o.add(zero, rec, true))
	} else {
		p.accs[i] = o.add(p.accs[i], rec, false)
	}
	o.lastKey, o.lastAt, o.lastOK = k, i, true
}

// paneOf returns the open pane of rec, at ts, creating it if needed, and
// caches it as the last pane; or, if rec is late or its pane was sent on
// already, emits rec accordingly and returns false.
func (o *localWindowOp[K, T, S]) paneOf(rec T, ts int64) (*localPane[K, S], bool) {
	// The window with the latest start ends last: if it is past its
	// lateness, so are all of the record's windows.
	if addSat(floorTo(ts, o.cfg.slide)+o.cfg.size-1, o.cfg.lateness) <= o.fired {
		o.ctx.DroppedLate(1)
		late := new(T)
		*late = rec
		o.out.Collect(localEmit[K, S, T]{late: late})
		return nil, false
	}
	start := floorTo(ts, o.cfg.pane)
	if start+o.cfg.pane-1 <= o.fired { // sent on already: send this one alone
		var zero S
		o.emitPartial(partial[K, S]{key: o.key(rec), pane: start, acc: o.add(zero, rec, true)})
		return nil, false
	}
	if p := o.last; p != nil && p.start == start {
		return p, true
	}
	return o.pane(start), true
}

// pane returns the pane starting at start, creating it if needed, and
// caches it as the last pane.
func (o *localWindowOp[K, T, S]) pane(start int64) *localPane[K, S] {
	p := o.panes[start]
	if p == nil {
		if n := len(o.free); n > 0 {
			p, o.free = o.free[n-1], o.free[:n-1]
		} else {
			p = &localPane[K, S]{index: map[K]int{}}
		}
		p.start = start
		o.panes[start] = p
		o.firstEnd = min(o.firstEnd, start+o.cfg.pane-1)
	}
	o.last, o.lastOK = p, false
	return p
}

// OnWatermark sends on, in pane order, the accumulators of the panes that
// wm completes.
func (o *localWindowOp[K, T, S]) OnWatermark(wm int64) {
	if wm <= o.fired {
		return
	}
	o.fired = wm
	if wm < o.firstEnd {
		return
	}
	o.firstEnd = runtime.MaxWatermark
	for _, start := range slices.Sorted(maps.Keys(o.panes)) {
		if end := start + o.cfg.pane - 1; end > wm {
			o.firstEnd = min(o.firstEnd, end)
			continue
		}
		p := o.panes[start]
		for i, k := range p.keys {
			o.emitPartial(partial[K, S]{key: k, pane: start, acc: p.accs[i]})
		}
		delete(o.panes, start)
		clear(p.index)
		clear(p.keys)
		clear(p.accs)
		p.keys, p.accs = p.keys[:0], p.accs[:0]
		o.free = append(o.free, p)
	}
	o.last = nil
}

// emitPartial sends x on with its pane's start as timestamp, by which the
// window operator finds the pane's windows; the pane lies in each of them
// whole. It restores the task's timestamp after: an operator chained
// before this one may emit more records for the one it is processing.
func (o *localWindowOp[K, T, S]) emitPartial(x partial[K, S]) {
	ts := o.ctx.Timestamp()
	o.ctx.SetTimestamp(x.pane)
	o.out.Collect(localEmit[K, S, T]{partial: x})
	o.ctx.SetTimestamp(ts)
}

// Snapshot keeps the watermark acted on and the open panes: for each, its
// start and its keys and accumulators, length-prefixed.
func (o *localWindowOp[K, T, S]) Snapshot(uint64) ([]byte, error) {
	b := binary.BigEndian.AppendUint64(nil, uint64(o.fired))
	b = binary.AppendUvarint(b, uint64(len(o.panes)))
	var scratch []byte
	field := func(enc []byte) {
		b = binary.AppendUvarint(b, uint64(len(enc)))
		b = append(b, enc...)
	}
	for start, p := range o.panes {
		b = binary.BigEndian.AppendUint64(b, uint64(start))
		b = binary.AppendUvarint(b, uint64(len(p.keys)))
		for i, k := range p.keys {
			scratch = o.keys.Append(scratch[:0], k)
			field(scratch)
			scratch = o.accs.Append(scratch[:0], p.accs[i])
			field(scratch)
		}
	}
	return b, nil
}

func (o *localWindowOp[K, T, S]) restore(b []byte) error {
	corrupt := func(what string) error {
		return fmt.Errorf("%w: pre-aggregated panes: %s", state.ErrCorruptValue, what)
	}
	if len(b) < 8 {
		return corrupt("header")
	}
	o.fired, b = int64(binary.BigEndian.Uint64(b)), b[8:]
	field := func() ([]byte, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, false
		}
		f := b[k : k+int(n)]
		b = b[k+int(n):]
		return f, true
	}
	count := func() (uint64, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)) {
			return 0, false
		}
		b = b[k:]
		return n, true
	}
	panes, ok := count()
	if !ok {
		return corrupt("pane count")
	}
	for range panes {
		if len(b) < 8 {
			return corrupt("pane start")
		}
		p := o.pane(int64(binary.BigEndian.Uint64(b)))
		b = b[8:]
		n, ok := count()
		if !ok {
			return corrupt("key count")
		}
		for range n {
			kb, ok1 := field()
			ab, ok2 := field()
			if !ok1 || !ok2 {
				return corrupt("entry")
			}
			k, err := o.keys.Decode(kb)
			if err != nil {
				return err
			}
			acc, err := o.accs.Decode(ab)
			if err != nil {
				return err
			}
			p.index[k] = len(p.keys)
			p.keys, p.accs = append(p.keys, k), append(p.accs, acc)
		}
	}
	if len(b) != 0 {
		return corrupt(fmt.Sprintf("%d bytes after the panes", len(b)))
	}
	o.last = nil
	return nil
}
