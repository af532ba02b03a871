package stdout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/weirstream/weir/runtime"
)

// newInstance makes one sink instance of cfg, as the runtime does for a subtask.
func newInstance[T any](t *testing.T, cfg SinkConfig[T]) *sink[T] {
	t.Helper()
	newSink, err := NewSink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSink()
	if err != nil {
		t.Fatal(err)
	}
	return s.(*sink[T])
}

func TestBufferingAndFlush(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	cfg := Lines()
	cfg.Writer = &out
	s := newInstance(t, cfg)
	if err := s.Open(ctx, runtime.TaskInfo{Parallelism: 1}, nil); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		op   func() error
		want string
	}{
		{func() error { return s.Write(ctx, "a") }, ""},
		{func() error { return s.Write(ctx, "b") }, ""},
		{func() error { _, err := s.PreCommit(ctx, 1); return err }, "a\nb\n"},
		{func() error { return s.Write(ctx, "c") }, "a\nb\n"},
		{func() error { return s.Commit(ctx, 1) }, "a\nb\n"},
		{func() error { return s.Close() }, "a\nb\nc\n"},
	}
	for i, st := range steps {
		if err := st.op(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := out.String(); got != st.want {
			t.Fatalf("step %d: output %q, want %q", i, got, st.want)
		}
	}
}

func TestFullBufferWritesWholeLines(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	cfg := SinkConfig[int]{Writer: &out, BufferSize: 10,
		Format: func(dst []byte, rec int) []byte { return fmt.Appendf(dst, "rec %d\n", rec) }}
	s := newInstance(t, cfg)
	s.Open(ctx, runtime.TaskInfo{Parallelism: 1}, nil)
	s.Write(ctx, 1) // 6 bytes: buffered
	if out.Len() != 0 {
		t.Fatalf("written before the buffer is full: %q", out.String())
	}
	s.Write(ctx, 2) // 12 bytes: written out
	if got, want := out.String(), "rec 1\nrec 2\n"; got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
}

// TestSubtasksInterleaveWholeLines runs several instances of one factory
// concurrently on a shared writer (run it with -race).
func TestSubtasksInterleaveWholeLines(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	cfg := Lines()
	cfg.Writer = &out
	cfg.BufferSize = 64
	newSink, err := NewSink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const par, n = 4, 500
	var wg sync.WaitGroup
	for sub := range par {
		wg.Go(func() {
			s, _ := newSink()
			s.Open(ctx, runtime.TaskInfo{Subtask: sub, Parallelism: par}, nil)
			for i := range n {
				s.Write(ctx, fmt.Sprintf("subtask %d record %d", sub, i))
				if i%100 == 99 {
					s.PreCommit(ctx, uint64(i))
				}
			}
			s.Close()
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	next := make([]int, par)
	for _, l := range lines {
		var sub, i int
		if _, err := fmt.Sscanf(l, "subtask %d record %d", &sub, &i); err != nil || i != next[sub] {
			t.Fatalf("line %q: broken or out of order (err %v)", l, err)
		}
		next[sub]++
	}
	if !slices.Equal(next, []int{n, n, n, n}) {
		t.Fatalf("records per subtask %v", next)
	}
}

func TestConfig(t *testing.T) {
	if _, err := NewSink(SinkConfig[string]{}); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "no Format") {
		t.Fatalf("err = %v", err)
	}
	if s := newInstance(t, Lines()); s.cfg.Writer == nil || s.mu != &stdoutMu {
		t.Fatal("default writer is not os.Stdout under the shared lock")
	}
}
