package discard

import (
	"context"
	"sync/atomic"

	"github.com/weirstream/weir/runtime"
)

// Counter counts the records that the sinks of a SinkConfig dropped.
type Counter struct{ n atomic.Int64 }

// Count returns the number of records dropped so far. It is updated at each
// pre-commit and at Close, not for every record.
func (c *Counter) Count() int64 { return c.n.Load() }

// SinkConfig configures a discard sink. T is the record type; it is part of
// the config only so that NewSink infers it, as every connector's NewSink
// does.
type SinkConfig[T any] struct {
	// Counter, if set, counts the dropped records.
	Counter *Counter
}

// NewSink returns the sink factory for runtime.To. It never fails; it
// returns an error to follow the convention of every connector.
func NewSink[T any](cfg SinkConfig[T]) (runtime.SinkFactory[T], error) {
	return func() (runtime.Sink[T], error) { return &sink[T]{c: cfg.Counter}, nil }, nil
}

type sink[T any] struct {
	c *Counter
	n int64
}

func (s *sink[T]) Open(context.Context, runtime.TaskInfo, []byte) error { return nil }
func (s *sink[T]) Write(context.Context, T) error                       { s.n++; return nil }
func (s *sink[T]) PreCommit(context.Context, uint64) ([]byte, error)    { s.flush(); return nil, nil }
func (s *sink[T]) Commit(context.Context, uint64) error                 { return nil }
func (s *sink[T]) Close() error                                         { s.flush(); return nil }

func (s *sink[T]) flush() {
	if s.c != nil {
		s.c.n.Add(s.n)
	}
	s.n = 0
}
