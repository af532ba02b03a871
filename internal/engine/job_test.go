package engine_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
)

// memOutput collects what memSinks commit, for tests.
type memOutput struct {
	mu        sync.Mutex
	committed []string
	commits   int
}

func (o *memOutput) lines() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.committed)
}

// memSink is a two-phase sink that keeps everything in memory.
type memSink struct {
	out     *memOutput
	cur     []string
	pending map[uint64][]string
}

func newMemSink(out *memOutput) runtime.SinkFactory[string] {
	return func() (runtime.Sink[string], error) { return &memSink{out: out, pending: map[uint64][]string{}}, nil }
}

func (s *memSink) Open(context.Context, runtime.TaskInfo, []byte) error { return nil }
func (s *memSink) Write(_ context.Context, rec string) error {
	s.cur = append(s.cur, rec)
	return nil
}
func (s *memSink) PreCommit(_ context.Context, id uint64) ([]byte, error) {
	s.pending[id] = s.cur
	s.cur = nil
	return nil, nil
}
func (s *memSink) Commit(_ context.Context, id uint64) error {
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	for pid, recs := range s.pending {
		if pid <= id {
			s.out.committed = append(s.out.committed, recs...)
			delete(s.pending, pid)
		}
	}
	s.out.commits++
	return nil
}
func (s *memSink) Close() error { return nil }

// pausingSource emits 0..n-1 over its subtasks, but holds back the second
// half until resume is closed, so that tests can make checkpoints happen in
// the middle of the input.
type pausingSource struct {
	runtime.Source[uint64]
	resume <-chan struct{}
	half   uint64
	next   uint64
	paused func() // called once, when the second half is first held back
}

func (s *pausingSource) Open(ctx context.Context, info runtime.TaskInfo, restored []byte) error {
	s.next = uint64(info.Subtask)
	return s.Source.Open(ctx, info, restored)
}

func (s *pausingSource) Read(ctx context.Context, out runtime.Collector[uint64]) error {
	if s.next >= s.half {
		if s.paused != nil {
			s.paused()
			s.paused = nil
		}
		select {
		case <-s.resume:
		case <-time.After(10 * time.Millisecond): // idle: let barriers through
			return nil
		}
	}
	return s.Source.Read(ctx, runtime.CollectorFunc[uint64](func(v uint64) {
		s.next = v
		out.Collect(v)
	}))
}

func newGen(n uint64) runtime.SourceFactory[uint64] {
	return must(generator.NewSource(generator.SourceConfig[uint64]{Record: func(seq uint64) uint64 { return seq }, Count: n, ChunkSize: 100}))
}

func countingPipeline(n uint64, keys uint64, out *memOutput, resume <-chan struct{}) *runtime.Pipeline {
	return countingPipelineTo(n, keys, newMemSink(out), resume)
}

// countingPipelineTo counts n records over keys keys into sink, emitting each
// key's count at every record; the source holds back the second half of its
// input until resume is closed.
func countingPipelineTo(n uint64, keys uint64, sink runtime.SinkFactory[string], resume <-chan struct{}) *runtime.Pipeline {
	return countingPipelineNamed("count", nil, n, keys, sink, resume)
}

// countingPipelineNamed is countingPipelineTo with the counting operator
// named counter; each source subtask calls paused, if set, when it starts
// holding back the second half.
func countingPipelineNamed(counter string, paused func(), n uint64, keys uint64, sink runtime.SinkFactory[string], resume <-chan struct{}) *runtime.Pipeline {
	p := runtime.NewPipeline("count")
	gen := newGen(n)
	nums := runtime.From(p, "gen", func() (runtime.Source[uint64], error) {
		src, err := gen()
		return &pausingSource{Source: src, resume: resume, half: n / 2, paused: paused}, err
	})
	keyed := operators.KeyBy(nums, func(v uint64) uint64 { return v % keys })
	counts := operators.Aggregate(keyed, counter, operators.AggregateFunc[uint64, uint64, int64, string]{
		Add:    func(acc int64, _ uint64, _ bool) int64 { return acc + 1 },
		Result: func(k uint64, acc int64) string { return fmt.Sprintf("%d\t%d", k, acc) },
	}, nil)
	runtime.To(counts, "sink", sink)
	return p
}

func TestBoundedJobCountsExactly(t *testing.T) {
	for _, par := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("parallelism=%d", par), func(t *testing.T) {
			out := &memOutput{}
			resume := make(chan struct{})
			p := countingPipeline(20000, 100, out, resume)
			var once sync.Once
			err := runtime.Run(context.Background(), p, runtime.Config{
				CheckpointDir:      t.TempDir(),
				CheckpointInterval: 5 * time.Millisecond,
				Parallelism:        par,
				BatchSize:          64,
				Events: runtime.EventListener{CheckpointCompleted: func(runtime.CheckpointInfo) {
					once.Do(func() { close(resume) })
				}},
			})
			if err != nil {
				t.Fatal(err)
			}
			lines := out.lines()
			if len(lines) != 20000 {
				t.Fatalf("committed %d records, want 20000", len(lines))
			}
			last := map[string]int{}
			seen := map[string]bool{}
			for _, l := range lines {
				if seen[l] {
					t.Fatalf("duplicate output %q", l)
				}
				seen[l] = true
				var k, c int
				fmt.Sscanf(l, "%d\t%d", &k, &c)
				last[fmt.Sprint(k)] = max(last[fmt.Sprint(k)], c)
			}
			for k, c := range last {
				if c != 200 {
					t.Fatalf("key %s counted %d, want 200", k, c)
				}
			}
			if out.commits < 2 {
				t.Fatalf("only %d commits: checkpoints did not run during the job", out.commits)
			}
		})
	}
}
