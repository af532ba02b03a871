package runtime

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/weirstream/weir/internal/engine"
	"github.com/weirstream/weir/internal/statebackend"
)

// Event time is the time at which something happened, as recorded in the
// record itself, in milliseconds since the Unix epoch. A WatermarkStrategy
// assigns it, at a source (WithWatermarks) or on any stream
// (AssignTimestamps); watermarks then flow through the stream with the
// records. A watermark w says "no record with an event time <= w will come
// any more", which is when event-time windows fire and event-time timers run.
// An operator with several inputs forwards the minimum of their watermarks;
// inputs that have been idle for a while do not hold it back.

// NoTimestamp is the timestamp of a record without event time (see
// OperatorContext.Timestamp).
const NoTimestamp int64 = math.MinInt64

// MinWatermark is the watermark before any was seen; MaxWatermark marks the
// end of the input, when every event-time timer fires.
const (
	MinWatermark int64 = math.MinInt64
	MaxWatermark int64 = math.MaxInt64
)

// WatermarkStrategy assigns event times to a stream's records and derives
// its watermarks.
type WatermarkStrategy[T any] struct {
	// Timestamp returns the event time of a record, in ms since the epoch.
	// At a source (WithWatermarks) it may be nil: the event times are then
	// those the source gives with CollectAt (see TimestampCollector), such
	// as the Kafka source's record timestamps.
	Timestamp func(T) int64
	// MaxOutOfOrderness is how much later than the newest record so far an
	// older record may still arrive: the watermark trails the largest
	// timestamp seen by this much. Zero suits monotonic timestamps.
	MaxOutOfOrderness time.Duration
	// IdleTimeout marks a subtask idle when it has emitted nothing for
	// this long, so that it stops holding back the watermark downstream;
	// zero means never.
	IdleTimeout time.Duration
}

// BoundedOutOfOrderness returns a strategy for timestamps that arrive at most
// maxDelay out of order.
func BoundedOutOfOrderness[T any](timestamp func(T) int64, maxDelay time.Duration) WatermarkStrategy[T] {
	return WatermarkStrategy[T]{Timestamp: timestamp, MaxOutOfOrderness: maxDelay}
}

