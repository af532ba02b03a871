// Package discard provides a sink that drops every record, for benchmarks
// and for pipelines whose effect is their state.
package discard

import (
	"context"
	"sync/atomic"

	"github.com/weirstream/weir/runtime"
)

// Counter counts the records that the sinks made by New dropped.
type Counter struct{ n atomic.Int64 }

// Count returns the number of records dropped so far. It is updated at each
// pre-commit and at Close, not for every record.
func (c *Counter) Count() int64 { return c.n.Load() }

// New returns a sink factory for runtime.To; c may be nil.
func New[T any](c *Counter) func() runtime.Sink[T] {
	return func() runtime.Sink[T] { return &sink[T]{c: c} }
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
