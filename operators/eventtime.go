package operators

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/weirstream/weir/internal/statebackend"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// The event-time operators (windows, joins, deduplication) are keyed
// operators with timers. They use their KeyedContext only through timeEnv,
// so that the data-driven tests can drive them step by step with real state
// handles and timers but a clock of their own.

// ErrNoEventTime is the error of an event-time operator applied to a
// stream whose records carry no event timestamp.
var ErrNoEventTime = errors.New("operators: stream without event time")

// needEventTime reports a pipeline error naming what unless every record
// of s carries an event timestamp, which event-time operators read instead
// of taking a timestamp function.
func needEventTime[T any](s runtime.Stream[T], what string) {
	if !s.HasEventTime() {
		s.Pipeline().Fail(fmt.Errorf("%s: %w (its input %q): give the records event time upstream with runtime.AssignTimestamps, or at the source with runtime.WithWatermarks", what, ErrNoEventTime, s.Name()))
	}
}

// recordTime is the event timestamp of the record being processed, which
// the records an operator emits carry: the subtask's
// runtime.OperatorContext.
type recordTime interface {
	Timestamp() int64
	SetTimestamp(ts int64)
}

// timerService is the part of runtime.TimerService the operators use.
type timerService interface {
	RegisterEventTime(at int64)
	DeleteEventTime(at int64)
	RegisterProcessingTime(at int64)
	DeleteProcessingTime(at int64)
}

// timeEnv is what an event-time operator needs from its subtask.
type timeEnv[K comparable] struct {
	name      string
	scope     *state.Scope[K]
	timers    timerService
	watermark func() int64 // current input watermark
	now       func() int64 // wall clock, ms
	fail      func(error)
	late      func(n int) // counts records dropped as late (weir_late_records_dropped_total); nil in tests
	stamps    recordTime  // the record's timestamp, and the one emitted records get
}

func envOf[K comparable](ctx *runtime.KeyedContext[K]) timeEnv[K] {
	return timeEnv[K]{
		name:      ctx.Operator,
		scope:     ctx.Scope,
		timers:    ctx.Timers,
		watermark: ctx.Watermark,
		now:       ctx.ProcessingTime,
		fail:      ctx.Fail,
		late:      ctx.DroppedLate,
		stamps:    &ctx.OperatorContext,
	}
}

// timestamp returns the event time of the record being processed, or
// false after failing the job if it has none: needEventTime rules out
// streams without event time, but a record emitted by a processing-time
// timer upstream carries runtime.NoTimestamp, and windowing or
// deduplicating it at the start of time would lose it silently.
func (e timeEnv[K]) timestamp() (int64, bool) {
	ts := e.stamps.Timestamp()
	if ts == runtime.NoTimestamp {
		e.fail(errNoTimestamp(e.name))
		return 0, false
	}
	return ts, true
}

// errNoTimestamp is the error of a record without event time that reached
// the event-time operator called name.
func errNoTimestamp(name string) error {
	return fmt.Errorf("operator %q: %w: a record without a timestamp (runtime.NoTimestamp, as records emitted by processing-time timers carry): give it one with OperatorContext.SetTimestamp or runtime.AssignTimestamps", name, ErrNoEventTime)
}

// droppedLate counts a record the operator takes off its main path as late.
func (e timeEnv[K]) droppedLate() {
	if e.late != nil {
		e.late(1)
	}
}

// TimeWindow is a half-open interval of event time [Start, End), in ms since the
// epoch. A window fires when the watermark reaches End-1, its last
// millisecond.
type TimeWindow struct {
	Start, End int64
}

// String formats w as [Start,End).
func (w TimeWindow) String() string { return fmt.Sprintf("[%d,%d)", w.Start, w.End) }

// either carries a record of one of two streams: the envelope by which a
// join feeds two inputs through one keyed operator.
type either[A, B any] struct {
	Left    A
	Right   B
	IsRight bool
}

// addSat returns a+b, saturated at the int64 range (watermarks and timers
// live near its ends: MinWatermark, MaxWatermark).
func addSat(a, b int64) int64 {
	s := a + b
	switch {
	case b > 0 && s < a:
		return math.MaxInt64
	case b < 0 && s > a:
		return math.MinInt64
	}
	return s
}

// floorTo returns the largest multiple of step (offset by 0) that is <= ts,
// also for negative ts.
func floorTo(ts, step int64) int64 {
	r := ts % step
	if r < 0 {
		r += step
	}
	return ts - r
}

// millis converts a positive duration to ms, rejecting what is not.
func millis(p *runtime.Pipeline, what string, d time.Duration) int64 {
	ms := d.Milliseconds()
	if ms < 1 || d%time.Millisecond != 0 {
		p.Fail(fmt.Errorf("%s %v: want a positive whole number of milliseconds", what, d))
		return 1
	}
	return ms
}

// codecOr returns c, or the built-in codec of T; it reports a pipeline error
// naming what if there is neither.
func codecOr[T any](p *runtime.Pipeline, c state.Codec[T], what string) state.Codec[T] {
	if c == nil {
		c = state.CodecFor[T]()
	}
	if c == nil {
		var zero T
		p.Fail(fmt.Errorf("%s of type %T need a codec (state.JSON works for any)", what, zero))
	}
	return c
}

// listCodec stores a []T as length-prefixed elements.
type listCodec[T any] struct{ elems state.Codec[T] }

func (c listCodec[T]) Append(dst []byte, l []T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(l)))
	for _, v := range l {
		dst = statebackend.AppendPrefixed(dst, func(b []byte) []byte { return c.elems.Append(b, v) })
	}
	return dst
}

func (c listCodec[T]) Decode(src []byte) ([]T, error) {
	n, k := binary.Uvarint(src)
	if k <= 0 || n > uint64(len(src)) {
		return nil, fmt.Errorf("%w: list header", state.ErrCorruptValue)
	}
	src = src[k:]
	l := make([]T, 0, n)
	for range n {
		m, k := binary.Uvarint(src)
		if k <= 0 || m > uint64(len(src)-k) {
			return nil, fmt.Errorf("%w: list element", state.ErrCorruptValue)
		}
		v, err := c.elems.Decode(src[k : k+int(m)])
		if err != nil {
			return nil, err
		}
		l = append(l, v)
		src = src[k+int(m):]
	}
	if len(src) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after list", state.ErrCorruptValue, len(src))
	}
	return l, nil
}

// Watermark and ProcessingTime make a timeEnv the clock of the Context
// that an event-time operator hands to user functions.
func (e timeEnv[K]) Watermark() int64 { return e.watermark() }

// ProcessingTime returns the wall clock, ms.
func (e timeEnv[K]) ProcessingTime() int64 { return e.now() }

// Timestamp is the timestamp of the record being processed, or of the
// results being emitted (a window's End-1).
func (e timeEnv[K]) Timestamp() int64 { return e.stamps.Timestamp() }
