package operators

import (
	"fmt"

	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// A process function has two steps, as Flink's open and processElement:
// a setup, run once per subtask when the job starts, creates the state
// handles and returns the function called per record. That function gets
// a per-call context (the current key, timers where they can work, side
// outputs) instead of capturing the setup's.

// SetupContext is what the setup of Process and ProcessWithTimers gets: the
// subtask's TaskInfo and the scope on which to create state handles. It
// has no current key, so no timers: those are on the per-call TimerContext.
type SetupContext[K comparable] struct {
	runtime.TaskInfo
	// Scope creates state handles (state.NewValue, state.NewMap,
	// state.NewList) bound to the current key.
	Scope *state.Scope[K]
}

// Context is what a process function gets with each record: the record's
// key, whose state the handles created at setup now address, its
// timestamp, the clocks, and the side outputs (OutputTag.Emit). It is valid only during the call:
// do not keep it. It has no timers; a function that needs them is a
// ProcessWithTimers, which gets a TimerContext.
type Context[K comparable] struct {
	key   K
	clock clock
	sides *sideOutputs
}

// clock is where a Context reads the time: the subtask's
// runtime.OperatorContext, or an event-time operator's timeEnv.
type clock interface {
	Watermark() int64
	ProcessingTime() int64
	Timestamp() int64
}

// Key returns the key of the record (or timer) being processed.
func (c *Context[K]) Key() K { return c.key }

// Watermark returns the current event-time watermark of the operator's
// input (runtime.MinWatermark before the first).
func (c *Context[K]) Watermark() int64 { return c.clock.Watermark() }

// ProcessingTime returns the wall clock in ms since the epoch.
func (c *Context[K]) ProcessingTime() int64 { return c.clock.ProcessingTime() }

// Timestamp returns the event time, in ms since the epoch, of the record
// being processed, which the records the function emits carry too: the
// record's own on a stream with event time (runtime.AssignTimestamps,
// runtime.WithWatermarks), the window's last millisecond in a window
// function, and runtime.NoTimestamp on a stream without event time.
func (c *Context[K]) Timestamp() int64 { return c.clock.Timestamp() }

func (c *Context[K]) outputs() *sideOutputs { return c.sides }

// TimerContext is the Context of ProcessWithTimers' functions: Timers
// registers timers for the current key.
type TimerContext[K comparable] struct {
	Context[K]
	timers *runtime.TimerService[K]
}

// Timers returns the timer service of the current key. Timers are keyed
// state: they survive crashes and fire after recovery.
func (c *TimerContext[K]) Timers() *runtime.TimerService[K] { return c.timers }

// ProcessFunc handles one record of a keyed stream; out receives any
// number of records. An error stops the job.
type ProcessFunc[K comparable, In, Out any] func(ctx *Context[K], rec In, out runtime.Collector[Out]) error

// TimedProcessFunc is the ProcessFunc of ProcessWithTimers, whose context
// has timers.
type TimedProcessFunc[K comparable, In, Out any] func(ctx *TimerContext[K], rec In, out runtime.Collector[Out]) error

// TimerFunc handles a timer of ProcessWithTimers: ctx.Key() is the timer's
// key, whose state the handles now address.
type TimerFunc[K comparable, Out any] func(ctx *TimerContext[K], timer runtime.Timer, out runtime.Collector[Out]) error

// Process runs a keyed process function. setup runs once per subtask when
// the job starts: it creates the state handles (state.NewValue,
// state.NewMap, state.NewList on ctx.Scope) and returns the function that
// handles records. Options declare side outputs (WithSideOutputs).
func Process[K comparable, In, Out any](s runtime.KeyedStream[K, In], name string, setup func(ctx *SetupContext[K]) (ProcessFunc[K, In, Out], error), opts ...ProcessOption) runtime.Stream[Out] {
	o := newProcessConfig(opts)
	return applySided(s, name, o,
		func() runtime.KeyedOperator[K, In, Out] {
			return &processOp[K, In, Out, Out]{processBase: processBase[K, Out, Out]{tags: o.tags}, setup: setup}
		},
		func() runtime.KeyedOperator[K, In, sideEnvelope[Out]] {
			return &processOp[K, In, Out, sideEnvelope[Out]]{processBase: processBase[K, Out, sideEnvelope[Out]]{tags: o.tags}, setup: setup}
		})
}

// processBase is what both process operators share: the per-call context
// and the outputs.
type processBase[K comparable, Out, W any] struct {
	runtime.OperatorBase
	tags []AnyOutputTag
	op   *runtime.OperatorContext
	out  runtime.Collector[Out]
}

// open sets up the outputs: W is Out, or sideEnvelope[Out] with side
// outputs declared.
func (o *processBase[K, Out, W]) open(ctx *runtime.KeyedContext[K], out runtime.Collector[W]) (SetupContext[K], *sideOutputs) {
	o.op = &ctx.OperatorContext
	var sides *sideOutputs
	o.out, sides = newOutputs[Out](out, o.tags, ctx.Operator, ctx.Fail)
	return SetupContext[K]{TaskInfo: ctx.TaskInfo, Scope: ctx.Scope}, sides
}

func (o *processBase[K, Out, W]) fail(what string, err error) {
	o.op.Fail(fmt.Errorf("process %q: %s%w", o.op.Operator, what, err))
}

type processOp[K comparable, In, Out, W any] struct {
	processBase[K, Out, W]
	setup func(*SetupContext[K]) (ProcessFunc[K, In, Out], error)
	fn    ProcessFunc[K, In, Out]
	ctx   Context[K]
}

func (o *processOp[K, In, Out, W]) Open(ctx *runtime.KeyedContext[K], out runtime.Collector[W]) error {
	setup, sides := o.open(ctx, out)
	fn, err := o.setup(&setup)
	if err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("operators: Process %q: setup returned no function", ctx.Operator)
	}
	o.fn, o.ctx = fn, Context[K]{clock: o.op, sides: sides}
	return nil
}

