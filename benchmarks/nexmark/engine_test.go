package nexmark

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

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
		{"parallel-out-of-order", 2, 7, 0},
		{"crash-restore", 2, 1, 2},
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
