// Package generator provides a deterministic source: record n of the stream
// is a pure function of n, so the offset is simply the next sequence number
// and a restored source replays exactly. Sequence is the position-keeping
// part on its own, for sources of other shapes (the Nexmark generator uses
// it).
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
	gen func(uint64) T
	cfg Config
	seq Sequence
}

func (s *source[T]) Open(_ context.Context, info runtime.TaskInfo, restored []byte) error {
	return s.seq.Open(info, restored, s.cfg.RatePerSecond)
}

func (s *source[T]) Read(ctx context.Context, out runtime.Collector[T]) error {
	n, err := s.seq.Quota(ctx, s.cfg.ChunkSize)
	if err != nil {
		return err
	}
	for range n {
		if s.cfg.Count > 0 && s.seq.Next >= s.cfg.Count {
			return runtime.ErrEndOfInput
		}
		out.Collect(s.gen(s.seq.Next))
		s.seq.Next += s.seq.Stride
	}
	return nil
}

func (s *source[T]) Snapshot() ([]byte, error) { return s.seq.Snapshot(), nil }

func (s *source[T]) Close() error { return nil }

// Sequence is the position of one subtask of a source that emits sequence
// numbers: subtask s of p emits s, s+p, s+2p, …, so Next advances by Stride.
// It restores from and encodes to checkpoints, and paces a rate limit.
type Sequence struct {
	Next   uint64 // next sequence number this subtask emits
	Stride uint64 // the source's parallelism

	interval time.Duration // per sequence number of this subtask, for the rate limit
	due      time.Time
}

const stateVersion = 1

// Open positions the sequence for the subtask in info, at the position
// restored (from Snapshot) or at the start when restored is nil.
// ratePerSecond limits the rate over all subtasks (0: unlimited).
func (s *Sequence) Open(info runtime.TaskInfo, restored []byte, ratePerSecond float64) error {
	s.Next, s.Stride = uint64(info.Subtask), uint64(info.Parallelism)
	if restored != nil {
		if len(restored) != 9 || restored[0] != stateVersion {
			return errors.New("generator: unreadable offset in checkpoint")
		}
		s.Next = binary.BigEndian.Uint64(restored[1:])
		if s.Next%s.Stride != uint64(info.Subtask) {
			return fmt.Errorf("generator: restored offset %d does not belong to subtask %d of %d", s.Next, info.Subtask, info.Parallelism)
		}
	}
	if ratePerSecond > 0 {
		s.interval = time.Duration(float64(time.Second) * float64(s.Stride) / ratePerSecond)
	}
	return nil
}

// Quota returns how many sequence numbers, at most chunk, the subtask may
// emit now under the rate limit, waiting (at most 100 ms, so that barriers
// are not delayed) if it is ahead of schedule.
func (s *Sequence) Quota(ctx context.Context, chunk int) (int, error) {
	if s.interval == 0 {
		return chunk, nil
	}
	if s.due.IsZero() {
		// The schedule starts with the first read, not at Open: the time
		// other subtasks take to open must not become a burst.
		s.due = time.Now()
	}
	if wait := time.Until(s.due); wait > 0 {
		// Pacing, not synchronization.
		select {
		case <-time.After(min(wait, 100*time.Millisecond)):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	n := min(chunk, int(time.Since(s.due)/s.interval)+1)
	s.due = s.due.Add(time.Duration(n) * s.interval)
	return n, nil
}

// Snapshot encodes the position for a checkpoint.
func (s *Sequence) Snapshot() []byte {
	b := make([]byte, 9)
	b[0] = stateVersion
	binary.BigEndian.PutUint64(b[1:], s.Next)
	return b
}
