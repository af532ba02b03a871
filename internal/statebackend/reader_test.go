package statebackend

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// fileCacheLookups returns how many times Pebble looked up a table's reader
// in its file cache, which it does to open an iterator on the table.
func fileCacheLookups(b *Backend) int64 {
	m := b.db.Metrics().FileCache
	return m.Hits + m.Misses
}

// TestMissReadsReuseTableIterators checks that cache misses read Pebble
// through iterators that outlive a read: reads of many keys open each
// table's iterator once between checkpoints, where a DB.Get per read opened
// one on each table that might hold the key. After a checkpoint a read
// sees what it wrote.
func TestMissReadsReuseTableIterators(t *testing.T) {
	dir := t.TempDir()
	b, s, v := openSpilled(t, dir, MinCacheBytes, 2000, 4)
	rng := rand.New(rand.NewPCG(3, 4))
	const reads = 200
	before, gets := fileCacheLookups(b), b.gets
	for range reads {
		k := 2 * rng.Int64N(1000)
		s.SetKey(k)
		if got, ok := v.Get(); !ok || got != k {
			t.Fatalf("key %d = %d, %v", k, got, ok)
		}
	}
	lookups := fileCacheLookups(b) - before
	if b.gets-gets < reads/2 {
		t.Fatalf("%d of %d reads were cache misses; the test needs most to read Pebble", b.gets-gets, reads)
	}
	if lookups > 16 {
		t.Errorf("%d reads of Pebble opened table iterators %d times, want at most once a table (16)", b.gets-gets, lookups)
	}

	// A key changed and checkpointed, then evicted, reads its new value.
	s.SetKey(0)
	v.Put(-1)
	checkpointNow(t, b, 10, filepath.Join(dir, "10"))
	for k := int64(2); b.Entries() > 0 && v.t.m.find(0) >= 0; k += 2 {
		s.SetKey(k % 2000)
		v.Get()
	}
	s.SetKey(0)
	if got, ok := v.Get(); !ok || got != -1 {
		t.Errorf("key 0 = %d, %v after a Put of -1 and a checkpoint", got, ok)
	}
}

// TestNamespacedReadsOpenTablesOnce checks that a restore of a Namespaced
// state, and All over namespaces the cache lacks, open each table's
// iterator about once a namespace, where an iterator for each of the 128
// key groups opened every table 128 times.
func TestNamespacedReadsOpenTablesOnce(t *testing.T) {
	dir := t.TempDir()
	h := openNamespaced(t, Config{Dir: filepath.Join(dir, "live"), CacheBytes: 1 << 20})
	const namespaces, keys, checkpoints = 4, 300, 3
	want := map[int64]map[string]int64{}
	var names []string
	for id := range checkpoints {
		for ns := range int64(namespaces) {
			if want[ns] == nil {
				want[ns] = map[string]int64{}
			}
			for k := id; k < keys; k += checkpoints {
				key := fmt.Sprint("k", k)
				h.put(ns, key, int64(k)+ns)
				want[ns][key] = int64(k) + ns
			}
		}
		h.checkpoint(uint64(id+1), filepath.Join(dir, fmt.Sprint(id+1)))
	}
	for k := range keys {
		names = append(names, fmt.Sprint("k", k))
	}
	tables := int64(0)
	for _, l := range h.b.db.Metrics().Levels {
		tables += l.TablesCount
	}
	r := restoreNamespaced(t, filepath.Join(dir, fmt.Sprint(checkpoints)), filepath.Join(dir, "restored"), Config{CacheBytes: MinCacheBytes})
	for _, l := range r.n.live {
		if l.t.complete {
			t.Fatal("a namespace was cached whole; the test needs All to read Pebble")
		}
	}
	before := fileCacheLookups(r.b)
	r.check(want, names[:10], "restored")
	if lookups, most := fileCacheLookups(r.b)-before, 4*namespaces*tables; lookups > most {
		t.Errorf("All over %d namespaces of %d tables opened table iterators %d times, want at most %d", namespaces, tables, lookups, most)
	}
}
