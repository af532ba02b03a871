package operators

import (
	"github.com/weirstream/weir/internal/keying"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// Map applies fn to every record.
func Map[In, Out any](s runtime.Stream[In], fn func(In) Out) runtime.Stream[Out] {
	return runtime.Apply(s, s.Pipeline().UniqueName("Map"), func() runtime.Operator[In, Out] {
		return &mapOp[In, Out]{fn: fn}
	})
}

type mapOp[In, Out any] struct {
	runtime.OperatorBase
	fn  func(In) Out
	out runtime.Collector[Out]
}

func (o *mapOp[In, Out]) Open(_ *runtime.OperatorContext, out runtime.Collector[Out]) error {
	o.out = out
	return nil
}

func (o *mapOp[In, Out]) Process(rec In) { o.out.Collect(o.fn(rec)) }

// Filter keeps the records for which keep returns true.
func Filter[T any](s runtime.Stream[T], keep func(T) bool) runtime.Stream[T] {
	return runtime.Apply(s, s.Pipeline().UniqueName("Filter"), func() runtime.Operator[T, T] {
		return &filterOp[T]{keep: keep}
	})
}

type filterOp[T any] struct {
	runtime.OperatorBase
	keep func(T) bool
	out  runtime.Collector[T]
}

func (o *filterOp[T]) Open(_ *runtime.OperatorContext, out runtime.Collector[T]) error {
	o.out = out
	return nil
}

func (o *filterOp[T]) Process(rec T) {
	if o.keep(rec) {
		o.out.Collect(rec)
	}
}

// FlatMap calls fn for every record; fn emits any number of records to out.
func FlatMap[In, Out any](s runtime.Stream[In], fn func(rec In, out runtime.Collector[Out])) runtime.Stream[Out] {
	return runtime.Apply(s, s.Pipeline().UniqueName("FlatMap"), func() runtime.Operator[In, Out] {
		return &flatMapOp[In, Out]{fn: fn}
	})
}

type flatMapOp[In, Out any] struct {
	runtime.OperatorBase
	fn  func(In, runtime.Collector[Out])
	out runtime.Collector[Out]
}

func (o *flatMapOp[In, Out]) Open(_ *runtime.OperatorContext, out runtime.Collector[Out]) error {
	o.out = out
	return nil
}

func (o *flatMapOp[In, Out]) Process(rec In) { o.fn(rec, o.out) }

// KeyOption configures KeyBy.
type KeyOption[K comparable] func(*keyOptions[K])

type keyOptions[K comparable] struct{ codec state.Codec[K] }

// KeyCodec sets the codec of the keys, which KeyBy needs for key types other
// than strings, integers, floats, bools and byte slices.
func KeyCodec[K comparable](c state.Codec[K]) KeyOption[K] {
	return func(o *keyOptions[K]) { o.codec = c }
}

// KeyBy partitions s by the key that key returns: the records of one key go
// to one subtask of the next operator, in order, and that operator's state
// is per key.
func KeyBy[K comparable, T any](s runtime.Stream[T], key func(T) K, opts ...KeyOption[K]) runtime.KeyedStream[K, T] {
	var o keyOptions[K]
	for _, opt := range opts {
		opt(&o)
	}
	return keyBy(s, key, o.codec)
}

// keyBy is KeyBy with its codec (nil: the built-in codec of K), for the
// operators that key streams of their own.
func keyBy[K comparable, T any](s runtime.Stream[T], key func(T) K, codec state.Codec[K]) runtime.KeyedStream[K, T] {
	var ks runtime.KeyedStream[K, T]
	keying.Key(&ks, s, key, codec)
	return ks
}
