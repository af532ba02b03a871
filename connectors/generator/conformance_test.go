package generator_test

import (
	"fmt"
	"testing"

	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/weirtest/conformance"
)

// TestConformance drives the generator through the connector conformance
// suite: random Reads, snapshots, crashes and restores. Each subtask's
// sequence is one ordered split.
func TestConformance(t *testing.T) {
	seed := testseed.Seed(t)
	for _, parallelism := range []int{1, 3} {
		t.Run(fmt.Sprint("parallelism ", parallelism), func(t *testing.T) {
			newSource, err := generator.NewSource(generator.SourceConfig[uint64]{Record: func(seq uint64) uint64 { return seq * 10 }, Count: 500, ChunkSize: 7})
			if err != nil {
				t.Fatal(err)
			}
			conformance.TestSource(t, conformance.SourceSuite[uint64]{
				New:         newSource,
				Parallelism: parallelism,
				Seed:        seed,
			})
		})
	}
}
