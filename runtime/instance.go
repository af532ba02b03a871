package runtime

import (
	"context"

	"github.com/weirstream/weir/state"
)

// instance is the type-independent lifecycle of one operator subtask, which
// the task drives at barriers and at the end.
type instance interface {
	snapshot(ctx context.Context, checkpointID uint64) ([]byte, error)
	notifyComplete(ctx context.Context, checkpointID uint64) error
	finish() error
	close() error
}

// reader is implemented by source instances.
type reader interface {
	read(ctx context.Context) error
}

type sourceInstance[T any] struct {
	src Source[T]
	out Collector[T]
}

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
	return s.sink.Commit(ctx, id)
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

func (o operatorInstance) snapshot(_ context.Context, id uint64) ([]byte, error) {
	return o.op.Snapshot(id)
}
func (o operatorInstance) notifyComplete(_ context.Context, id uint64) error {
	return o.op.NotifyCheckpointComplete(id)
}
func (o operatorInstance) finish() error { return o.op.Finish() }
func (o operatorInstance) close() error  { return o.op.Close() }

type keyedInstance[K comparable, In, Out any] struct {
	op KeyedOperator[K, In, Out]
}

func (o keyedInstance[K, In, Out]) snapshot(_ context.Context, id uint64) ([]byte, error) {
	return o.op.Snapshot(id)
}
func (o keyedInstance[K, In, Out]) notifyComplete(_ context.Context, id uint64) error {
	return o.op.NotifyCheckpointComplete(id)
}
func (o keyedInstance[K, In, Out]) finish() error { return o.op.Finish() }
func (o keyedInstance[K, In, Out]) close() error  { return o.op.Close() }

type nopInstance struct{}

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
}

func (c *keyedCollector[K, In, Out]) Collect(rec In) {
	k := c.key(rec)
	c.scope.SetKey(k)
	c.op.Process(k, rec)
}
