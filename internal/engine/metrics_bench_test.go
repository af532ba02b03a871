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

// BenchmarkChainedEdgeLarge is BenchmarkChainedEdge for a record that does
// not fit in registers (Nexmark's 120-byte Record) on the edge into an
// operator's Process, where counting copied it one more time in the
// generic code when it came first.
func BenchmarkChainedEdgeLarge(b *testing.B) {
	var sum int64
	op := Processor[largeRecord](largeSum{&sum})
	c, n := typeOps[largeRecord]{}.counting(processorInput[largeRecord]{op})
	counted := c.(Collector[largeRecord])
	var rec largeRecord
	for i := range b.N {
		rec.A[0], rec.A[14] = int64(i), int64(i)
		counted.Collect(rec)
	}
	if *n != uint64(b.N) || sum != 2*int64(b.N-1)*int64(b.N)/2 {
		b.Fatalf("counted %d of %d, sum %d", *n, b.N, sum)
	}
}

type largeRecord struct{ A [15]int64 }

type largeSum struct{ sum *int64 }

//go:noinline
func (s largeSum) Process(r largeRecord) { *s.sum += r.A[0] + r.A[14] }

// processorInput is a ProcessorInput, as the runtime's for an operator.
type processorInput[T any] struct{ op Processor[T] }

func (p processorInput[T]) Collect(rec T)           { p.op.Process(rec) }
func (p processorInput[T]) Processor() Processor[T] { return p.op }

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

// BenchmarkDirectEdge compares the two ways an emitter of the engine's own
// (a watermark generator) can pass a 120-byte record down a chained edge
// into an operator: through the edge's Collector, a dynamic call that
// copies the record once more, or with DirectProcessor.Collect, inlined
// into the caller.
func BenchmarkDirectEdge(b *testing.B) {
	var sum int64
	op := Processor[largeRecord](largeSum{&sum})
	c, _ := typeOps[largeRecord]{}.counting(processorInput[largeRecord]{op})
	d, ok := Direct[largeRecord](c)
	if !ok {
		b.Fatal("Direct: not a chained edge into an operator")
	}
	b.Run("collector", func(b *testing.B) {
		e := emitter[largeRecord]{out: c.(Collector[largeRecord])}
		var rec largeRecord
		for i := range b.N {
			rec.A[0] = int64(i)
			e.emit(rec)
		}
	})
	b.Run("direct", func(b *testing.B) {
		e := emitter[largeRecord]{direct: d, isDirect: true}
		var rec largeRecord
		for i := range b.N {
			rec.A[0] = int64(i)
			e.emit(rec)
		}
	})
}

// emitter is generic code that emits records as the runtime's watermark
// generator does.
type emitter[T any] struct {
	out      Collector[T]
	direct   DirectProcessor[T]
	isDirect bool
}

//go:noinline
func (e *emitter[T]) emit(rec T) {
	if e.isDirect {
		e.direct.Collect(rec)
		return
	}
	e.out.Collect(rec)
}
