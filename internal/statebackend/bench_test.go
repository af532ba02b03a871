package statebackend

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// The benchmarks of the user's path are in package state; these measure
// alternatives only the implementation can build.

// listKeys is the number of keys the List benchmarks spread appends over.
const listKeys = 10_000

// checkpointEvery is how many records the checkpointed benchmarks process
// between checkpoints.
const checkpointEvery = 100_000

// benchCheckpoint takes checkpoint id of be and waits for it.
func benchCheckpoint(b *testing.B, be *Backend, id uint64) {
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

// BenchmarkValueSliceAppendCheckpointed is (state) BenchmarkListAddCheckpointed
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

// BenchmarkRestoreWarm restores a checkpoint of 500,000 entries of a Value
// (one keyed subtask of the counting benchmark's million keys at parallelism
// 2) and registers the state, which loads it whole into the cache: the part
// of a job's restore that is neither download nor Pebble's open.
func BenchmarkRestoreWarm(b *testing.B) {
	const keys = 500_000
	dir := b.TempDir()
	be, err := Open(Config{Dir: filepath.Join(dir, "live")})
	if err != nil {
		b.Fatal(err)
	}
	scope, err := NewScope[uint64](be, nil)
	if err != nil {
		b.Fatal(err)
	}
	v, err := NewValue(scope, "count", Int64)
	if err != nil {
		b.Fatal(err)
	}
	for k := range uint64(keys) {
		scope.SetKey(k * 0x9E3779B97F4A7C15)
		v.Put(int64(k))
	}
	chk := filepath.Join(dir, "chk-1")
	if err := be.Freeze(1, chk); err != nil {
		b.Fatal(err)
	}
	be.Drain(0)
	if res := <-be.Results(); res.Err != nil {
		b.Fatal(res.Err)
	}
	be.Close()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		live := filepath.Join(dir, fmt.Sprint("restored-", i))
		copyCheckpoint(b, chk, live)
		b.StartTimer()
		r, err := Open(Config{Dir: live})
		if err != nil {
			b.Fatal(err)
		}
		s, _ := NewScope[uint64](r, nil)
		if _, err := NewValue(s, "count", Int64); err != nil {
			b.Fatal(err)
		}
		if r.Entries() != keys {
			b.Fatalf("%d entries cached, want %d", r.Entries(), keys)
		}
		b.StopTimer()
		r.Close()
		os.RemoveAll(live)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/keys, "ns/entry")
}

// BenchmarkAbsentReads reads keys that Pebble lacks, each four times in a
// row (as q20's bids look up an auction that does not exist), from a state
// of 100,000 keys written by 8 checkpoints that outgrew a 1 MiB cache.
func BenchmarkAbsentReads(b *testing.B) {
	const keys = 200_000
	_, s, v := openSpilled(b, b.TempDir(), 1<<20, keys, 8)
	i := int64(0)
	for b.Loop() {
		s.SetKey(2*(i/4%(keys/2)) + 1)
		if _, ok := v.Get(); ok {
			b.Fatal("an odd key has a value")
		}
		i++
	}
}

// BenchmarkMissReads reads keys that Pebble holds, in a random order
// (seeded), from a state of 200,000 keys written by 8 checkpoints of
// interleaved keys (tables in L0 that each span the keys): the read of a
// cache miss, through the backend's iterator (see Backend.get) and, for
// comparison, through a DB.Get each, the way before it. (Benchmarked
// through Value.Get, eviction of the full cache took most of the time.)
func BenchmarkMissReads(b *testing.B) {
	const keys = 200_000
	be, _, v := openSpilled(b, b.TempDir(), 1<<20, keys, 8)
	b.Logf("%d tables in L0", be.db.Metrics().Levels[0].TablesCount)
	key := func(rng *rand.Rand) []byte {
		return v.t.pebbleKey(2 * rng.Int64N(keys/2))
	}
	b.Run("iterator", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		for b.Loop() {
			if _, ok, err := be.get(key(rng)); !ok || err != nil {
				b.Fatal("an even key has no value", err)
			}
		}
	})
	b.Run("DB.Get", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		for b.Loop() {
			_, closer, err := be.db.Get(key(rng))
			if err != nil {
				b.Fatal(err)
			}
			closer.Close()
		}
	})
}
