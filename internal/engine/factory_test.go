package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
)

// infoSink is a memSink that records the TaskInfo it was opened with.
type infoSink struct {
	*memSink
	mu    *sync.Mutex
	infos *[]runtime.TaskInfo
}

func (s infoSink) Open(ctx context.Context, info runtime.TaskInfo, restored []byte) error {
	s.mu.Lock()
	*s.infos = append(*s.infos, info)
	s.mu.Unlock()
	return s.memSink.Open(ctx, info, restored)
}

// A factory error fails the start like an error from Open: the job fails
// with the operator named and the error wrapped, and a restart calls the
// factory again.
func TestFactoryErrorFailsStart(t *testing.T) {
	errNoBroker := errors.New("no broker")
	for _, op := range []string{"gen", "sink"} {
		for _, attempts := range []int{0, 1} {
			t.Run(fmt.Sprintf("%s/attempts=%d", op, attempts), func(t *testing.T) {
				var calls atomic.Int32
				failFirst := func(name string) error {
					if name == op && calls.Add(1) == 1 {
						return errNoBroker
					}
					return nil
				}
				out := &memOutput{}
				var mu sync.Mutex
				var infos []runtime.TaskInfo
				p := runtime.NewPipeline("factory")
				gen := newGen(100)
				nums := runtime.From(p, "gen", func() (runtime.Source[uint64], error) {
					if err := failFirst("gen"); err != nil {
						return nil, err
					}
					return gen()
				})
				runtime.To(operators.Map(nums, func(v uint64) string { return fmt.Sprint(v) }), "sink", func() (runtime.Sink[string], error) {
					if err := failFirst("sink"); err != nil {
						return nil, err
					}
					return infoSink{&memSink{out: out, pending: map[uint64][]string{}}, &mu, &infos}, nil
				})
				const interval = 7 * time.Millisecond
				err := runtime.Run(context.Background(), p, runtime.Config{
					CheckpointDir:      t.TempDir(),
					CheckpointInterval: interval,
					Parallelism:        2,
					Restart:            runtime.RestartStrategy{Attempts: attempts, Backoff: time.Millisecond},
				})
				if attempts == 0 {
					if !errors.Is(err, errNoBroker) || !strings.Contains(err.Error(), fmt.Sprintf("operator %q", op)) {
						t.Fatalf("Run = %v, want the factory's error naming operator %q", err, op)
					}
					return
				}
				if err != nil {
					t.Fatalf("Run after one restart = %v", err)
				}
				if n := len(out.lines()); n != 100 {
					t.Fatalf("committed %d records, want 100", n)
				}
				for _, info := range infos {
					if info.CheckpointInterval != interval {
						t.Fatalf("sink opened with TaskInfo.CheckpointInterval %v, want %v", info.CheckpointInterval, interval)
					}
				}
				if len(infos) < 2 {
					t.Fatalf("%d sink subtasks opened, want 2", len(infos))
				}
			})
		}
	}
}

// must returns a connector constructor's factory, failing loudly on an error:
// the tests' configurations are valid by construction.
func must[F any](f F, err error) F {
	if err != nil {
		panic(err)
	}
	return f
}
