package state

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/statebackend"
)

// BenchmarkValueCounting measures a running count per key over 1M keys in
// the cache, the hot path of keyed state, without checkpoints.
func BenchmarkValueCounting(b *testing.B) {
	keys, count := countingState(b)
	b.ResetTimer()
	for i := range uint64(b.N) {
		keys.SetKey((i * 0x9E3779B97F4A7C15 >> 20) % 1_000_000)
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
	keys, count := countingState(b)
	b.ResetTimer()
	for i := range uint64(b.N) {
		keys.SetKey((i * 0x9E3779B97F4A7C15 >> 20) % 1_000_000)
		count.Update(func(n int64, _ bool) int64 { return n + 1 })
	}
}

// countingState returns a scope over uint64 keys and a count per key, in a
// backend closed when b ends.
func countingState(b *testing.B) (*statebackend.Scope[uint64], *Value[uint64, int64]) {
	_, keys, scope := benchBackend(b, statebackend.Config{})
	count, err := NewValue(scope, "count", Int64)
	if err != nil {
		b.Fatal(err)
	}
	return keys, count
}

// BenchmarkValueCountingPrefetched is BenchmarkValueCountingUpdate the way
// the runtime drives keyed operators: the keys of a group of 64 records are
// prefetched, then each is updated.
func BenchmarkValueCountingPrefetched(b *testing.B) {
	keys, count := countingState(b)
	batch := make([]uint64, 64)
	b.ResetTimer()
	for i := uint64(0); i < uint64(b.N); i += 64 {
		for j := range batch {
			batch[j] = ((i + uint64(j)) * 0x9E3779B97F4A7C15 >> 20) % 1_000_000
		}
		keys.Prefetch(batch)
		for _, k := range batch {
			keys.SetKey(k)
			count.Update(func(n int64, _ bool) int64 { return n + 1 })
		}
	}
}

// benchBackend returns a backend closed when b ends and a scope over
// uint64 keys, as the runtime holds it (keys: the engine sets the current
// key) and as operators get it.
func benchBackend(b *testing.B, cfg statebackend.Config) (*statebackend.Backend, *statebackend.Scope[uint64], *Scope[uint64]) {
	cfg.Dir = b.TempDir()
	be, err := statebackend.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	keys, err := statebackend.NewScope[uint64](be, nil)
	if err != nil {
		b.Fatal(err)
	}
	return be, keys, (*Scope[uint64])(keys)
}

// BenchmarkValueCountingTTL is BenchmarkValueCountingUpdate with a TTL on
// the count (read and rewritten with each record, so every op reads the
// clock).
func BenchmarkValueCountingTTL(b *testing.B) {
	_, keys, scope := benchBackend(b, statebackend.Config{})
	count, err := NewValue(scope, "count", Int64, WithTTL(time.Hour, OnCreateAndWrite))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range uint64(b.N) {
		keys.SetKey((i * 0x9E3779B97F4A7C15 >> 20) % 1_000_000)
		count.Update(func(n int64, _ bool) int64 { return n + 1 })
	}
}

// listKeys is the number of keys the List benchmarks spread appends over.
const listKeys = 10_000

// checkpointEvery is how many records the checkpointed benchmarks process
// between checkpoints.
const checkpointEvery = 100_000

// benchCheckpoint takes checkpoint id of be and waits for it.
func benchCheckpoint(b *testing.B, be *statebackend.Backend, id uint64) {
	if err := be.Freeze(id, filepath.Join(b.TempDir(), fmt.Sprint("chk-", id))); err != nil {
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
	_, keys, scope := benchBackend(b, statebackend.Config{})
	l, err := NewList(scope, "buffer", Int64)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range uint64(b.N) {
		keys.SetKey((i * 0x9E3779B97F4A7C15 >> 20) % listKeys)
		l.Add(int64(i))
	}
}

// BenchmarkListAddCheckpointed appends to the lists of 10k keys, with a
// checkpoint every 100k records: what a buffering operator does. Each
// checkpoint writes only the elements appended since the previous one.
func BenchmarkListAddCheckpointed(b *testing.B) {
	be, keys, scope := benchBackend(b, statebackend.Config{})
	l, err := NewList(scope, "buffer", Int64)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range uint64(b.N) {
		keys.SetKey((i * 0x9E3779B97F4A7C15 >> 20) % listKeys)
		l.Add(int64(i))
		if i%checkpointEvery == checkpointEvery-1 {
			benchCheckpoint(b, be, i/checkpointEvery+1)
		}
	}
}

// BenchmarkListAll iterates over lists of 100 elements; ns/op is per list.
func BenchmarkListAll(b *testing.B) {
	_, keys, scope := benchBackend(b, statebackend.Config{})
	l, err := NewList(scope, "buffer", Int64)
	if err != nil {
		b.Fatal(err)
	}
	for k := range uint64(listKeys) {
		keys.SetKey(k)
		for j := range int64(100) {
			l.Add(j)
		}
	}
	var sum int64
	b.ResetTimer()
	for i := range uint64(b.N) {
		keys.SetKey((i * 0x9E3779B97F4A7C15 >> 20) % listKeys)
		for v := range l.All() {
			sum += v
		}
	}
	_ = sum
}
