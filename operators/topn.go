package operators

import (
	"fmt"
	"slices"

	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// TopN says which records WindowTopN keeps of each key and window.
type TopN[T any] struct {
	// N is how many records to keep; at least 1.
	N int
	// Compare ranks records, best first: negative if a ranks above b, zero
	// if they tie (as for slices.SortFunc). Ties keep arrival order, so
	// without WithTies, which of several records tied at the N-th place is
	// kept depends on the order of arrival: make Compare a total order
	// where that matters.
	Compare func(a, b T) int
	// WithTies also keeps the records that tie with the N-th, as SQL's
	// RANK() <= N rather than ROW_NUMBER() <= N: with N = 1, every record
	// with the highest rank.
	WithTies bool
}

// WindowTopN evaluates w by keeping, per key and window, the best records
// by top.Compare: the result lists them best first. It is an incremental
// aggregation (each window keeps at most N records, more only with ties),
// so it may be pre-aggregated (PreAggregate): for a global top N, key every
// record by one constant and pre-aggregate, and each input subtask keeps
// its own top N per window until the windows close. recs encodes a record;
// nil selects the built-in codec.
func WindowTopN[K comparable, T any](w WindowedStream[K, T], top TopN[T], recs state.Codec[T]) (results runtime.Stream[WindowResult[K, []T]], late runtime.Stream[T]) {
	p := w.in.Pipeline()
	recs = codecOr(p, recs, fmt.Sprintf("window %q: records", w.name))
	if top.N < 1 || top.Compare == nil {
		p.Fail(fmt.Errorf("window %q: TopN needs N >= 1 (have %d) and Compare", w.name, top.N))
	}
	return WindowAggregate(w, WindowAggregateFunc[K, T, []T, WindowResult[K, []T]]{
		Add: func(acc []T, rec T, _ bool) []T {
			if !top.admits(acc, rec) { // most records: one comparison, no call to add
				return acc
			}
			acc, _ = top.add(acc, rec)
			return acc
		},
		Merge: func(a, b []T) []T {
			out := slices.Clone(a)
			for _, rec := range b {
				out, _ = top.add(out, rec)
			}
			return out
		},
		Result: func(key K, win TimeWindow, acc []T) WindowResult[K, []T] {
			// A copy: with allowed lateness the window's list changes in
			// place after it fired.
			return WindowResult[K, []T]{Key: key, Window: win, Value: slices.Clone(acc)}
		},
	}, listCodec[T]{elems: recs})
}

// admits reports whether rec enters the ranked list acc. The common case,
// a record that does not, costs one comparison.
func (top TopN[T]) admits(acc []T, rec T) bool {
	if n := len(acc); n >= top.N {
		c := top.Compare(rec, acc[n-1])
		return c < 0 || (c == 0 && top.WithTies)
	}
	return true
}

// add inserts rec into the ranked list acc (in place) and drops what falls
// out of the top. It returns the list and rec's index in it, or -1 if rec
// did not enter it.
func (top TopN[T]) add(acc []T, rec T) ([]T, int) {
	if !top.admits(acc, rec) {
		return acc, -1
	}
	// After the last record that ranks at or above rec: ties keep arrival
	// order.
	i, _ := slices.BinarySearchFunc(acc, rec, func(x, r T) int {
		if top.Compare(x, r) <= 0 {
			return -1
		}
		return 1
	})
	acc = slices.Insert(acc, i, rec)
	if len(acc) <= top.N {
		return acc, i
	}
	if !top.WithTies {
		clear(acc[top.N:])
		return acc[:top.N], i
	}
	// Keep the records that tie with the N-th.
	keep := top.N
	for keep < len(acc) && top.Compare(acc[keep], acc[top.N-1]) == 0 {
		keep++
	}
	clear(acc[keep:])
	return acc[:keep], i
}

// Ranking is a key's current top records, best first.
type Ranking[K comparable, T any] struct {
	Key K
	// Top is shared with the operator's state, which never changes it:
	// read it, keep it if need be, but do not modify it.
	Top []T
	// From is the first index of Top that changed since the key's previous
	// Ranking: Top[:From] are the same records at the same ranks, so an
	// upsert by rank need only write Top[From:]. Without WithTies a ranking
	// never gets shorter; with it, a record can push several tied records
	// out, and ranks beyond len(Top) are then gone.
	From int
}

// TopNPerKey keeps, per key of s and over all time, the best records by
// top.Compare, and emits the key's new Ranking every time a record enters
// it (SQL's ROW_NUMBER() OVER (PARTITION BY key ORDER BY …) <= N): an
// upsert stream, in which a key's last Ranking is its current top N. Records
// that do not enter the ranking emit nothing. State grows with the number
// of keys; each key keeps at most N records (more only with ties). recs
// encodes a record; nil selects the built-in codec.
func TopNPerKey[K comparable, T any](s runtime.KeyedStream[K, T], name string, top TopN[T], recs state.Codec[T]) runtime.Stream[Ranking[K, T]] {
	p := s.Pipeline()
	recs = codecOr(p, recs, fmt.Sprintf("top n %q: records", name))
	if top.N < 1 || top.Compare == nil {
		p.Fail(fmt.Errorf("top n %q: TopN needs N >= 1 (have %d) and Compare", name, top.N))
	}
	return runtime.ApplyKeyed(s, name, func() runtime.KeyedOperator[K, T, Ranking[K, T]] {
		return &rankOp[K, T]{top: top, recs: recs}
	})
}

type rankOp[K comparable, T any] struct {
	runtime.OperatorBase
	top  TopN[T]
	recs state.Codec[T]
	out  runtime.Collector[Ranking[K, T]]
	list *state.Value[K, []T]
}

func (o *rankOp[K, T]) Open(ctx *runtime.KeyedContext[K], out runtime.Collector[Ranking[K, T]]) error {
	var err error
	o.out = out
	o.list, err = state.NewValue(ctx.Scope, "top", state.Codec[[]T](listCodec[T]{elems: o.recs}))
	return err
}

// Process ranks rec among its key's records. A key's list in the state is
// never changed in place: a record that enters it makes a new list, which
// both replaces the state's and is the emitted Ranking's Top. That one
// copy replaces the state's list grown in place plus a copy of it for the
// Ranking (a downstream task may read it after the key's next change):
// one allocation per ranked record, where a growing list took up to two
// (TestTopNPerKeyCopiesOncePerRanking: 2 → 1.25 per record).
func (o *rankOp[K, T]) Process(key K, rec T) {
	l, _ := o.list.Get()
	if !o.top.admits(l, rec) {
		return
	}
	// Room for rec, so that add does not grow the new list again.
	next := make([]T, len(l), len(l)+1)
	copy(next, l)
	next, at := o.top.add(next, rec)
	o.list.Put(next)
	o.out.Collect(Ranking[K, T]{Key: key, Top: next, From: at})
}
