package state

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

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

// benchBackend returns a backend closed when b ends, and a scope over
// uint64 keys.
func benchBackend(b *testing.B, cfg Config) (*Backend, *Scope[uint64]) {
	cfg.Dir = b.TempDir()
	be, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	scope, err := NewScope[uint64](be, nil)
	if err != nil {
		b.Fatal(err)
	}
	return be, scope
}

// BenchmarkValueCountingTTL is BenchmarkValueCountingUpdate with a TTL on
// the count (read and rewritten with each record, so every op reads the
// clock).
func BenchmarkValueCountingTTL(b *testing.B) {
	_, scope := benchBackend(b, Config{})
	count, err := NewValue(scope, "count", Int64, WithTTL(time.Hour, OnCreateAndWrite))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range uint64(b.N) {
		scope.SetKey((i * 0x9E3779B97F4A7C15 >> 20) % 1_000_000)
		count.Update(func(n int64, _ bool) int64 { return n + 1 })
	}
}

// listKeys is the number of keys the List benchmarks spread appends over.
const listKeys = 10_000

// checkpointEvery is how many records the checkpointed benchmarks process
// between checkpoints.
const checkpointEvery = 100_000

// benchCheckpoint takes checkpoint id of be and waits for it.
func benchCheckpoint(b *testing.B, be *Backend, id uint64) {
	if err := be.Freeze(id, filepath.Join(be.cfg.Dir, "..", fmt.Sprint("chk-", id))); err != nil {
		b.Fatal(err)
	}
	be.Drain(0)
	res := <-be.Results()
	if res.Err != nil {
		b.Fatal(res.Err)
	}
	be.Applied(res)
	os.RemoveAll(res.Dir)
}

// BenchmarkListAdd appends to the lists of 10k keys, without checkpoints.
func BenchmarkListAdd(b *testing.B) {
	_, scope := benchBackend(b, Config{})
	l, err := NewList(scope, "buffer", Int64)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range uint64(b.N) {
		scope.SetKey((i * 0x9E3779B97F4A7C15 >> 20) % listKeys)
		l.Add(int64(i))
	}
}

// BenchmarkListAddCheckpointed appends to the lists of 10k keys, with a
// checkpoint every 100k records: what a buffering operator does. Each
// checkpoint writes only the elements appended since the previous one.
func BenchmarkListAddCheckpointed(b *testing.B) {
	be, scope := benchBackend(b, Config{})
	l, err := NewList(scope, "buffer", Int64)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range uint64(b.N) {
		scope.SetKey((i * 0x9E3779B97F4A7C15 >> 20) % listKeys)
		l.Add(int64(i))
		if i%checkpointEvery == checkpointEvery-1 {
			benchCheckpoint(b, be, i/checkpointEvery+1)
		}
	}
}

// BenchmarkValueSliceAppendCheckpointed is BenchmarkListAddCheckpointed
// with the lists kept in a Value as slices (the way before List): each
// checkpoint writes every changed list whole.
func BenchmarkValueSliceAppendCheckpointed(b *testing.B) {
	be, scope := benchBackend(b, Config{})
	v, err := NewValue(scope, "buffer", Codec[listVal[int64]](listCodec[int64]{elems: Int64}))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range uint64(b.N) {
		scope.SetKey((i * 0x9E3779B97F4A7C15 >> 20) % listKeys)
		v.Update(func(lv listVal[int64], _ bool) listVal[int64] {
			lv.elems = append(lv.elems, int64(i))
			return lv
		})
		if i%checkpointEvery == checkpointEvery-1 {
			benchCheckpoint(b, be, i/checkpointEvery+1)
		}
	}
}

// BenchmarkListAll iterates over lists of 100 elements; ns/op is per list.
func BenchmarkListAll(b *testing.B) {
	_, scope := benchBackend(b, Config{})
	l, err := NewList(scope, "buffer", Int64)
	if err != nil {
		b.Fatal(err)
	}
	for k := range uint64(listKeys) {
		scope.SetKey(k)
		for j := range int64(100) {
			l.Add(j)
		}
	}
	var sum int64
	b.ResetTimer()
	for i := range uint64(b.N) {
		scope.SetKey((i * 0x9E3779B97F4A7C15 >> 20) % listKeys)
		for v := range l.All() {
			sum += v
		}
	}
	_ = sum
}

// BenchmarkMapGetBytes reads 16-byte []byte entries of a Map, which Get
// copies (copy) or, as before, returns as cached (shared).
func BenchmarkMapGetBytes(b *testing.B) {
	for _, mode := range []string{"copy", "shared"} {
		b.Run(mode, func(b *testing.B) {
			_, scope := benchBackend(b, Config{})
			m, err := NewMap(scope, "m", Int64, Bytes)
			if err != nil {
				b.Fatal(err)
			}
			if mode == "shared" {
				m.clone = nil
			}
			for k := range uint64(100_000) {
				scope.SetKey(k)
				m.Put(int64(k%4), make([]byte, 16))
			}
			var n int
			b.ResetTimer()
			for i := range uint64(b.N) {
				k := (i * 0x9E3779B97F4A7C15 >> 20) % 100_000
				scope.SetKey(k)
				v, _ := m.Get(int64(k % 4))
				n += len(v)
			}
			_ = n
		})
	}
}
