package statebackend

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/internal/keygroup"
)

// checkpointCounts writes k+1 as the value of state "v" of each key k of
// keys in a fresh backend of maxParallelism key groups and returns the
// directory of its checkpoint.
func checkpointCounts(t *testing.T, maxParallelism int, keys []uint64) string {
	t.Helper()
	dir := t.TempDir()
	b, err := Open(Config{Dir: filepath.Join(dir, "live"), MaxParallelism: maxParallelism})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, _ := NewScope[uint64](b, nil)
	v, err := NewValue(s, "v", Int64) // as openValueIn
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		s.SetKey(k)
		v.Put(int64(k) + 1)
	}
	chk := filepath.Join(dir, "chk-1")
	checkpointNow(t, b, 1, chk)
	return chk
}

// TestAbsentKeysSkipPebble checks the filter of stored keys (keyFilter):
// once the cache has evicted, a read of a key that was never written reads
// Pebble only when the filter answers wrongly (about 1% of such keys; 5% is
// the limit here), where each read Pebble before; and every key written
// before, evicted since, still reads its value from Pebble, for a backend
// that started empty and for one whose state was restored (loaded whole at
// registration or by Warm calls), or rescaled from two subtasks' states. A
// filter that lacked restored keys would answer that they have no value.
func TestAbsentKeysSkipPebble(t *testing.T) {
	const maxParallelism = 8
	const restored, written, absent = 2_000, 12_000, 5_000
	keysOf := func(from, n uint64, keep func(uint64) bool) []uint64 {
		var ks []uint64
		for k := from; k < from+n; k++ {
			if keep == nil || keep(k) {
				ks = append(ks, k)
			}
		}
		return ks
	}
	oldKeys := keysOf(0, restored, nil)
	// inSubtask reports whether k is in subtask sub of 2 (key groups [0, 4)
	// and [4, 8)).
	inSubtask := func(sub int) func(uint64) bool {
		hash := keygroup.Hasher[uint64](Uint64)
		return func(k uint64) bool { return keygroup.Of(hash(k), maxParallelism)*2/maxParallelism == sub }
	}
	for _, c := range []struct {
		name string
		// dir returns the directory to open, holding the old keys, or
		// "" for an empty one.
		dir       func(t *testing.T) string
		warmLater bool
	}{
		{name: "empty", dir: func(*testing.T) string { return "" }},
		{name: "restored", dir: func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "restored")
			copyCheckpoint(t, checkpointCounts(t, maxParallelism, oldKeys), dir)
			return dir
		}},
		{name: "restored-warm-later", warmLater: true, dir: func(t *testing.T) string {
			dir := filepath.Join(t.TempDir(), "restored")
			copyCheckpoint(t, checkpointCounts(t, maxParallelism, oldKeys), dir)
			return dir
		}},
		{name: "rescaled", dir: func(t *testing.T) string {
			prev := []string{
				checkpointCounts(t, maxParallelism, keysOf(0, restored, inSubtask(0))),
				checkpointCounts(t, maxParallelism, keysOf(0, restored, inSubtask(1))),
			}
			dir := filepath.Join(t.TempDir(), "rescaled")
			restoreRescaled(t, prev, dir, 0, maxParallelism, 1)
			return dir
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{Dir: c.dir(t), MaxParallelism: maxParallelism, CacheBytes: 1 << 17, WarmLater: c.warmLater}
			var stored []uint64
			if cfg.Dir == "" {
				cfg.Dir = filepath.Join(t.TempDir(), "empty")
			} else {
				stored = oldKeys
			}
			b, s, v := openValueIn[uint64](t, cfg, nil)
			for !b.Warm(100) {
			}
			if n := b.Entries(); n != len(stored) || !v.t.complete {
				t.Fatalf("%d entries cached (complete: %v), want the %d restored: the test needs them all", n, v.t.complete, len(stored))
			}
			// New keys, checkpointed every 1,000: the cache evicts.
			id := uint64(0)
			for i, k := range keysOf(1<<20, written, nil) {
				s.SetKey(k)
				v.Put(int64(k) + 1)
				stored = append(stored, k)
				if i%1000 == 999 {
					id++
					checkpointNow(t, b, id, filepath.Join(t.TempDir(), fmt.Sprint(id)))
				}
			}
			evicted := 0
			for _, k := range stored {
				if v.t.m.find(k) < 0 {
					evicted++
				}
			}
			if evicted < len(stored)/2 {
				t.Fatalf("%d of %d keys evicted; the test needs most", evicted, len(stored))
			}
			for _, k := range stored {
				s.SetKey(k)
				if got, ok := v.Get(); !ok || got != int64(k)+1 {
					t.Fatalf("key %d = %d, %v; want %d (filter seed %#x)", k, got, ok, k+1, filterSeed)
				}
			}
			gets := b.gets
			for _, k := range keysOf(1<<21, absent, nil) {
				s.SetKey(k)
				if got, ok := v.Get(); ok {
					t.Fatalf("key %d, never written, = %d", k, got)
				}
			}
			if n := b.gets - gets; n > absent/20 {
				t.Errorf("reading %d keys never written read Pebble %d times; want at most %d (filter seed %#x, %d bytes)",
					absent, n, absent/20, filterSeed, v.t.stored.bytes())
			}
		})
	}
}

