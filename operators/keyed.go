package operators

import (
	"fmt"

	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// Reduce keeps, per key, the fold of the key's records with fn (the first
// record is the initial value) and emits the new value after every record.
// values stores the accumulated value; nil selects the built-in codec.
func Reduce[K comparable, T any](s runtime.KeyedStream[K, T], name string, fn func(acc, rec T) T, values state.Codec[T]) runtime.Stream[T] {
	return Aggregate(s, name, AggregateFunc[K, T, T, T]{
		Add: func(acc T, rec T, first bool) T {
			if first {
				return rec
			}
			return fn(acc, rec)
		},
		Result: func(_ K, acc T) T { return acc },
	}, values)
}

// AggregateFunc describes a running aggregation: Add folds a record into the
// accumulator (first is true for a key's first record, when acc is the zero
// value) and Result derives the emitted record.
type AggregateFunc[K comparable, In, Acc, Out any] struct {
	Add    func(acc Acc, rec In, first bool) Acc
	Result func(key K, acc Acc) Out
}

// Aggregate keeps an accumulator per key, folds every record into it with
// agg.Add and emits agg.Result after every record. accs stores the
// accumulator; nil selects the built-in codec.
func Aggregate[K comparable, In, Acc, Out any](s runtime.KeyedStream[K, In], name string, agg AggregateFunc[K, In, Acc, Out], accs state.Codec[Acc]) runtime.Stream[Out] {
	if accs == nil {
		accs = state.CodecFor[Acc]()
	}
	if accs == nil {
		var zero Acc
		s.Pipeline().Fail(fmt.Errorf("aggregate %q: accumulators of type %T need a codec", name, zero))
	}
	return runtime.ApplyKeyed(s, name, func() runtime.KeyedOperator[K, In, Out] {
		return &aggregateOp[K, In, Acc, Out]{agg: agg, accs: accs}
	})
}

type aggregateOp[K comparable, In, Acc, Out any] struct {
	runtime.OperatorBase
	agg  AggregateFunc[K, In, Acc, Out]
	accs state.Codec[Acc]
	acc  *state.Value[K, Acc]
	out  runtime.Collector[Out]
}

func (o *aggregateOp[K, In, Acc, Out]) Open(ctx *runtime.KeyedContext[K], out runtime.Collector[Out]) error {
	acc, err := state.NewValue(ctx.Scope, "acc", o.accs)
	o.acc, o.out = acc, out
	return err
}

func (o *aggregateOp[K, In, Acc, Out]) Process(key K, rec In) {
	acc := o.acc.Update(func(acc Acc, ok bool) Acc { return o.agg.Add(acc, rec, !ok) })
	o.out.Collect(o.agg.Result(key, acc))
}
