package statebackend

import (
	"testing"
	"time"
)

// BenchmarkTTLGet reads values with a TTL that does not expire, of 4096
// cached keys in random order, from a Value, a Map and a Namespaced state,
// with each update policy. The clock moves a millisecond every 64 reads, so
// that with OnReadAndWrite some reads restart the TTL (write back). On a
// shared machine, compare instruction counts (valgrind --tool=cachegrind
// --cache-sim=no on the test binary, -test.benchtime 400000x): the wall
// clock and the CPU time vary by a third from run to run.
func BenchmarkTTLGet(b *testing.B) {
	const keys = 4096
	for _, update := range []TTLUpdate{OnCreateAndWrite, OnReadAndWrite} {
		clock := &fakeClock{ms: 1_000_000}
		_, scope := benchBackend(b, Config{Now: clock.now})
		opt := WithTTL(time.Hour, update)
		v, err := NewValue(scope, "v", Int64, opt)
		if err != nil {
			b.Fatal(err)
		}
		m, err := NewMap(scope, "m", Int64, Int64, opt)
		if err != nil {
			b.Fatal(err)
		}
		n, err := NewNamespaced(scope, "n", Int64, opt)
		if err != nil {
			b.Fatal(err)
		}
		for k := range uint64(keys) {
			scope.SetKey(k)
			v.Put(int64(k))
			m.Put(int64(k%4), int64(k))
			n.Put(int64(k%4), int64(k))
		}
		for _, kind := range []struct {
			name string
			get  func(k uint64) (int64, bool)
		}{
			{"value", func(uint64) (int64, bool) { return v.Get() }},
			{"map", func(k uint64) (int64, bool) { return m.Get(int64(k % 4)) }},
			{"namespaced", func(k uint64) (int64, bool) { return n.Get(int64(k % 4)) }},
		} {
			b.Run(kind.name+"/"+update.String(), func(b *testing.B) {
				var sum int64
				cpu0 := processCPU()
				for i := range uint64(b.N) {
					if i%64 == 0 {
						clock.ms++
					}
					k := (i * 0x9E3779B97F4A7C15 >> 20) % keys
					scope.SetKey(k)
					x, ok := kind.get(k)
					if !ok {
						b.Fatalf("key %d: no value", k)
					}
					sum += x
				}
				_ = sum
				// NB: CPU time as well: on a loaded machine the wall
				// clock counts the waits for a core.
				b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}