func (o *processOp[K, In, Out, W]) Process(key K, rec In) {
	o.ctx.key = key
	if err := o.fn(&o.ctx, rec, o.out); err != nil {
		o.fail("", err)
	}
}

// ProcessWithTimers is Process for functions that use timers: setup also
// returns the function called when a timer fires, and the per-call
// TimerContext registers event-time and processing-time timers for the
// current key. Timers are keyed state: they survive crashes and fire after
// recovery.
func ProcessWithTimers[K comparable, In, Out any](s runtime.KeyedStream[K, In], name string, setup func(ctx *SetupContext[K]) (TimedProcessFunc[K, In, Out], TimerFunc[K, Out], error), opts ...ProcessOption) runtime.Stream[Out] {
	o := newProcessConfig(opts)
	return applySided(s, name, o,
		func() runtime.KeyedOperator[K, In, Out] {
			return &timedProcessOp[K, In, Out, Out]{processBase: processBase[K, Out, Out]{tags: o.tags}, setup: setup}
		},
		func() runtime.KeyedOperator[K, In, sideEnvelope[Out]] {
			return &timedProcessOp[K, In, Out, sideEnvelope[Out]]{processBase: processBase[K, Out, sideEnvelope[Out]]{tags: o.tags}, setup: setup}
		})
}

type timedProcessOp[K comparable, In, Out, W any] struct {
	processBase[K, Out, W]
	setup   func(*SetupContext[K]) (TimedProcessFunc[K, In, Out], TimerFunc[K, Out], error)
	fn      TimedProcessFunc[K, In, Out]
	onTimer TimerFunc[K, Out]
	ctx     TimerContext[K]
}

func (o *timedProcessOp[K, In, Out, W]) Open(ctx *runtime.KeyedContext[K], out runtime.Collector[W]) error {
	setup, sides := o.open(ctx, out)
	fn, onTimer, err := o.setup(&setup)
	if err != nil {
		return err
	}
	if fn == nil || onTimer == nil {
		return fmt.Errorf("operators: ProcessWithTimers %q: setup returned a nil function", ctx.Operator)
	}
	o.fn, o.onTimer = fn, onTimer
	o.ctx = TimerContext[K]{Context: Context[K]{clock: o.op, sides: sides}, timers: ctx.Timers}
	return nil
}

func (o *timedProcessOp[K, In, Out, W]) Process(key K, rec In) {
	o.ctx.key = key
	if err := o.fn(&o.ctx, rec, o.out); err != nil {
		o.fail("", err)
	}
}

func (o *timedProcessOp[K, In, Out, W]) OnTimer(key K, timer runtime.Timer) {
	o.ctx.key = key
	if err := o.onTimer(&o.ctx, timer, o.out); err != nil {
		o.fail("timer: ", err)
	}
}
