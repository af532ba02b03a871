package nexmark

import (
	"iter"
	"slices"
	"sync"
	"testing"
)

func BenchmarkGenerator(b *testing.B) {
	g := MustNewGenerator(DefaultConfig(1))
	var e Event
	b.ReportAllocs()
	for b.Loop() {
		g.Next(&e)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// benchEvents is the shared input of the reference benchmarks: 100k events
// at 1000 events/s, i.e. 100 s of event time (10 tumbling windows).
var benchEvents = sync.OnceValue(func() []Event {
	g := MustNewGenerator(Config{Seed: 1, FirstEventRate: 1000, NumEvents: 100_000})
	return slices.Collect(g.Events(0, g.NumEvents()))
})

func benchReference[R any](b *testing.B, q func(iter.Seq[Event]) []R) {
	in := benchEvents()
	b.ResetTimer()
	for b.Loop() {
		q(slices.Values(in))
	}
	b.ReportMetric(float64(b.N)*float64(len(in))/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkQ0Reference(b *testing.B)  { benchReference(b, Q0Reference) }
func BenchmarkQ1Reference(b *testing.B)  { benchReference(b, Q1Reference) }
func BenchmarkQ2Reference(b *testing.B)  { benchReference(b, Q2Reference) }
func BenchmarkQ3Reference(b *testing.B)  { benchReference(b, Q3Reference) }
func BenchmarkQ4Reference(b *testing.B)  { benchReference(b, Q4Reference) }
func BenchmarkQ5Reference(b *testing.B)  { benchReference(b, Q5Reference) }
func BenchmarkQ7Reference(b *testing.B)  { benchReference(b, Q7Reference) }
func BenchmarkQ8Reference(b *testing.B)  { benchReference(b, Q8Reference) }
func BenchmarkQ6Reference(b *testing.B)  { benchReference(b, Q6Reference) }
func BenchmarkQ9Reference(b *testing.B)  { benchReference(b, Q9Reference) }
func BenchmarkQ10Reference(b *testing.B) { benchReference(b, Q10Reference) }
func BenchmarkQ11Reference(b *testing.B) { benchReference(b, Q11Reference) }
func BenchmarkQ13Reference(b *testing.B) { benchReference(b, Q13Reference) }
func BenchmarkQ14Reference(b *testing.B) { benchReference(b, Q14Reference) }
func BenchmarkQ15Reference(b *testing.B) { benchReference(b, Q15Reference) }
func BenchmarkQ16Reference(b *testing.B) { benchReference(b, Q16Reference) }
func BenchmarkQ17Reference(b *testing.B) { benchReference(b, Q17Reference) }
func BenchmarkQ18Reference(b *testing.B) { benchReference(b, Q18Reference) }
func BenchmarkQ19Reference(b *testing.B) { benchReference(b, Q19Reference) }
func BenchmarkQ20Reference(b *testing.B) { benchReference(b, Q20Reference) }
func BenchmarkQ21Reference(b *testing.B) { benchReference(b, Q21Reference) }
func BenchmarkQ22Reference(b *testing.B) { benchReference(b, Q22Reference) }