// Monotonic returns a strategy for timestamps that never decrease.
func Monotonic[T any](timestamp func(T) int64) WatermarkStrategy[T] {
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

// WithWatermarks makes the source assign event times and emit watermarks:
// the shorthand for AssignTimestamps right after the source, which saves the
// hop between the source's tasks and the assigner's.
func WithWatermarks[T any](s WatermarkStrategy[T]) SourceOption[T] {
	return func(o *sourceOptions[T]) { o.watermarks = &s }
}

// TimestampCollector is the Collector a source's Read is given when the
// source has WithWatermarks: CollectAt emits a record at an event time the
// source knows (a Kafka record's timestamp, a generator's clock), which a
// strategy without a Timestamp function uses; with one, the function
// decides. A source that knows its records' times checks for it once per
// Read:
//
//	tc, timed := out.(runtime.TimestampCollector[T])
//
// and emits with tc.CollectAt where timed. A record emitted with Collect
// under a strategy without a Timestamp function fails the job: it has no
// event time.
type TimestampCollector[T any] interface {
	Collector[T]
	CollectAt(rec T, ts int64)
}

// AssignTimestamps adds an operator called name that assigns event times to
// the records of s with strategy and generates watermarks from them, per
// subtask, replacing any watermarks that reached it. Use it where the
// timestamp is known only after decoding or enriching records; on a
// source's own records From's WithWatermarks does the same without the
// extra hop. The operator runs as tasks of its own: records reach it over
// a channel, and each subtask's largest timestamp is part of each
// checkpoint.
func AssignTimestamps[T any](s Stream[T], name string, strategy WatermarkStrategy[T]) Stream[T] {
	p := s.p
	if strategy.Timestamp == nil {
		p.Fail(fmt.Errorf("AssignTimestamps %q: watermark strategy without a Timestamp function", name))
	}
	if s.n == nil || s.n.Build == nil {
		return Stream[T]{p: p, n: placeholder(name)}
	}
	n, ok := p.add(name, engine.OperatorNode, engine.TypeOf[T]())
	if !ok {
		return Stream[T]{p: p, n: placeholder(name)}
	}
	n.AssignsEventTime, n.EventTime = true, true
	n.Build = func(env *engine.Env) (engine.Subtask, error) {
		w := newWatermarker(strategy, env.Out.(Collector[T]), env)
		return engine.Subtask{Instance: assignerInstance[T]{w}, In: Collector[T](w)}, nil
	}
	engine.Connect(s.n, n, engine.Forward, nil)
	return Stream[T]{p: p, n: n}
}

// HasEventTime reports whether every record of s carries an event
// timestamp: whether every path from a source to s passes a source with
// WithWatermarks or an AssignTimestamps. Event-time operators (windows,
// joins, event-time deduplication) read the timestamps records carry and
// refuse a stream without.
func (s Stream[T]) HasEventTime() bool {
	return hasEventTime(s.n, map[*engine.Node]bool{})
}

// hasEventTime walks n's inputs up to where event time is assigned; seen
// memoizes shared upstream nodes (joins of joins).
func hasEventTime(n *engine.Node, seen map[*engine.Node]bool) bool {
	if n == nil || n.Build == nil {
		return true // a placeholder: its construction error is reported already
	}
	if ok, done := seen[n]; done {
		return ok
	}
	ok := n.EventTime
	if ok && !n.AssignsEventTime && n.Kind != engine.SourceNode {
		// Connect marks a node if any input carries event time: a merge
		// needs all of them to.
		for _, e := range n.Inputs {
			if ok = hasEventTime(e.From, seen); !ok {
				break
			}
		}
	}
	seen[n] = ok
	return ok
}

// assignerInstance is the Instance of an AssignTimestamps subtask: the
// engine asks its watermarker for watermarks after every batch and, with
// an idle timeout, on the task's clock (UsesProcessingTime).
type assignerInstance[T any] struct {
	*watermarker[T]
}

func (a assignerInstance[T]) UsesProcessingTime() bool { return a.strategy.IdleTimeout > 0 }
func (assignerInstance[T]) Watermark(int64)            {}
func (assignerInstance[T]) ProcessingTime(int64)       {}
func (assignerInstance[T]) Snapshot(context.Context, uint64) ([]byte, error) {
	return nil, nil
}
func (assignerInstance[T]) NotifyComplete(context.Context, uint64) error { return nil }
func (assignerInstance[T]) Finish() error                                { return nil }
func (assignerInstance[T]) Close() error                                 { return nil }

// watermarker derives a subtask's watermarks (an engine.WatermarkGenerator).
// It sits between a source, or the input of AssignTimestamps, and the
// output, watching every record's timestamp.
type watermarker[T any] struct {
	strategy WatermarkStrategy[T]
	out      Collector[T]
	// direct is out when it is a chained edge into an operator (isDirect),
	// called without the edge's dynamic call and copy of the record, which
	// every record of a source with watermarks passes: 26 → 17 ns a
	// 120-byte record (BenchmarkDirectEdge in internal/engine, medians of
	// 6 at load 9-10).
	direct   engine.DirectProcessor[T]
	isDirect bool
	ts       *int64 // the task's current record timestamp (engine.Env.Timestamp)
	maxTime  int64  // largest timestamp emitted, MinWatermark before any
	emitted  int64  // last watermark sent downstream
	lastRec  time.Time
	idle     bool
	seen     bool        // a record arrived since the last check
	name     string      // the source's or AssignTimestamps' name
	fail     func(error) // fails the job (engine.Env.Fail)
}

func newWatermarker[T any](strategy WatermarkStrategy[T], out Collector[T], env *engine.Env) *watermarker[T] {
	w := &watermarker[T]{strategy: strategy, out: out, ts: env.Timestamp, name: env.Operator, fail: env.Fail,
		maxTime: MinWatermark, emitted: MinWatermark, lastRec: time.Now()}
	w.direct, w.isDirect = engine.Direct[T](out)
	return w
}

// Collect gives rec its timestamp, which it carries downstream
// (OperatorContext.Timestamp), and forwards it. Without a Timestamp
// function the record has none: the job fails (see TimestampCollector).
func (w *watermarker[T]) Collect(rec T) {
	if w.strategy.Timestamp == nil {
		w.fail(fmt.Errorf("source %q: a record without event time: the watermark strategy has no Timestamp function, so the source must emit every record with CollectAt (runtime.TimestampCollector); give the strategy a Timestamp function to use this source", w.name))
		return
	}
	w.forward(&rec, w.strategy.Timestamp(rec))
}

// CollectAt forwards rec at the event time the source gave, unless the
// strategy's Timestamp function decides.
func (w *watermarker[T]) CollectAt(rec T, ts int64) {
	if w.strategy.Timestamp != nil {
		ts = w.strategy.Timestamp(rec)
	}
	w.forward(&rec, ts)
}

// forward takes rec by pointer: by value it was copied once more per
// record (it is not inlined).
func (w *watermarker[T]) forward(rec *T, ts int64) {
	if ts > w.maxTime {
		w.maxTime = ts
	}
	w.seen = true
	*w.ts = ts
	if w.isDirect {
		w.direct.Collect(*rec)
		return
	}
	w.out.Collect(*rec)
}

// EventTime returns the watermark to send after a Read or a batch, if it
// advanced, and whether the subtask just turned idle.
func (w *watermarker[T]) EventTime(now time.Time) (wm int64, advanced, idle bool) {
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

// MaxEventTime returns the largest timestamp emitted, for checkpoints.
func (w *watermarker[T]) MaxEventTime() (int64, bool) { return w.maxTime, true }

// RestoreEventTime resumes from the largest timestamp a checkpoint kept.
func (w *watermarker[T]) RestoreEventTime(ts int64) {
	w.maxTime = ts
	w.emitted = ts - w.strategy.MaxOutOfOrderness.Milliseconds() - 1
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
	event, processing *statebackend.Timers[K]
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

func newTimerService[K comparable](scope *statebackend.Scope[K]) (*TimerService[K], error) {
	event, err := statebackend.NewTimers(scope, "weir.timers.event")
	if err != nil {
		return nil, err
	}
	processing, err := statebackend.NewTimers(scope, "weir.timers.processing")
	if err != nil {
		return nil, err
	}
	return &TimerService[K]{event: event, processing: processing}, nil
}
