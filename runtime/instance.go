package runtime

import (
	"context"
	"time"

	"github.com/weirstream/weir/state"
)

// instance is the type-independent lifecycle of one operator subtask, which
// the task drives at barriers and at the end.
type instance interface {
	snapshot(ctx context.Context, checkpointID uint64) ([]byte, error)
	notifyComplete(ctx context.Context, checkpointID uint64) error
	// watermark runs when the task's input watermark advances, before the
	// watermark goes downstream; processingTime runs on the task's clock.
	watermark(wm int64)
	processingTime(now int64)
	finish() error
	close() error
}

// reader is implemented by source instances.
type reader interface {
	read(ctx context.Context) error
	// eventTime returns the watermark to send after a read, if it advanced,
	// and whether the source just turned idle.
	eventTime(now time.Time) (wm int64, advanced, idle bool)
	// maxEventTime and restoreEventTime carry the largest timestamp emitted
	// through checkpoints; ok is false for sources without event time.
	maxEventTime() (ts int64, ok bool)
	restoreEventTime(ts int64)
}

type sourceInstance[T any] struct {
	src Source[T]
	out Collector[T]
	wm  *watermarker[T] // nil without event time
	eventHandlers
}

func (s *sourceInstance[T]) eventTime(now time.Time) (int64, bool, bool) {
	if s.wm == nil {
		return 0, false, false
	}
	return s.wm.check(now)
}

func (s *sourceInstance[T]) maxEventTime() (int64, bool) {
	if s.wm == nil {
		return 0, false
	}
	return s.wm.maxTime, true
}

func (s *sourceInstance[T]) restoreEventTime(ts int64) {
	if s.wm != nil {
		s.wm.maxTime = ts
		s.wm.emitted = ts - s.wm.strategy.MaxOutOfOrderness.Milliseconds() - 1
	}
}

// eventHandlers is embedded by instances that ignore time.
type eventHandlers struct{}

func (eventHandlers) watermark(int64)      {}
func (eventHandlers) processingTime(int64) {}

func (s *sourceInstance[T]) read(ctx context.Context) error { return s.src.Read(ctx, s.out) }
func (s *sourceInstance[T]) snapshot(context.Context, uint64) ([]byte, error) {
	return s.src.Snapshot()
}
func (s *sourceInstance[T]) notifyComplete(context.Context, uint64) error { return nil }
func (s *sourceInstance[T]) finish() error                                { return nil }
func (s *sourceInstance[T]) close() error                                 { return s.src.Close() }

type sinkInstance[T any] struct {
	sink Sink[T]
	ctx  context.Context
	fail func(error)
	// committed records durably that Commit(checkpointID) returned, for
	// TaskInfo.RestoredCommitted.
	committed func(checkpointID uint64) error
	eventHandlers
}

func (s *sinkInstance[T]) Collect(rec T) {
	if err := s.sink.Write(s.ctx, rec); err != nil {
		s.fail(err)
	}
}
func (s *sinkInstance[T]) snapshot(ctx context.Context, id uint64) ([]byte, error) {
	return s.sink.PreCommit(ctx, id)
}
func (s *sinkInstance[T]) notifyComplete(ctx context.Context, id uint64) error {
	if err := s.sink.Commit(ctx, id); err != nil {
		return err
	}
	return s.committed(id)
}
func (s *sinkInstance[T]) finish() error { return nil }
func (s *sinkInstance[T]) close() error  { return s.sink.Close() }

type operatorInstance struct {
	op interface {
		Snapshot(uint64) ([]byte, error)
		NotifyCheckpointComplete(uint64) error
		Finish() error
		Close() error
	}
}

func (o operatorInstance) watermark(wm int64) {
	if h, ok := o.op.(WatermarkHandler); ok {
		h.OnWatermark(wm)
	}
}
func (o operatorInstance) processingTime(int64) {}

func (o operatorInstance) snapshot(_ context.Context, id uint64) ([]byte, error) {
	return o.op.Snapshot(id)
}
func (o operatorInstance) notifyComplete(_ context.Context, id uint64) error {
	return o.op.NotifyCheckpointComplete(id)
}
func (o operatorInstance) finish() error { return o.op.Finish() }
func (o operatorInstance) close() error  { return o.op.Close() }

type keyedInstance[K comparable, In, Out any] struct {
	op     KeyedOperator[K, In, Out]
	timers *TimerService[K] // nil unless op is a TimerHandler
}

func (o keyedInstance[K, In, Out]) watermark(wm int64) {
	if o.timers != nil {
		h := o.op.(TimerHandler[K])
		o.timers.event.Fire(wm, func(key K, at int64) { h.OnTimer(key, Timer{At: at, Domain: EventTime}) })
	}
	if h, ok := o.op.(WatermarkHandler); ok {
		h.OnWatermark(wm)
	}
}

func (o keyedInstance[K, In, Out]) processingTime(now int64) {
	if o.timers != nil {
		h := o.op.(TimerHandler[K])
		o.timers.processing.Fire(now, func(key K, at int64) { h.OnTimer(key, Timer{At: at, Domain: ProcessingTime}) })
	}
}

// usesProcessingTime reports whether the instance has processing-time
// timers to drive.
func (o keyedInstance[K, In, Out]) usesProcessingTime() bool { return o.timers != nil }

func (o keyedInstance[K, In, Out]) snapshot(_ context.Context, id uint64) ([]byte, error) {
	return o.op.Snapshot(id)
}
func (o keyedInstance[K, In, Out]) notifyComplete(_ context.Context, id uint64) error {
	return o.op.NotifyCheckpointComplete(id)
}
func (o keyedInstance[K, In, Out]) finish() error { return o.op.Finish() }
func (o keyedInstance[K, In, Out]) close() error  { return o.op.Close() }

type nopInstance struct{ eventHandlers }

func (nopInstance) snapshot(context.Context, uint64) ([]byte, error) { return nil, nil }
func (nopInstance) notifyComplete(context.Context, uint64) error     { return nil }
func (nopInstance) finish() error                                    { return nil }
func (nopInstance) close() error                                     { return nil }

// processorCollector feeds records to an Operator.
type processorCollector[In any] struct {
	op interface{ Process(In) }
}

func (c processorCollector[In]) Collect(rec In) { c.op.Process(rec) }

// keyedCollector feeds records to a KeyedOperator with their key set.
type keyedCollector[K comparable, In, Out any] struct {
	op    KeyedOperator[K, In, Out]
	key   func(In) K
	scope *state.Scope[K]
	recs  []In
	keys  []K
}

// Records are processed in small groups: first every record's state is
// looked up, which lets the CPU overlap the cache misses of many lookups into
// a large state, then the records are processed one by one, in order, against
// warm caches. The task flushes the group whenever it must be processed: at
// the end of each batch, and before barriers, watermarks and timers.
func (c *keyedCollector[K, In, Out]) Collect(rec In) {
	c.recs = append(c.recs, rec)
	if len(c.recs) == keyedGroup {
		c.flush()
	}
}

const keyedGroup = 64

func (c *keyedCollector[K, In, Out]) flush() {
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
		c.op.Process(c.keys[i], rec)
	}
	clear(c.recs)
	c.recs = c.recs[:0]
}

// flusher is implemented by collectors that hold records back.
type flusher interface{ flush() }
