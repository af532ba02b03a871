package kafka

import (
	"fmt"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/weirtest/conformance"
)

// TestConformance drives the source through the connector conformance
// suite: random Reads, snapshots, crashes and restores, on two topics of
// several partitions. The source promises the order of each partition.
func TestSourceConformance(t *testing.T) {
	b := startBroker(t)
	topics := map[string]int{"a": 3, "b": 2}
	for topic, parts := range topics {
		if err := b.CreateTopic(topic, parts); err != nil {
			t.Fatal(err)
		}
	}
	for topic := range topics {
		produce(t, b.Addr(), topic, 20, values(topic, 150)...)
	}
	cfg := SourceConfig[string]{
		Brokers: []string{b.Addr()}, Topics: []string{"a", "b"}, Mode: StopAtEnd,
		MaxBytesPerRead: 512, // a few batches per Read
		// The record with its partition, for Split.
		Deserializer: func(r Record) (string, error) {
			return fmt.Sprintf("%s/%d %s", r.Topic, r.Partition, r.Value), nil
		},
	}
	seed := testseed.Seed(t)
	for _, parallelism := range []int{1, 3} {
		t.Run(fmt.Sprint("parallelism ", parallelism), func(t *testing.T) {
			conformance.TestSource(t, conformance.SourceSuite[string]{
				New:         func() (runtime.Source[string], error) { return newSourceInstance(cfg) },
				Split:       func(rec string) string { p, _, _ := strings.Cut(rec, " "); return p },
				Parallelism: parallelism,
				Seed:        seed,
			})
		})
	}
}
