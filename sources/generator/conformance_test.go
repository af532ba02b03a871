package generator_test

import (
	"fmt"
	"testing"

	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/sources/generator"
	"github.com/weirstream/weir/weirtest/conformance"
)

// TestConformance drives the generator through the connector conformance
// suite: random Reads, snapshots, crashes and restores. Each subtask's
// sequence is one ordered split.
func TestConformance(t *testing.T) {
	seed := testseed.Seed(t)
	for _, parallelism := range []int{1, 3} {
		t.Run(fmt.Sprint("parallelism ", parallelism), func(t *testing.T) {
			newSource := generator.New(func(seq uint64) uint64 { return seq * 10 }, generator.Config{Count: 500, ChunkSize: 7})
			conformance.TestSource(t, conformance.SourceSuite[uint64]{
				New:         func() (runtime.Source[uint64], error) { return newSource(), nil },
				Parallelism: parallelism,
				Seed:        seed,
			})
		})
	}
}
