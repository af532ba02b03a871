package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
)

// badRecord is the record the panicking functions of these tests choke on.
// The generator gives it to subtask 1 of 2 (subtask s emits s, s+2, …).
const badRecord = 43

// check panics on the bad record.
func check(v uint64) uint64 {
	if v == badRecord {
		panic(fmt.Sprintf("bad record %d", v))
	}
	return v
}

func str(v uint64) string { return fmt.Sprint(v) }

// panicSink panics when it is given the bad record.
type panicSink struct{ memSink }

func (s *panicSink) Write(ctx context.Context, rec string) error {
	if rec == str(badRecord) {
		panic("bad record " + rec)
	}
	return s.memSink.Write(ctx, rec)
}

// closePanics is an operator whose Close panics.
type closePanics struct{ finishingOp }

func (closePanics) Close() error { panic("bad close") }

// timerPanics registers an event-time timer per key; its handler panics.
func timerPanics(s runtime.Stream[uint64]) runtime.Stream[string] {
	return operators.ProcessWithTimers(operators.KeyBy(s, func(v uint64) uint64 { return v % 5 }), "timers",
		func(*operators.SetupContext[uint64]) (operators.TimedProcessFunc[uint64, uint64, string], operators.TimerFunc[uint64, string], error) {
			return func(ctx *operators.TimerContext[uint64], _ uint64, _ runtime.Collector[string]) error {
					ctx.Timers().RegisterEventTime(1000) // fires at the end of the input
					return nil
				}, func(ctx *operators.TimerContext[uint64], _ runtime.Timer, _ runtime.Collector[string]) error {
					panic(fmt.Sprintf("bad timer of key %d", ctx.Key()))
				}, nil
		})
}

