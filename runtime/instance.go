package runtime

import (
	"context"
	"errors"
	"time"

	"github.com/weirstream/weir/internal/engine"
	"github.com/weirstream/weir/internal/statebackend"
)

// The adapters between the user's contracts (Source, Sink, Operator,
// KeyedOperator) and the engine's type-erased subtask lifecycle
// (engine.Instance): the engine never sees a user type.

type sourceInstance[T any] struct {
	src Source[T]
	out Collector[T]
	wm  *watermarker[T] // nil without event time
	eventHandlers
}

func (s *sourceInstance[T]) Read(ctx context.Context) (ended bool, err error) {
	err = s.src.Read(ctx, s.out)
	if errors.Is(err, ErrEndOfInput) {
		return true, nil
	}
	return false, err
}

func (s *sourceInstance[T]) EventTime(now time.Time) (int64, bool, bool) {
	if s.wm == nil {
		return 0, false, false
	}
	return s.wm.EventTime(now)
}

func (s *sourceInstance[T]) MaxEventTime() (int64, bool) {
	if s.wm == nil {
		return 0, false
	}
	return s.wm.MaxEventTime()
}

func (s *sourceInstance[T]) RestoreEventTime(ts int64) {
	if s.wm != nil {
		s.wm.RestoreEventTime(ts)
	}
}

func (s *sourceInstance[T]) Snapshot(context.Context, uint64) ([]byte, error) {
	return s.src.Snapshot()
}
func (s *sourceInstance[T]) NotifyComplete(ctx context.Context, id uint64) error {
	if l, ok := s.src.(CheckpointListener); ok {
		return l.CheckpointComplete(ctx, id)
	}
	return nil
}
func (s *sourceInstance[T]) Finish() error { return nil }
func (s *sourceInstance[T]) Close() error  { return s.src.Close() }

// eventHandlers is embedded by instances that ignore time.
type eventHandlers struct{}

func (eventHandlers) Watermark(int64)          {}
func (eventHandlers) ProcessingTime(int64)     {}
func (eventHandlers) UsesProcessingTime() bool { return false }

type sinkInstance[T any] struct {
	sink Sink[T]
	ctx  context.Context
	fail func(error)
	eventHandlers
}

func (s *sinkInstance[T]) Collect(rec T) {
	if err := s.sink.Write(s.ctx, rec); err != nil {
		s.fail(err)
	}
}
func (s *sinkInstance[T]) Snapshot(ctx context.Context, id uint64) ([]byte, error) {
	return s.sink.PreCommit(ctx, id)
}
func (s *sinkInstance[T]) NotifyComplete(ctx context.Context, id uint64) error {
	return s.sink.Commit(ctx, id)
}
func (s *sinkInstance[T]) Finish() error {
	if e, ok := s.sink.(EndOfInputHandler); ok {
		e.EndOfInput()
	}
	return nil
}
func (s *sinkInstance[T]) Close() error { return s.sink.Close() }

// wrapper is implemented by the sinks of NewTwoPhaseSink and the ends of
// exchanges: the optional interfaces of what they wrap count as theirs.
type wrapper interface{ user() any }

// reports returns what a user's source or sink reports through the
// optional interfaces LagReporter, TransactionReporter and PromiseChecker.
func reports(user any) engine.Reports {
	var r engine.Reports
	for w, ok := user.(wrapper); ok; w, ok = user.(wrapper) {
		user = w.user()
	}
	if l, ok := user.(LagReporter); ok {
		r.SourceLag = func() []engine.PartitionLag {
			lags := l.SourceLag()
			out := make([]engine.PartitionLag, len(lags))
			for i, p := range lags {
				out[i] = engine.PartitionLag(p)
			}
			return out
		}
	}
	if t, ok := user.(TransactionReporter); ok {
		r.Transactions = t.Transactions
	}
	if p, ok := user.(PromiseChecker); ok {
		r.CheckPromise = p.CheckPromise
	}
	return r
}

type operatorInstance struct {
	op interface {
		Snapshot(uint64) ([]byte, error)
		NotifyCheckpointComplete(uint64) error
		Finish() error
		Close() error
	}
}

func (o operatorInstance) Watermark(wm int64) {
	if h, ok := o.op.(WatermarkHandler); ok {
		h.OnWatermark(wm)
	}
}
func (o operatorInstance) ProcessingTime(int64)     {}
func (o operatorInstance) UsesProcessingTime() bool { return false }

