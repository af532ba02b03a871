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
			return top.add(acc, rec)
		},
		Merge: func(a, b []T) []T {
			out := slices.Clone(a)
			for _, rec := range b {
				out = top.add(out, rec)
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

// add inserts rec into the ranked list acc, in place (growing it by at
// most one), and drops what falls out of the top.
func (top TopN[T]) add(acc []T, rec T) []T {
	if !top.admits(acc, rec) {
		return acc
	}
	i, n := top.place(acc, rec)
	if n > len(acc) {
		acc = append(acc, rec) // room for the shift below
	}
	copy(acc[i+1:n], acc[i:n-1])
	acc[i] = rec
	clear(acc[n:])
	return acc[:n]
}

// inserted returns a new list: acc with rec inserted and what falls out of
// the top dropped, and rec's index in it; acc is unchanged. rec must be
// admitted. The new list is allocated at its length and filled in one
// pass: a copy of acc grown by rec's slot, then shifted and cut, cost a
// larger allocation (the next size class up at N = 10 records of 88 bytes)
// and two more moves of the records.
func (top TopN[T]) inserted(acc []T, rec T) ([]T, int) {
	i, n := top.place(acc, rec)
	next := make([]T, n)
	copy(next, acc[:i])
	next[i] = rec
	copy(next[i+1:], acc[i:n-1])
	return next, i
}

// place returns the index at which the admitted record rec enters acc, and
// the length of the list with it once what falls out of the top is dropped.
// The index is after the last record that ranks at or above rec, so that
// ties keep arrival order; it is always below the length (a record that
// enters the list stays in it).
func (top TopN[T]) place(acc []T, rec T) (at, length int) {
	lo, hi := 0, len(acc)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if top.Compare(acc[m], rec) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	n := len(acc) + 1
	if n <= top.N {
		return lo, n
	}
	if !top.WithTies {
		return lo, top.N
	}
	// Keep the records that tie with the N-th of the new list.
	in := func(j int) T { // the new list's j-th record
		switch {
		case j < lo:
			return acc[j]
		case j == lo:
			return rec
		}
		return acc[j-1]
	}
	nth, keep := in(top.N-1), top.N
	for keep < n && top.Compare(in(keep), nth) == 0 {
		keep++
	}
	return lo, keep
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
// (TestTopNPerKeyCopiesOncePerRanking: 2 → 1.25 per record), of exactly
// the new list's length (inserted).
func (o *rankOp[K, T]) Process(key K, rec T) {
	l, _ := o.list.Get()
	if !o.top.admits(l, rec) {
		return
	}
	next, at := o.top.inserted(l, rec)
	o.list.Put(next)
	o.out.Collect(Ranking[K, T]{Key: key, Top: next, From: at})
}
