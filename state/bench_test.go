package state

import "testing"

// BenchmarkValueCounting measures a running count per key over 1M keys in
// the cache, the hot path of keyed state, without checkpoints.
func BenchmarkValueCounting(b *testing.B) {
	scope, count := countingState(b)
	b.ResetTimer()
	for i := range uint64(b.N) {
		scope.SetKey((i * 0x9E3779B97F4A7C15 >> 20) % 1_000_000)
		n, _ := count.Get()
		count.Put(n + 1)
	}
}

// BenchmarkPlainMapCounting is the same counting with a plain map, to read
// BenchmarkValueCounting against on the same machine at the same moment.
func BenchmarkPlainMapCounting(b *testing.B) {
	m := make(map[uint64]int64)
	var sum int64
	for i := range uint64(b.N) {
		k := (i * 0x9E3779B97F4A7C15 >> 20) % 1_000_000
		m[k]++
		sum += m[k]
	}
	_ = sum
}

// BenchmarkValueCountingUpdate is BenchmarkValueCounting with Value.Update,
// one lookup per record instead of two.
func BenchmarkValueCountingUpdate(b *testing.B) {
	scope, count := countingState(b)
	b.ResetTimer()
	for i := range uint64(b.N) {
		scope.SetKey((i * 0x9E3779B97F4A7C15 >> 20) % 1_000_000)
		count.Update(func(n int64, _ bool) int64 { return n + 1 })
	}
}

// countingState returns a scope over uint64 keys and a count per key, in a
// backend closed when b ends.
func countingState(b *testing.B) (*Scope[uint64], *Value[uint64, int64]) {
	be, err := Open(Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	scope, err := NewScope[uint64](be, nil)
	if err != nil {
		b.Fatal(err)
	}
	count, err := NewValue(scope, "count", Int64)
	if err != nil {
		b.Fatal(err)
	}
	return scope, count
}

// BenchmarkValueCountingPrefetched is BenchmarkValueCountingUpdate the way
// the runtime drives keyed operators: the keys of a group of 64 records are
// prefetched, then each is updated.
func BenchmarkValueCountingPrefetched(b *testing.B) {
	scope, count := countingState(b)
	keys := make([]uint64, 64)
	b.ResetTimer()
	for i := uint64(0); i < uint64(b.N); i += 64 {
		for j := range keys {
			keys[j] = ((i + uint64(j)) * 0x9E3779B97F4A7C15 >> 20) % 1_000_000
		}
		scope.Prefetch(keys)
		for _, k := range keys {
			scope.SetKey(k)
			count.Update(func(n int64, _ bool) int64 { return n + 1 })
		}
	}
}
