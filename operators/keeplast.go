package operators

import (
	"fmt"

	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// KeepLast keeps, per key of s, its latest record by later (later(a, b)
// reports whether a is later than b: by event time, or a version) and
// emits every record that becomes its key's latest: an upsert stream, in
// which a key's last record is its latest so far (SQL's deduplication
// keeping the last row, ROW_NUMBER() OVER (… ORDER BY time DESC) = 1).
// Records not later than their key's latest are dropped, so records that
// arrive out of order do not take a key back. It is Dedup's counterpart,
// which keeps the first record per id. State grows with the number of
// keys. recs encodes a record; nil selects the built-in codec.
func KeepLast[K comparable, T any](s runtime.KeyedStream[K, T], name string, later func(a, b T) bool, recs state.Codec[T]) runtime.Stream[T] {
	p := s.Pipeline()
	recs = codecOr(p, recs, fmt.Sprintf("keep last %q: records", name))
	if later == nil {
		p.Fail(fmt.Errorf("keep last %q: nil later function", name))
	}
	return runtime.ApplyKeyed(s, name, func() runtime.KeyedOperator[K, T, T] {
		return &keepLastOp[K, T]{later: later, recs: recs}
	})
}

type keepLastOp[K comparable, T any] struct {
	runtime.OperatorBase
	later func(a, b T) bool
	recs  state.Codec[T]
	out   runtime.Collector[T]
	last  *state.Value[K, T]
}

func (o *keepLastOp[K, T]) Open(ctx *runtime.KeyedContext[K], out runtime.Collector[T]) error {
	var err error
	o.out = out
	o.last, err = state.NewValue(ctx.Scope, "last", o.recs)
	return err
}

func (o *keepLastOp[K, T]) Process(_ K, rec T) {
	if cur, ok := o.last.Get(); ok && !o.later(rec, cur) {
		return
	}
	o.last.Put(rec)
	o.out.Collect(rec)
}