// syncBuffer is a bytes.Buffer for concurrent loggers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestPanicFailsTheJob checks that a panic of user code anywhere in a task
// fails the job with an error naming the operator that panicked (inside a
// chain too, where operators call each other directly), its subtask, the
// panic value and where it was raised, and logs the stack at debug level.
func TestPanicFailsTheJob(t *testing.T) {
	sink := func(s runtime.Stream[string], name string) {
		runtime.To(s, name, newMemSink(&memOutput{}))
	}
	for _, tc := range []struct {
		name  string
		build func(p *runtime.Pipeline) []string // returns what the error must contain
	}{
		{"map in the middle of a chain", func(p *runtime.Pipeline) []string {
			a := operators.Map(runtime.From(p, "gen", newGen(100)), func(v uint64) uint64 { return v })
			b := operators.Map(a, check)
			sink(operators.Map(b, str), "sink")
			return []string{fmt.Sprintf("operator %q, subtask 1", b.Name()), "bad record 43", "engine_test.check at panic_test.go:"}
		}},
		{"first branch of a chain", func(p *runtime.Pipeline) []string {
			a := operators.Map(runtime.From(p, "gen", newGen(100)), func(v uint64) uint64 { return v })
			b := operators.Map(a, check)
			c := operators.Map(a, func(v uint64) uint64 { return v })
			sink(operators.Map(b, str), "sink-b")
			sink(operators.Map(c, str), "sink-c")
			return []string{fmt.Sprintf("operator %q, subtask 1", b.Name()), "bad record 43"}
		}},
		{"second branch of a chain", func(p *runtime.Pipeline) []string {
			a := operators.Map(runtime.From(p, "gen", newGen(100)), func(v uint64) uint64 { return v })
			b := operators.Map(a, func(v uint64) uint64 { return v })
			c := operators.Map(a, check)
			sink(operators.Map(b, str), "sink-b")
			sink(operators.Map(c, str), "sink-c")
			return []string{fmt.Sprintf("operator %q, subtask 1", c.Name()), "bad record 43"}
		}},
		// A watermark generator calls the operator chained behind it
		// directly (engine.DirectProcessor), without the edge's Collect
		// frame that the tracing follows otherwise.
		{"operator behind a source with watermarks", func(p *runtime.Pipeline) []string {
			s := runtime.From(p, "gen", newGen(100), runtime.WithWatermarks(runtime.Monotonic(func(v uint64) int64 { return int64(v) })))
			b := operators.Map(s, check)
			sink(operators.Map(b, str), "sink")
			return []string{fmt.Sprintf("operator %q, subtask 1", b.Name()), "bad record 43"}
		}},
		{"timestamps of a source with watermarks", func(p *runtime.Pipeline) []string {
			s := runtime.From(p, "gen", newGen(100), runtime.WithWatermarks(runtime.Monotonic(func(v uint64) int64 { return int64(check(v)) })))
			sink(operators.Map(s, str), "sink")
			return []string{`operator "gen", subtask 1`, "bad record 43"}
		}},
		{"operator behind AssignTimestamps", func(p *runtime.Pipeline) []string {
			a := operators.Map(runtime.From(p, "gen", newGen(100)), func(v uint64) uint64 { return v })
			s := runtime.AssignTimestamps(a, "stamp", runtime.Monotonic(func(v uint64) int64 { return int64(v) }))
			b := operators.Map(s, check)
			sink(operators.Map(b, str), "sink")
			return []string{fmt.Sprintf("operator %q, subtask 1", b.Name()), "bad record 43"}
		}},
		{"keyed function behind a gate", func(p *runtime.Pipeline) []string {
			s := runtime.From(p, "gen", newGen(100))
			sums := operators.Reduce(operators.KeyBy(s, func(v uint64) uint64 { return v % 5 }), "sum",
				func(acc, v uint64) uint64 { return acc + check(v) }, nil).SetParallelism(1)
			sink(operators.Map(sums, str), "sink")
			return []string{`operator "sum", subtask 0`, "bad record 43"}
		}},
		{"sink", func(p *runtime.Pipeline) []string {
			s := operators.Map(runtime.From(p, "gen", newGen(100)), str)
			runtime.To(s, "out", func() (runtime.Sink[string], error) {
				return &panicSink{memSink{out: &memOutput{}, pending: map[uint64][]string{}}}, nil
			})
			return []string{`operator "out", subtask 1`, "bad record 43", "(*panicSink).Write at panic_test.go:"}
		}},
		{"source", func(p *runtime.Pipeline) []string {
			s := runtime.From(p, "gen", must(generator.NewSource(generator.SourceConfig[uint64]{Record: check, Count: 100})))
			sink(operators.Map(s, str), "sink")
			return []string{`operator "gen", subtask 1`, "bad record 43"}
		}},
		{"timer handler", func(p *runtime.Pipeline) []string {
			s := runtime.From(p, "gen", newGen(100))
			sink(timerPanics(s).SetParallelism(1), "sink")
			return []string{`operator "timers", subtask 0`, "bad timer of key"}
		}},
		{"setup", func(p *runtime.Pipeline) []string {
			s := runtime.From(p, "gen", newGen(100))
			out := operators.Process(operators.KeyBy(s, func(v uint64) uint64 { return v }), "proc",
				func(*operators.SetupContext[uint64]) (operators.ProcessFunc[uint64, uint64, string], error) {
					panic("bad setup")
				})
			sink(out, "sink")
			return []string{`open operator "proc"`, "bad setup"}
		}},
		{"close", func(p *runtime.Pipeline) []string {
			s := operators.Map(runtime.From(p, "gen", newGen(100)), str)
			c := runtime.Apply(s, "closer", func() runtime.Operator[string, string] { return &closePanics{} })
			sink(c, "sink")
			return []string{`operator "closer": close`, "bad close"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := runtime.NewPipeline("panics")
			want := tc.build(p)
			log := &syncBuffer{}
			err := runtime.Run(context.Background(), p, runtime.Config{
				CheckpointDir:      t.TempDir(),
				CheckpointInterval: 5 * time.Millisecond,
				Parallelism:        2,
				BatchSize:          16,
				Logger:             slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
			})
			if !errors.Is(err, runtime.ErrPanic) {
				t.Fatalf("Run = %v, want an error wrapping ErrPanic", err)
			}
			t.Log(err)
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if l := log.String(); !strings.Contains(l, "user code panicked") || !strings.Contains(l, "runtime/debug.Stack") {
				t.Errorf("no stack logged at debug level:\n%s", l)
			}
		})
	}
}

// TestPanicExitStatus runs a job whose Map panics in a child process (this
// test binary again) under runtime.Main: it must exit with status 1, which
// Main uses for a failed job, not 2 (invalid flags or directory, and Go's
// status for an unrecovered panic).
func TestPanicExitStatus(t *testing.T) {
	if dir := os.Getenv("WEIR_TEST_PANIC_JOB"); dir != "" {
		p := runtime.NewPipeline("panics")
		s := operators.Map(runtime.From(p, "gen", newGen(100)), check)
		runtime.To(operators.Map(s, str), "sink", newMemSink(&memOutput{}))
		runtime.Main(p, runtime.Config{CheckpointDir: dir, CheckpointInterval: 5 * time.Millisecond, Parallelism: 2})
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPanicExitStatus$")
	cmd.Env = append(os.Environ(), "WEIR_TEST_PANIC_JOB="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("job exited with %v, want exit status 1; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "subtask 1: weir: panic in user code: bad record 43") {
		t.Fatalf("stderr does not name the subtask and the panic:\n%s", stderr.String())
	}
}
