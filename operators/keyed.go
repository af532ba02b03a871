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

// ProcessFunc handles one record of a keyed stream: key is the record's key,
// whose state the handles created at setup now address; out receives any
// number of records. An error stops the job.
type ProcessFunc[K comparable, In, Out any] func(key K, rec In, out runtime.Collector[Out]) error

// ProcessContext is what the setup of Process gets: the subtask's
// OperatorContext (its TaskInfo, Fail, Watermark, ProcessingTime) and the
// scope on which to create state handles. It has no timers, which Process
// does not fire; a function that needs them is a ProcessWithTimers, whose
// setup gets a runtime.KeyedContext with Timers set.
type ProcessContext[K comparable] struct {
	*runtime.OperatorContext
	// Scope creates state handles (state.NewValue, state.NewMap) bound to the
	// current key.
	Scope *state.Scope[K]
}

// Process runs a keyed process function. setup runs once per subtask when
// the job starts: it creates the state handles (state.NewValue,
// state.NewMap on ctx.Scope) and returns the function that handles records.
func Process[K comparable, In, Out any](s runtime.KeyedStream[K, In], name string, setup func(ctx *ProcessContext[K]) (ProcessFunc[K, In, Out], error)) runtime.Stream[Out] {
	return runtime.ApplyKeyed(s, name, func() runtime.KeyedOperator[K, In, Out] {
		return &processOp[K, In, Out]{setup: setup}
	})
}

type processOp[K comparable, In, Out any] struct {
	runtime.OperatorBase
	setup func(*ProcessContext[K]) (ProcessFunc[K, In, Out], error)
	fn    ProcessFunc[K, In, Out]
	ctx   *runtime.KeyedContext[K]
	out   runtime.Collector[Out]
}

func (o *processOp[K, In, Out]) Open(ctx *runtime.KeyedContext[K], out runtime.Collector[Out]) error {
	fn, err := o.setup(&ProcessContext[K]{OperatorContext: &ctx.OperatorContext, Scope: ctx.Scope})
	if err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("operators: Process %q: setup returned no function", ctx.Operator)
	}
	o.fn, o.ctx, o.out = fn, ctx, out
	return nil
}

func (o *processOp[K, In, Out]) Process(key K, rec In) {
	if err := o.fn(key, rec, o.out); err != nil {
		o.ctx.Fail(fmt.Errorf("process %q: %w", o.ctx.Operator, err))
	}
}

// TimerFunc handles a timer of a keyed process function: key is the timer's
// key, whose state the handles now address.
type TimerFunc[K comparable, Out any] func(key K, timer runtime.Timer, out runtime.Collector[Out]) error

// ProcessWithTimers is Process for functions that use timers: setup also
// returns the function called when a timer fires, and ctx.Timers (never nil
// here) registers event-time and processing-time timers for the current
// key. Timers are keyed state: they survive crashes and fire after
// recovery.
func ProcessWithTimers[K comparable, In, Out any](s runtime.KeyedStream[K, In], name string, setup func(ctx *runtime.KeyedContext[K]) (ProcessFunc[K, In, Out], TimerFunc[K, Out], error)) runtime.Stream[Out] {
	return runtime.ApplyKeyed(s, name, func() runtime.KeyedOperator[K, In, Out] {
		return &timedProcessOp[K, In, Out]{timedSetup: setup}
	})
}

type timedProcessOp[K comparable, In, Out any] struct {
	processOp[K, In, Out]
	timedSetup func(*runtime.KeyedContext[K]) (ProcessFunc[K, In, Out], TimerFunc[K, Out], error)
	onTimer    TimerFunc[K, Out]
}

func (o *timedProcessOp[K, In, Out]) Open(ctx *runtime.KeyedContext[K], out runtime.Collector[Out]) error {
	fn, onTimer, err := o.timedSetup(ctx)
	if err != nil {
		return err
	}
	if fn == nil || onTimer == nil {
		return fmt.Errorf("operators: ProcessWithTimers %q: setup returned a nil function", ctx.Operator)
	}
	o.fn, o.onTimer, o.ctx, o.out = fn, onTimer, ctx, out
	return nil
}

func (o *timedProcessOp[K, In, Out]) OnTimer(key K, timer runtime.Timer) {
	if err := o.onTimer(key, timer, o.out); err != nil {
		o.ctx.Fail(fmt.Errorf("process %q: timer: %w", o.ctx.Operator, err))
	}
}
