package stdout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/weirstream/weir/runtime"
)

// DefaultBufferSize is the output buffer of each sink instance.
const DefaultBufferSize = 64 << 10

// ErrConfig is wrapped by the errors NewSink returns for a configuration
// that cannot work.
var ErrConfig = errors.New("stdout: invalid configuration")

// SinkConfig configures a stdout sink.
type SinkConfig[T any] struct {
	// Writer receives the output (os.Stdout if nil).
	Writer io.Writer
	// Format appends exactly one output line for rec to dst, including its
	// line terminator, and returns the extended slice. The sink writes these
	// bytes as they are and adds nothing.
	Format func(dst []byte, rec T) []byte
	// BufferSize is the number of bytes buffered before a write to Writer
	// (DefaultBufferSize if zero).
	BufferSize int
}

// EnsureDefaults fills in zero fields with their defaults.
func (c *SinkConfig[T]) EnsureDefaults() {
	if c.Writer == nil {
		c.Writer = os.Stdout
	}
	if c.BufferSize == 0 {
		c.BufferSize = DefaultBufferSize
	}
}

// Validate reports a configuration error.
func (c *SinkConfig[T]) Validate() error {
	switch {
	case c.Format == nil:
		return fmt.Errorf("%w: no Format function (stdout.StringLine formats strings)", ErrConfig)
	case c.BufferSize < 0:
		return fmt.Errorf("%w: BufferSize %d is negative", ErrConfig, c.BufferSize)
	}
	return nil
}

// StringLine is a Format for string records: it appends rec and "\n".
func StringLine(dst []byte, rec string) []byte {
	return append(append(dst, rec...), '\n')
}

// Lines returns the SinkConfig of a sink printing string records to os.Stdout,
// one per line.
func Lines() SinkConfig[string] {
	return SinkConfig[string]{Format: StringLine}
}

// stdoutMu serializes the writes of every sink printing to os.Stdout.
var stdoutMu sync.Mutex

// NewSink validates cfg and returns the sink factory for runtime.To. The
// instances it makes write whole lines only, under one lock, so that
// subtasks sharing the Writer never split each other's lines.
func NewSink[T any](cfg SinkConfig[T]) (runtime.SinkFactory[T], error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mu := lockFor(cfg.Writer)
	return func() (runtime.Sink[T], error) { return &sink[T]{cfg: cfg, mu: mu}, nil }, nil
}

func lockFor(w io.Writer) *sync.Mutex {
	if w == io.Writer(os.Stdout) {
		return &stdoutMu
	}
	return new(sync.Mutex)
}

// sink is one subtask's instance of the stdout sink, at-least-once:
// PreCommit flushes, Commit does nothing.
type sink[T any] struct {
	cfg SinkConfig[T]
	mu  *sync.Mutex // guards cfg.Writer, shared by the instances of a NewSink
	buf []byte
}

var _ runtime.Sink[string] = (*sink[string])(nil)

// Open prepares the sink; restored is ignored: there is nothing to recover.
func (s *sink[T]) Open(ctx context.Context, info runtime.TaskInfo, restored []byte) error {
	if s.buf == nil {
		s.buf = make([]byte, 0, s.cfg.BufferSize)
	}
	s.buf = s.buf[:0]
	return nil
}

// Write buffers the formatted record and writes the buffer out, whole lines
// only, once it holds BufferSize bytes.
func (s *sink[T]) Write(ctx context.Context, rec T) error {
	s.buf = s.cfg.Format(s.buf, rec)
	if len(s.buf) >= s.cfg.BufferSize {
		return s.flush()
	}
	return nil
}

// PreCommit writes out everything buffered and returns no state.
func (s *sink[T]) PreCommit(ctx context.Context, checkpointID uint64) ([]byte, error) {
	if err := s.flush(); err != nil {
		return nil, fmt.Errorf("stdout: checkpoint %d: %w", checkpointID, err)
	}
	return nil, nil
}

// Commit does nothing: records are visible as soon as they are written.
func (s *sink[T]) Commit(ctx context.Context, checkpointID uint64) error { return nil }

// Close writes out everything buffered.
func (s *sink[T]) Close() error { return s.flush() }

func (s *sink[T]) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	s.mu.Lock()
	_, err := s.cfg.Writer.Write(s.buf)
	s.mu.Unlock()
	s.buf = s.buf[:0]
	if err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	return nil
}
