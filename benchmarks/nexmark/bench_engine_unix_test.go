//go:build unix

package nexmark

import (
	"context"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/runtime"
)

// benchEngine runs query q as a weir job, at parallelism 1, over the
// events of the harness's default generator (1M per job), and reports
// events/s and the process's CPU nanoseconds per event (steadier than the
// wall time on a shared machine). Run it with -cpu 1 to match the
// harness's one core.
func benchEngine(b *testing.B, name string) {
	q := QueryByName(name)
	g := MustNewGenerator(Config{Seed: 1, NumEvents: 1 << 20})
	cpu0 := cpuTime()
	for b.Loop() {
		_, err := q.RunEngine(context.Background(), EngineRun{
			Generator: g,
			Config: runtime.Config{
				CheckpointDir:      b.TempDir(),
				CheckpointInterval: time.Second,
				Parallelism:        1,
				Logger:             slog.New(slog.DiscardHandler),
			},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	events := float64(b.N) * float64(g.NumEvents())
	b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/events, "cpu-ns/event")
}

// BenchmarkQ7Engine is the whole of q7's per-event path: the source's
// watermarks, the projection of bids, the pre-aggregated global top 1.
func BenchmarkQ7Engine(b *testing.B) { benchEngine(b, "q7") }

// cpuTime returns the CPU time (user and system) the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkQ18Engine, BenchmarkQ19Engine and BenchmarkQ20Engine are the
// queries whose state grows with every event: KeepLast over each (bidder,
// auction), TopNPerKey per auction, and a join that keeps every bid.
func BenchmarkQ18Engine(b *testing.B) { benchEngine(b, "q18") }
func BenchmarkQ19Engine(b *testing.B) { benchEngine(b, "q19") }
func BenchmarkQ20Engine(b *testing.B) { benchEngine(b, "q20") }
