package generator

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/weirstream/weir/runtime"
)

// ErrConfig is wrapped by the errors NewSource returns for a configuration
// that cannot work.
var ErrConfig = errors.New("generator: invalid configuration")

// DefaultChunkSize is the number of records per Read when
// SourceConfig.ChunkSize is zero.
const DefaultChunkSize = 1024

// SourceConfig configures a generator source.
type SourceConfig[T any] struct {
	// Record returns record seq of the stream. Required. It must be a pure
	// function of seq: a restored source replays by calling it again.
	Record func(seq uint64) T
	// Count is the number of records over all subtasks; 0 means unbounded.
	Count uint64
	// RatePerSecond limits the records per second over all subtasks; 0
	// means as fast as possible.
	RatePerSecond float64
	// ChunkSize is the number of records per Read (default
	// DefaultChunkSize).
	ChunkSize int
}

// EnsureDefaults fills in zero fields with their defaults.
func (c *SourceConfig[T]) EnsureDefaults() {
	if c.ChunkSize == 0 {
		c.ChunkSize = DefaultChunkSize
	}
}

// Validate reports a configuration that cannot work.
func (c *SourceConfig[T]) Validate() error {
	switch {
	case c.Record == nil:
		return fmt.Errorf("%w: no Record function", ErrConfig)
	case c.ChunkSize < 0:
		return fmt.Errorf("%w: ChunkSize %d is negative", ErrConfig, c.ChunkSize)
	case !(c.RatePerSecond >= 0):
		return fmt.Errorf("%w: RatePerSecond %v must be 0 (unlimited) or positive", ErrConfig, c.RatePerSecond)
	}
	return nil
}

// NewSource validates cfg and returns the source factory for runtime.From.
// Subtask s of p emits the sequence numbers s, s+p, s+2p, … below Count,
// each turned into a record by cfg.Record.
func NewSource[T any](cfg SourceConfig[T]) (runtime.SourceFactory[T], error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return func() (runtime.Source[T], error) { return &source[T]{cfg: cfg}, nil }, nil
}

// source is one subtask's instance.
type source[T any] struct {
	cfg    SourceConfig[T]
	pace   Sequence // only its rate limit: the positions are in splits
	splits []split  // usually one; more after a change of parallelism
}

func (s *source[T]) Open(_ context.Context, info runtime.TaskInfo, restored []byte) error {
	if len(restored) > 0 && restored[0] == splitsVersion {
		splits, err := decodeSplits(restored)
		if err != nil {
			return err
		}
		s.splits = splits
		return s.pace.Open(info, nil, s.cfg.RatePerSecond)
	}
	if err := s.pace.Open(info, restored, s.cfg.RatePerSecond); err != nil {
		return err
	}
	s.splits = []split{{next: s.pace.Next, stride: s.pace.Stride}}
	return nil
}

func (s *source[T]) Read(ctx context.Context, out runtime.Collector[T]) error {
	n, err := s.pace.Quota(ctx, s.cfg.ChunkSize)
	if err != nil {
		return err
	}
	for range n {
		sp := s.lowest()
		if sp == nil {
			return runtime.ErrEndOfInput
		}
		out.Collect(s.cfg.Record(sp.next))
		sp.next += sp.stride
	}
	return nil
}

// lowest returns the unfinished split with the lowest next sequence
// number, so that a subtask with several splits emits in sequence order,
// or nil when all are finished.
func (s *source[T]) lowest() *split {
	var low *split
	for i := range s.splits {
		sp := &s.splits[i]
		if s.cfg.Count > 0 && sp.next >= s.cfg.Count {
			continue
		}
		if low == nil || sp.next < low.next {
			low = sp
		}
	}
	return low
}

// Snapshot writes the state version of Sequence when the subtask has the
// split a fresh subtask has (the common case, readable by older versions),
// else the list of splits. (pace.Next mod pace.Stride is the subtask.)
func (s *source[T]) Snapshot() ([]byte, error) {
	if sp := s.splits; len(sp) == 1 && sp[0].stride == s.pace.Stride && sp[0].next%sp[0].stride == s.pace.Next%s.pace.Stride {
		s.pace.Next = s.splits[0].next
		return s.pace.Snapshot(), nil
	}
	return encodeSplits(s.splits), nil
}

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