// TestKeyFilterHoldsWhatItAdded checks that the filter holds every key added
// across its growth, and holds few of the others.
func TestKeyFilterHoldsWhatItAdded(t *testing.T) {
	var f keyFilter
	const n = 200_000
	for k := range uint64(n) {
		f.add(filterHash(keygroup.Mix64(k)))
	}
	for k := range uint64(n) {
		if !f.mayHold(filterHash(keygroup.Mix64(k))) {
			t.Fatalf("key %d was added, the filter lacks it (filter seed %#x)", k, filterSeed)
		}
	}
	wrong := 0
	for k := uint64(n); k < 2*n; k++ {
		if f.mayHold(filterHash(keygroup.Mix64(k))) {
			wrong++
		}
	}
	if wrong > n/20 {
		t.Errorf("the filter holds %d of %d keys not added; want at most %d (filter seed %#x)", wrong, n, n/20, filterSeed)
	}
	t.Logf("%d layers, %d bytes for %d keys; %.2f%% of absent keys held", len(f.layers), f.bytes(), n, 100*float64(wrong)/n)
}

// TestFilterFilledAtFirstEviction checks that a table that fits its cache
// adds no key to its filter of stored keys while it does (the filter is
// not read then, and adding every encoded key cost 4-5% of a growing
// state's CPU), and that the first eviction fills it with every key a
// checkpoint wrote, evicted ones included, so that a read of any of them
// still goes to Pebble.
func TestFilterFilledAtFirstEviction(t *testing.T) {
	b, s, v := openValue[int64](t, nil)
	const keys = 3000
	for k := range int64(keys) {
		s.SetKey(k)
		v.Put(k)
	}
	checkpointNow(t, b, 1, filepath.Join(t.TempDir(), "1"))
	if n := v.t.stored.bytes(); n != 0 {
		t.Fatalf("the filter of a table that fits its cache takes %d bytes, want 0 (not filled before an eviction)", n)
	}
	v.t.loaded = true // the entries are clean: evictable
	if freed := v.t.evict(keys / 2 * v.t.m.per); freed == 0 {
		t.Fatal("nothing evicted")
	}
	if v.t.complete || v.t.stored == nil || !v.t.storedKnown {
		t.Fatalf("after an eviction: complete %v, filter %v, known %v; want an incomplete table with a filter", v.t.complete, v.t.stored != nil, v.t.storedKnown)
	}
	for k := range int64(keys) {
		if !v.t.stored.mayHold(v.t.filterHash(k)) {
			t.Fatalf("key %d was written by a checkpoint but the filter lacks it", k)
		}
		s.SetKey(k)
		if got, ok := v.Get(); !ok || got != k {
			t.Fatalf("key %d: %d, %v after the eviction, want %d", k, got, ok, k)
		}
	}
}
