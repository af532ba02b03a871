package nexmark

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/runtime"
)

// TestEngineMatchesReference is the harness's correctness gate: every query
// runs as a weir job with frequent checkpoints over a few thousand events
// and its committed output must equal the reference's, line for line. The
// variants add parallelism with out-of-order events, and a crash after a few
// checkpoints followed by a restore from the checkpoint directory.
func TestEngineMatchesReference(t *testing.T) {
	variants := []struct {
		name        string
		parallelism int
		oooGroup    int64
		crashAfter  int
	}{
		{"in-order", 1, 1, 0},
		{"parallel-out-of-order", 3, 7, 0},
		{"crash-restore", 3, 1, 2},
	}
	for _, q := range Queries {
		for _, v := range variants {
			t.Run(fmt.Sprintf("%s/%s", q.Name(), v.name), func(t *testing.T) {
				// 100 events per second of event time: 4000 events span 40 s,
				// i.e. several windows of q5, q7 and q8 and many auction
				// lifetimes of q4.
				g := MustNewGenerator(Config{Seed: 7, FirstEventRate: 100, NumEvents: 4000, OutOfOrderGroupSize: v.oooGroup})
				want, _ := q.RunReference(g, true)
				if want.Count == 0 {
					t.Fatalf("reference produced no results")
				}
				rate := 25_000.0 // spread the run over many checkpoints
				if v.crashAfter > 0 {
					rate = 10_000 // leave time for the checkpoints before the crash
				}
				res, err := q.RunEngine(context.Background(), EngineRun{
					Generator: g,
					Config: runtime.Config{
						CheckpointDir:      t.TempDir(),
						CheckpointInterval: 5 * time.Millisecond,
						Parallelism:        v.parallelism,
						Logger:             slog.New(slog.DiscardHandler),
					},
					RatePerSecond: rate,
					KeepLines:     true,
					crashAfter:    v.crashAfter,
				})
				if err != nil {
					t.Fatal(err)
				}
				if !res.Output.Equal(want) {
					t.Fatalf("output differs from the reference: %s", Diff(res.Output, want, 5))
				}
				if v.crashAfter > 0 && !res.crashed {
					t.Errorf("the job ended before the simulated crash")
				}
				if len(res.Checkpoints) < 2 {
					t.Errorf("%d checkpoints completed, want several", len(res.Checkpoints))
				}
			})
		}
	}
}

func TestReferenceSegmentsAreExact(t *testing.T) {
	defer func(n int64) { referenceSegment = n }(referenceSegment)
	referenceSegment = 1000
	g := MustNewGenerator(Config{Seed: 3, NumEvents: 10_500})
	q := QueryByName("q1").(query[Q1Result])
	seg, _ := q.RunReference(g, false)
	q.stateless = false
	whole, _ := q.RunReference(g, false)
	if !seg.Equal(whole) {
		t.Fatalf("segmented %+v, whole %+v", seg, whole)
	}
}

// TestCrashesAreExactlyOnce kills four stateful queries (sliding windows
// with pre-aggregation, closing auctions with timers, session windows, and
// an upsert stream emitted once per checkpoint) at random points of their
// input, several times per run, each time restarting from the checkpoint
// directory, and compares the committed output with the reference line by
// line (q18's by its final table).
func TestCrashesAreExactlyOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 14))
	const n = 6000
	for _, name := range []string{"q5", "q9", "q11", "q18"} {
		q := QueryByName(name)
		// Kill points spread over the first three quarters of the input
		// (replays count, so every one is reached with input left to
		// read): the first anywhere, before or after the first checkpoint.
		kills := make([]int64, 3)
		at := int64(0)
		for i := range kills {
			at += 1 + rng.Int64N(n/4)
			kills[i] = at
		}
		par := 1 + rng.IntN(3)
		t.Run(fmt.Sprintf("%s/parallelism=%d/kills=%v", name, par, kills), func(t *testing.T) {
			g := MustNewGenerator(Config{Seed: rng.Uint64(), FirstEventRate: 100, NumEvents: n})
			want, _ := q.RunReference(g, true)
			if want.Count == 0 {
				t.Fatal("reference produced no results")
			}
			res, err := q.RunEngine(context.Background(), EngineRun{
				Generator: g,
				Config: runtime.Config{
					CheckpointDir:      t.TempDir(),
					CheckpointInterval: 5 * time.Millisecond,
					Parallelism:        par,
					Logger:             slog.New(slog.DiscardHandler),
				},
				RatePerSecond: 20_000,
				KeepLines:     true,
				kills:         kills,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.kills != len(kills) {
				t.Fatalf("%d of %d kills happened: the job ended first", res.kills, len(kills))
			}
			if !res.Output.Equal(want) {
				t.Fatalf("output differs from the reference after %d kills: %s", res.kills, Diff(res.Output, want, 5))
			}
		})
	}
}
