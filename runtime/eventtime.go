package runtime

import (
	"math"
	"time"

	"github.com/weirstream/weir/state"
)

// Event time is the time at which something happened, as recorded in the
// record itself, in milliseconds since the Unix epoch. Sources assign it with
// a WatermarkStrategy; watermarks then flow through the stream with the
// records. A watermark w says "no record with an event time <= w will come
// any more", which is when event-time windows fire and event-time timers run.
// An operator with several inputs forwards the minimum of their watermarks;
// inputs that have been idle for a while do not hold it back.

// MinWatermark is the watermark before any was seen; MaxWatermark marks the
// end of the input, when every event-time timer fires.
const (
	MinWatermark int64 = math.MinInt64
	MaxWatermark int64 = math.MaxInt64
)

// WatermarkStrategy assigns event times to a source's records and derives
// its watermarks.
type WatermarkStrategy[T any] struct {
	// Timestamp returns the event time of a record, in ms since the epoch.
	Timestamp func(T) int64
	// MaxOutOfOrderness is how much later than the newest record so far an
	// older record may still arrive: the watermark trails the largest
	// timestamp seen by this much. Zero suits monotonous timestamps.
	MaxOutOfOrderness time.Duration
	// IdleTimeout marks a source subtask idle when it has emitted nothing
	// for this long, so that it stops holding back the watermark downstream;
	// zero means never.
	IdleTimeout time.Duration
}

// BoundedOutOfOrderness returns a strategy for timestamps that arrive at most
// maxDelay out of order.
func BoundedOutOfOrderness[T any](timestamp func(T) int64, maxDelay time.Duration) WatermarkStrategy[T] {
	return WatermarkStrategy[T]{Timestamp: timestamp, MaxOutOfOrderness: maxDelay}
}

// Monotonous returns a strategy for timestamps that never decrease.
func Monotonous[T any](timestamp func(T) int64) WatermarkStrategy[T] {
	return WatermarkStrategy[T]{Timestamp: timestamp}
}

// WithIdleTimeout returns s with an idle timeout.
func (s WatermarkStrategy[T]) WithIdleTimeout(d time.Duration) WatermarkStrategy[T] {
	s.IdleTimeout = d
	return s
}

// SourceOption configures a source added with From.
type SourceOption[T any] func(*sourceOptions[T])

type sourceOptions[T any] struct {
	watermarks *WatermarkStrategy[T]
}

// WithWatermarks makes the source assign event times and emit watermarks.
func WithWatermarks[T any](s WatermarkStrategy[T]) SourceOption[T] {
	return func(o *sourceOptions[T]) { o.watermarks = &s }
}

// watermarker derives a source subtask's watermarks. It sits between the
// source and its output, watching every record's timestamp.
type watermarker[T any] struct {
	strategy WatermarkStrategy[T]
	out      Collector[T]
	maxTime  int64 // largest timestamp emitted, MinWatermark before any
	emitted  int64 // last watermark sent downstream
	lastRec  time.Time
	idle     bool
	seen     bool // a record arrived since the last check
}

func (w *watermarker[T]) Collect(rec T) {
	if ts := w.strategy.Timestamp(rec); ts > w.maxTime {
		w.maxTime = ts
	}
	w.seen = true
	w.out.Collect(rec)
}

// check returns the watermark to send after a Read, if it advanced, and
// whether the subtask just turned idle.
func (w *watermarker[T]) check(now time.Time) (wm int64, advanced, idle bool) {
	if w.seen {
		w.seen, w.lastRec = false, now
		w.idle = false
	} else if w.strategy.IdleTimeout > 0 && !w.idle && now.Sub(w.lastRec) >= w.strategy.IdleTimeout {
		w.idle = true
		return 0, false, true
	}
	if w.maxTime == MinWatermark {
		return 0, false, false
	}
	wm = w.maxTime - w.strategy.MaxOutOfOrderness.Milliseconds() - 1
	if wm <= w.emitted {
		return 0, false, false
	}
	w.emitted = wm
	return wm, true, false
}

// TimeDomain says which clock a timer follows.
type TimeDomain uint8

const (
	// EventTime timers fire when the watermark passes them.
	EventTime TimeDomain = iota
	// ProcessingTime timers fire when the wall clock passes them.
	ProcessingTime
)

// Timer is a timer that fired.
type Timer struct {
	At     int64 // ms since the epoch
	Domain TimeDomain
}

// TimerHandler is implemented by keyed operators that use timers: the
// runtime gives them a TimerService in KeyedContext.Timers and calls OnTimer,
// with the timer's key made current, when one fires.
type TimerHandler[K comparable] interface {
	OnTimer(key K, timer Timer)
}

// WatermarkHandler is implemented by operators that act when the watermark
// advances; OnWatermark runs after the event-time timers it made due.
type WatermarkHandler interface {
	OnWatermark(watermark int64)
}

// TimerService registers and deletes timers for the current key.
type TimerService[K comparable] struct {
	event, processing *state.Timers[K]
}

// RegisterEventTime sets a timer that fires when the watermark reaches at.
func (s *TimerService[K]) RegisterEventTime(at int64) { s.event.Register(at) }

// DeleteEventTime removes the current key's event-time timer at at.
func (s *TimerService[K]) DeleteEventTime(at int64) { s.event.Delete(at) }

// RegisterProcessingTime sets a timer that fires when the wall clock reaches
// at (ms since the epoch).
func (s *TimerService[K]) RegisterProcessingTime(at int64) { s.processing.Register(at) }

// DeleteProcessingTime removes the current key's processing-time timer at
// at.
func (s *TimerService[K]) DeleteProcessingTime(at int64) { s.processing.Delete(at) }

func newTimerService[K comparable](scope *state.Scope[K]) (*TimerService[K], error) {
	event, err := state.NewTimers(scope, "weir.timers.event")
	if err != nil {
		return nil, err
	}
	processing, err := state.NewTimers(scope, "weir.timers.processing")
	if err != nil {
		return nil, err
	}
	return &TimerService[K]{event: event, processing: processing}, nil
}