func (o operatorInstance) Snapshot(_ context.Context, id uint64) ([]byte, error) {
	return o.op.Snapshot(id)
}
func (o operatorInstance) NotifyComplete(_ context.Context, id uint64) error {
	return o.op.NotifyCheckpointComplete(id)
}
func (o operatorInstance) Finish() error { return o.op.Finish() }
func (o operatorInstance) Close() error  { return o.op.Close() }

type keyedInstance[K comparable, In, Out any] struct {
	op     KeyedOperator[K, In, Out]
	timers *TimerService[K] // nil unless op is a TimerHandler
	ts     *int64           // the task's current record timestamp; nil without event time
}

func (o keyedInstance[K, In, Out]) Watermark(wm int64) {
	if o.timers != nil {
		h := o.op.(TimerHandler[K])
		o.timers.event.Fire(wm, func(key K, at int64) {
			if o.ts != nil {
				*o.ts = at // what the timer emits happened at its time
			}
			h.OnTimer(key, Timer{At: at, Domain: EventTime})
		})
	}
	if h, ok := o.op.(WatermarkHandler); ok {
		h.OnWatermark(wm)
	}
}

func (o keyedInstance[K, In, Out]) ProcessingTime(now int64) {
	if o.timers != nil {
		h := o.op.(TimerHandler[K])
		o.timers.processing.Fire(now, func(key K, at int64) {
			if o.ts != nil {
				*o.ts = NoTimestamp
			}
			h.OnTimer(key, Timer{At: at, Domain: ProcessingTime})
		})
	}
}

// UsesProcessingTime reports whether the instance has processing-time
// timers to drive.
func (o keyedInstance[K, In, Out]) UsesProcessingTime() bool { return o.timers != nil }

func (o keyedInstance[K, In, Out]) Snapshot(_ context.Context, id uint64) ([]byte, error) {
	return o.op.Snapshot(id)
}
func (o keyedInstance[K, In, Out]) NotifyComplete(_ context.Context, id uint64) error {
	return o.op.NotifyCheckpointComplete(id)
}
func (o keyedInstance[K, In, Out]) Finish() error { return o.op.Finish() }
func (o keyedInstance[K, In, Out]) Close() error  { return o.op.Close() }

type nopInstance struct{ eventHandlers }

func (nopInstance) Snapshot(context.Context, uint64) ([]byte, error) { return nil, nil }
func (nopInstance) NotifyComplete(context.Context, uint64) error     { return nil }
func (nopInstance) Finish() error                                    { return nil }
func (nopInstance) Close() error                                     { return nil }

// processorCollector feeds records to an Operator. It is an
// engine.ProcessorInput, so the engine's record count calls Process itself.
type processorCollector[In any] struct {
	op engine.Processor[In]
}

func (c processorCollector[In]) Collect(rec In) { c.op.Process(rec) }

func (c processorCollector[In]) Processor() engine.Processor[In] { return c.op }

// keyedCollector feeds records to a KeyedOperator with their key set.
type keyedCollector[K comparable, In, Out any] struct {
	op    KeyedOperator[K, In, Out]
	key   func(In) K
	scope *statebackend.Scope[K] // the engine's side of the operator's Scope: it sets the key
	recs  []In
	keys  []K
	ts    *int64  // the task's current record timestamp; nil without event time
	tss   []int64 // the timestamps of recs
}

// Records are processed in small groups: first every record's state is
// looked up, which lets the CPU overlap the cache misses of many lookups into
// a large state, then the records are processed one by one, in order, against
// warm caches. The task flushes the group whenever it must be processed: at
// the end of each batch, and before barriers, watermarks and timers
// (engine.Flusher).
func (c *keyedCollector[K, In, Out]) Collect(rec In) {
	c.recs = append(c.recs, rec)
	if c.ts != nil {
		c.tss = append(c.tss, *c.ts)
	}
	if len(c.recs) == keyedGroup {
		c.Flush()
	}
}

const keyedGroup = 64

// Flush processes the records held back.
func (c *keyedCollector[K, In, Out]) Flush() {
	if len(c.recs) == 0 {
		return
	}
	c.keys = c.keys[:0]
	for _, rec := range c.recs {
		c.keys = append(c.keys, c.key(rec))
	}
	c.scope.Prefetch(c.keys)
	for i, rec := range c.recs {
		c.scope.SetKey(c.keys[i])
		if c.ts != nil {
			*c.ts = c.tss[i]
		}
		c.op.Process(c.keys[i], rec)
	}
	clear(c.recs)
	c.recs, c.tss = c.recs[:0], c.tss[:0]
}
