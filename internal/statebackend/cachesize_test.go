package statebackend

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
)

// TestCachedBytesTracksHeap checks that the cache's estimate of its memory
// is within a factor of two of the heap its entries take, for a state of
// strings (sampled sizes) and one of integers (fixed size).
func TestCachedBytesTracksHeap(t *testing.T) {
	const n = 200_000
	for _, tc := range []struct {
		name string
		fill func(t *testing.T, b *Backend) (drop func())
	}{
		{"strings", func(t *testing.T, b *Backend) func() {
			s, err := NewScope(b, String)
			if err != nil {
				t.Fatal(err)
			}
			v, err := NewValue(s, "v", String)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				s.SetKey(fmt.Sprintf("key-%d", i))
				v.Put(fmt.Sprintf("a value of some length %d", i))
			}
			return func() { v.t.m = hashTable[string, string]{} }
		}},
		{"ints", func(t *testing.T, b *Backend) func() {
			s, err := NewScope(b, Int64)
			if err != nil {
				t.Fatal(err)
			}
			v, err := NewValue(s, "v", Int64)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				s.SetKey(int64(i))
				v.Put(int64(i))
			}
			return func() { v.t.m = hashTable[int64, int64]{} }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b, err := Open(Config{Dir: filepath.Join(dir, "live"), CacheBytes: 1 << 30})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			drop := tc.fill(t, b)
			// The checkpoint samples the encoded sizes and empties the
			// list of dirty keys. What the backend keeps beside the cache
			// (the snapshot's buffers for reuse, Pebble's) is not measured:
			// the heap is compared with and without the cache.
			checkpointNow(t, b, 1, filepath.Join(dir, "chk-1"))
			with := heapAlloc()
			est := b.CachedBytes()
			drop()
			used := int64(with) - int64(heapAlloc())
			t.Logf("%d entries: estimated %d bytes, %d bytes of heap", n, est, used)
			if est < used/2 || est > 2*used {
				t.Fatalf("estimated %d bytes for %d entries that took %d bytes of heap", est, n, used)
			}
		})
	}
}

func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestCacheBytesBound checks that the cache stays within its byte bound
// over all states (up to one entry of each, and the entries changed since
// the last checkpoint, which must stay), and that what it evicts reads back
// right.
func TestCacheBytesBound(t *testing.T) {
	// NB: about 330 keys of both states fill the bound, and eviction runs
	// for every key after those; 5,000 keys also take each state past
	// sizeSampleWindow samples (200 a checkpoint), so that the estimate's
	// window halves while the bound is checked. 20,000 keys checked nothing
	// more in four times the time (33 s of CPU under -race).
	const (
		bound = 64 << 10
		keys  = 5_000
		epoch = 200 // puts between checkpoints
	)
	dir := t.TempDir()
	b, err := Open(Config{Dir: filepath.Join(dir, "live"), CacheBytes: bound})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, err := NewScope(b, String)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewValue(s, "v", String)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMap(s, "m", Int64, Int64)
	if err != nil {
		t.Fatal(err)
	}
	key := func(i int) string { return fmt.Sprintf("key-%d", i) }
	id := uint64(0)
	for i := range keys {
		s.SetKey(key(i))
		v.Put(fmt.Sprintf("value %d", i))
		m.Put(int64(i), int64(-i))
		// Entries changed since the last checkpoint must stay.
		dirty := int64(len(v.t.dirty))*v.t.m.per + int64(len(m.t.dirty))*m.t.m.per
		slack := v.t.m.per + m.t.m.per
		if got := b.CachedBytes(); got > bound+dirty+slack {
			t.Fatalf("after %d keys: %d cached bytes, bound %d and %d bytes changed since the last checkpoint", i+1, got, bound, dirty)
		}
		if (i+1)%epoch == 0 {
			id++
			checkpointNow(t, b, id, filepath.Join(dir, fmt.Sprint("chk-", id)))
		}
	}
	for i := range keys { // reads alone must not grow the cache
		s.SetKey(key(i))
		if got, ok := v.Get(); !ok || got != fmt.Sprintf("value %d", i) {
			t.Fatalf("value of %s = %q, %v", key(i), got, ok)
		}
		if got, ok := m.Get(int64(i)); !ok || got != int64(-i) {
			t.Fatalf("map of %s = %d, %v", key(i), got, ok)
		}
	}
	slack := v.t.m.per + m.t.m.per
	if got := b.CachedBytes(); got > bound+slack {
		t.Fatalf("after reading every key: %d cached bytes, bound %d", got, bound)
	}
	if b.Entries() < 100 {
		t.Fatalf("the cache holds %d entries only", b.Entries())
	}
}

// TestEvictionMovesEachEntryOnce checks that evicting half the entries of
// a table hashes at most a key per entry evicted: each removal moves back
// the entries that follow in its cluster, and an upward walk removed them
// one by one, moving the rest each time (quadratic in the cluster's
// length).
func TestEvictionMovesEachEntryOnce(t *testing.T) {
	b, s, v := openValue[int64](t, nil)
	const keys, evicted = 1500, 750 // 1500 of 2048 slots: long clusters
	for k := range int64(keys) {
		s.SetKey(k)
		v.Put(k)
	}
	checkpointNow(t, b, 1, filepath.Join(t.TempDir(), "1")) // the entries are clean
	probes := 0
	hash := v.t.m.hash
	v.t.m.hash = func(k int64) uint64 { probes++; return hash(k) }
	v.t.loaded = true
	if freed := v.t.evict(evicted * v.t.m.per); freed != evicted*v.t.m.per {
		t.Fatalf("evicted %d bytes, want %d", freed, evicted*v.t.m.per)
	}
	if probes > evicted {
		t.Errorf("evicting %d entries hashed %d keys, want at most %d", evicted, probes, evicted)
	}
}
