package operators_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
)

// heldSource holds back its records from `from` on until release reports
// true.
type heldSource struct {
	runtime.Source[uint64]
	from    uint64
	release func() bool
	last    uint64
}

func (s *heldSource) Read(ctx context.Context, out runtime.Collector[uint64]) error {
	if s.last >= s.from && !s.release() {
		// Nothing to read: wait briefly, as the Source contract asks.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
		return nil
	}
	return s.Source.Read(ctx, runtime.CollectorFunc[uint64](func(v uint64) {
		s.last = v
		out.Collect(v)
	}))
}

// TestRestartAfterPanicIsExactlyOnce runs the counting job with a function
// that panics on one record of the second half of the input, once a
// checkpoint has committed output of the first half, then runs it again on
// the same checkpoint directory with the function fixed: the output
// committed by both runs together must be exactly that of one uninterrupted
// run. The function runs before the keyed state (in the source's task) or
// after it (in the counting task, once the record is counted).
func TestRestartAfterPanicIsExactlyOnce(t *testing.T) {
	const n, keys, bad = 4000, 37, 3 * 4000 / 4
	want := wantCounts(n, keys)
	badCount := fmt.Sprintf("k%d:%d", bad%keys, bad/keys+1) // the output of the bad record
	for _, where := range []string{"before the state", "after the state"} {
		t.Run(where, func(t *testing.T) {
			dir := t.TempDir()
			out := newOutput[string]()
			run := func(panics bool) *restartRun {
				rj := restartJob{name: "panic", par: 2, n: n, build: func(p *runtime.Pipeline, src runtime.SourceFactory[uint64], out *output[string]) {
					s := runtime.From(p, "src", func() (runtime.Source[uint64], error) {
						s, err := src()
						return &heldSource{Source: s, from: n / 2, release: func() bool { return len(out.records()) > 0 }}, err
					})
					if where == "before the state" {
						s = operators.Map(s, func(v uint64) uint64 {
							if panics && v == bad {
								panic(fmt.Sprintf("bad record %d", v))
							}
							return v
						})
					}
					counts := countStream(s, keys)
					if where == "after the state" {
						counts = operators.Map(counts, func(c string) string {
							if panics && c == badCount {
								panic("bad count " + c)
							}
							return c
						})
					}
					runtime.To(counts, "sink", newMemSink(out))
				}}
				return rj.start(t, dir, out, 0, nil)
			}

			first := run(true)
			err := first.job.Wait()
			first.cancel()
			if !errors.Is(err, runtime.ErrPanic) {
				t.Fatalf("first run: %v, want a panic", err)
			}
			out1 := out.records()
			if len(out1) == 0 || len(out1) >= len(want) {
				t.Fatalf("first run committed %d of %d records: the panic did not come in the middle", len(out1), len(want))
			}

			second := run(false)
			if second.job.RestoredFrom() == 0 {
				t.Fatal("second run did not restore a checkpoint")
			}
			err = second.job.Wait()
			second.cancel()
			if err != nil {
				t.Fatalf("second run: %v", err)
			}
			if got := sorted(out.records()); !slices.Equal(got, want) {
				t.Fatalf("runs committed %d+%d records, want %d; first difference at %d",
					len(out1), len(got)-len(out1), len(want), firstDiff(got, want))
			}
		})
	}
}

// TestProcessHasNoTimers checks that the functions of Process, which fires
// no timers, cannot reach any: their per-call context has no Timers
// (ProcessWithTimers' has), and neither has the setup's, which has no
// current key.
func TestProcessHasNoTimers(t *testing.T) {
	hasTimers := func(ctx reflect.Type) bool {
		_, field := ctx.Elem().FieldByName("Timers")
		_, method := ctx.MethodByName("Timers")
		return field || method
	}
	setup := reflect.TypeOf(operators.Process[int, int, int]).In(2)
	if ctx := setup.In(0); hasTimers(ctx) {
		t.Errorf("the setup context of Process, %v, has Timers", ctx)
	}
	if ctx := setup.Out(0).In(0); hasTimers(ctx) {
		t.Errorf("the context of Process' function, %v, has Timers", ctx)
	}
	timedSetup := reflect.TypeOf(operators.ProcessWithTimers[int, int, int]).In(2)
	if ctx := timedSetup.In(0); hasTimers(ctx) {
		t.Errorf("the setup context of ProcessWithTimers, %v, has Timers", ctx)
	}
	for i := range 2 {
		if ctx := timedSetup.Out(i).In(0); !hasTimers(ctx) {
			t.Errorf("the context of ProcessWithTimers' function %d, %v, has no Timers", i, ctx)
		}
	}
}
