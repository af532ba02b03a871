package engine

import "testing"

// BenchmarkChainedEdge measures what counting costs per record on a chained
// edge: a direct Collect against one through countingCollector.
func BenchmarkChainedEdge(b *testing.B) {
	var sum uint64
	sink := Collector[uint64](sumCollector{&sum})
	b.Run("direct", func(b *testing.B) {
		for i := range b.N {
			sink.Collect(uint64(i))
		}
	})
	b.Run("counted", func(b *testing.B) {
		c, n := typeOps[uint64]{}.counting(sink)
		counted := c.(Collector[uint64])
		for i := range b.N {
			counted.Collect(uint64(i))
		}
		if *n != uint64(b.N) {
			b.Fatalf("counted %d of %d", *n, b.N)
		}
	})
}

// BenchmarkPublish measures the per-batch cost of publishing a task's
// counters (three chained members).
func BenchmarkPublish(b *testing.B) {
	t := &task{}
	var in, out [3]uint64
	t.stats.members = make([]memberStats, 3)
	for i := range t.stats.members {
		t.stats.members[i].in, t.stats.members[i].out = &in[i], &out[i]
	}
	for range b.N {
		in[0]++
		t.publish()
	}
	if t.stats.members[0].pubIn.Load() != uint64(b.N) {
		b.Fatal("not published")
	}
}

type sumCollector struct{ sum *uint64 }

func (c sumCollector) Collect(v uint64) { *c.sum += v }
