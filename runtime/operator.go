package runtime

import (
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/internal/engine"
	"github.com/weirstream/weir/state"
)

// Operator transforms a stream of In into a stream of Out. The runtime
// creates one Operator per subtask through the factory given to Apply and
// calls it from the subtask's goroutine:
//
//	Open → Process … Process [Snapshot(n) at barrier n] … [NotifyCheckpointComplete(n)] … → Finish → Close
//
// Snapshot returns the operator (non-keyed) state to keep in checkpoint n; it
// runs while the stream is paused, so it must be quick. It may emit records,
// which reach the operators and sinks behind it ahead of barrier n (an
// operator that emits its changes once per checkpoint does). Finish runs at
// the end of a bounded input, before the final checkpoint, and may emit
// records.
// Process has no error result because it sits on the hot path: report an
// error with OperatorContext.Fail, which stops the job.
type Operator[In, Out any] interface {
	Open(ctx *OperatorContext, out Collector[Out]) error
	Process(rec In)
	Snapshot(checkpointID uint64) ([]byte, error)
	NotifyCheckpointComplete(checkpointID uint64) error
	Finish() error
	Close() error
}

// KeyedOperator is an Operator on a keyed stream. Before each Process the
// runtime makes key the current key of the operator's state scope, so state
// handles created from KeyedContext.Scope read and write that key's state.
// Keyed state is checkpointed by the runtime; Snapshot is only for additional
// non-keyed state.
type KeyedOperator[K comparable, In, Out any] interface {
	Open(ctx *KeyedContext[K], out Collector[Out]) error
	Process(key K, rec In)
	Snapshot(checkpointID uint64) ([]byte, error)
	NotifyCheckpointComplete(checkpointID uint64) error
	Finish() error
	Close() error
}

// OperatorContext is given to an operator subtask at Open.
type OperatorContext struct {
	TaskInfo
	// Restored is what Snapshot returned in the restored checkpoint, or nil.
	Restored  []byte
	fail      func(error)
	watermark *int64         // the task's current input watermark
	late      *atomic.Uint64 // weir_late_records_dropped_total of the subtask
	ts        *int64         // the task's current record timestamp; nil without event time
}

// Fail reports an error met while processing a record; the job stops with it.
func (c *OperatorContext) Fail(err error) { c.fail(err) }

// Watermark returns the current event-time watermark of the operator's
// input (MinWatermark before the first).
func (c *OperatorContext) Watermark() int64 { return *c.watermark }

// DroppedLate counts n records the operator dropped because they arrived
// behind the watermark (at or before it, with no allowed lateness left); the
// count is exported as weir_late_records_dropped_total{operator, subtask}.
// Every operator that drops late records calls it, so that no drop goes
// unseen.
func (c *OperatorContext) DroppedLate(n int) {
	if c.late != nil { // nil for a context made outside a running job
		c.late.Add(uint64(n))
	}
}

// Timestamp returns the event timestamp of the record being processed (ms
// since the epoch), or NoTimestamp if its stream has no event time. A record
// gets it where event time is assigned (WithWatermarks, AssignTimestamps)
// and carries it through every operator: records an operator emits inherit
// the timestamp of the record it is processing, those emitted by an
// event-time timer the timer's time.
func (c *OperatorContext) Timestamp() int64 {
	if c.ts == nil { // no event time on this stream
		return NoTimestamp
	}
	return *c.ts
}

// SetTimestamp gives the records the operator emits next, until its next
// input record or timer, the event timestamp ts.
func (c *OperatorContext) SetTimestamp(ts int64) {
	if c.ts != nil {
		*c.ts = ts
	}
}

// ProcessingTime returns the wall clock in ms since the epoch.
func (c *OperatorContext) ProcessingTime() int64 { return time.Now().UnixMilli() }

// KeyedContext is given to a keyed operator subtask at Open.
type KeyedContext[K comparable] struct {
	OperatorContext
	// Scope creates state handles (state.NewValue, state.NewMap) bound to the
	// current key.
	Scope *state.Scope[K]
	// Timers registers timers for the current key; it is nil unless the
	// operator implements TimerHandler.
	Timers *TimerService[K]
}

// OperatorBase gives an operator no-op lifecycle methods, so that an
// operator only writes the methods it needs. Embed it.
type OperatorBase struct{}

// Snapshot returns no state.
func (OperatorBase) Snapshot(uint64) ([]byte, error) { return nil, nil }

// NotifyCheckpointComplete does nothing.
func (OperatorBase) NotifyCheckpointComplete(uint64) error { return nil }

// Finish does nothing.
func (OperatorBase) Finish() error { return nil }

// Close does nothing.
func (OperatorBase) Close() error { return nil }

// operatorContext returns the OperatorContext of the subtask env opens
// with op.
func operatorContext(env *engine.Env, op any) (*OperatorContext, error) {
	restored, err := restoredState(env, op)
	if err != nil {
		return nil, err
	}
	return &OperatorContext{TaskInfo: info(env), Restored: restored, fail: env.Fail, watermark: env.Watermark,
		late: env.LateDropped, ts: env.Timestamp}, nil
}
