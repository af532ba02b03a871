// Package generator provides a deterministic source: record n of the stream
// is a pure function of n, so the offset is simply the next sequence number
// and a restored source replays exactly.
package generator

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/weirstream/weir/runtime"
)

// Config configures a generator.
type Config struct {
	// Count is the number of records over all subtasks; 0 means unbounded.
	Count uint64
	// RatePerSecond limits the records per second over all subtasks; 0
	// means as fast as possible.
	RatePerSecond float64
	// ChunkSize is the number of records per Read (default 1024).
	ChunkSize int
}

// New returns a source factory for runtime.From. Subtask s of p emits the
// sequence numbers s, s+p, s+2p, … below Count, each turned into a record by
// gen.
func New[T any](gen func(seq uint64) T, cfg Config) func() runtime.Source[T] {
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = 1024
	}
	return func() runtime.Source[T] { return &source[T]{gen: gen, cfg: cfg} }
}

type source[T any] struct {
	gen      func(uint64) T
	cfg      Config
	next     uint64 // next sequence number this subtask emits
	stride   uint64
	interval time.Duration // per record of this subtask, for the rate limit
	due      time.Time
}

const stateVersion = 1

func (s *source[T]) Open(_ context.Context, info runtime.TaskInfo, restored []byte) error {
	s.next, s.stride = uint64(info.Subtask), uint64(info.Parallelism)
	if restored != nil {
		if len(restored) != 9 || restored[0] != stateVersion {
			return errors.New("generator: unreadable offset in checkpoint")
		}
		s.next = binary.BigEndian.Uint64(restored[1:])
		if s.next%s.stride != uint64(info.Subtask) {
			return fmt.Errorf("generator: restored offset %d does not belong to subtask %d of %d", s.next, info.Subtask, info.Parallelism)
		}
	}
	if s.cfg.RatePerSecond > 0 {
		s.interval = time.Duration(float64(time.Second) * float64(s.stride) / s.cfg.RatePerSecond)
		s.due = time.Now()
	}
	return nil
}

func (s *source[T]) Read(ctx context.Context, out runtime.Collector[T]) error {
	n := s.cfg.ChunkSize
	if s.interval > 0 {
		if wait := time.Until(s.due); wait > 0 {
			// Pacing, not synchronization: sleep at most 100 ms so that
			// barriers are not delayed.
			select {
			case <-time.After(min(wait, 100*time.Millisecond)):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		n = min(n, int(time.Since(s.due)/s.interval)+1)
		s.due = s.due.Add(time.Duration(n) * s.interval)
	}
	for range n {
		if s.cfg.Count > 0 && s.next >= s.cfg.Count {
			return runtime.ErrEndOfInput
		}
		out.Collect(s.gen(s.next))
		s.next += s.stride
	}
	return nil
}

func (s *source[T]) Snapshot() ([]byte, error) {
	b := make([]byte, 9)
	b[0] = stateVersion
	binary.BigEndian.PutUint64(b[1:], s.next)
	return b, nil
}

func (s *source[T]) Close() error { return nil }
