package statebackend

import (
	"fmt"
	"path/filepath"
	"testing"
)

// checkpointDelta is checkpointNow for a snapshot that must be a delta; it
// returns the Pebble keys the delta deletes and how many it sets.
func checkpointDelta(t *testing.T, b *Backend, id uint64, dest string) (deleted [][]byte, set int) {
	t.Helper()
	if err := b.Freeze(id, dest); err != nil {
		t.Fatal(err)
	}
	if b.full {
		t.Fatalf("checkpoint %d is full, want a delta", id)
	}
	d := b.pending.delta
	if !b.Drain(0) {
		t.Fatal("Drain(0) did not finish")
	}
	res := <-b.Results() // the writer is done with d
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	b.Applied(res)
	var scratch [inlineKeyBytes]byte
	for i := range d.recs {
		if r := &d.recs[i]; r.deleted {
			deleted = append(deleted, append([]byte(nil), d.key(r, &scratch)...))
		} else {
			set++
		}
	}
	return deleted, set
}

// restoreValue opens checkpoint src, copied to dir, with openValue's state.
func restoreValue(t *testing.T, src, dir string) (*Backend, *Scope[int64], *Value[int64, int64]) {
	t.Helper()
	return openValueIn[int64](t, Config{Dir: copyTo(t, src, dir)}, nil)
}

// copyTo copies checkpoint src to dir and returns dir.
func copyTo(t *testing.T, src, dir string) string {
	t.Helper()
	copyCheckpoint(t, src, dir)
	return dir
}

// TestFreshEntriesLeaveNoTrace checks that a value created and deleted
// within one epoch, for a key that nothing older holds, leaves nothing: no
// entry in the cache, no tombstone in the epoch's delta. A key that a
// checkpoint holds (or a snapshot being drained, or a restored database)
// still needs its tombstone, and restores must not bring it back. Before
// fresh entries, each deletion kept a tombstone in the cache until Pebble
// had it and wrote it to the delta.
func TestFreshEntriesLeaveNoTrace(t *testing.T) {
	dir := t.TempDir()
	b, s, v := openValue[int64](t, nil)
	put := func(keys ...int64) {
		for _, k := range keys {
			s.SetKey(k)
			v.Put(k)
		}
	}
	del := func(keys ...int64) {
		for _, k := range keys {
			s.SetKey(k)
			v.Delete()
		}
	}
	// A base state that makes the later snapshots deltas.
	for k := range int64(100) {
		put(k)
	}
	checkpointNow(t, b, 1, filepath.Join(dir, "1"))

	// Epoch 2: ten fresh keys, five of them deleted (one of those twice
	// created and deleted), and one key of checkpoint 1 deleted.
	put(1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009)
	del(1000, 1001, 1002, 1003, 1004)
	put(1000)
	del(1000)
	del(5)
	if n, want := v.t.m.len(), 100+5; n != want {
		t.Errorf("%d cached entries after deleting fresh ones, want %d", n, want)
	}
	if len(v.t.tombs) != 1 {
		t.Errorf("%d tombstones after deleting 5 fresh keys and one checkpointed one, want 1", len(v.t.tombs))
	}
	deleted, set := checkpointDelta(t, b, 2, filepath.Join(dir, "2"))
	if len(deleted) != 1 || string(deleted[0]) != string(v.t.pebbleKey(5)) {
		t.Errorf("delta 2 deletes %x, want only key 5 (%x)", deleted, v.t.pebbleKey(5))
	}
	if set != 5 {
		t.Errorf("delta 2 sets %d keys, want 5", set)
	}

	// Epoch 3: a key checkpoint 2 holds is deleted; and one that snapshot
	// 3 (frozen, not drained) holds, deleted in epoch 4 before the drain.
	del(1005)
	put(1010)
	if err := b.Freeze(3, filepath.Join(dir, "3")); err != nil {
		t.Fatal(err)
	}
	del(1010)
	for !b.Drain(1) {
	}
	res := <-b.Results()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	b.Applied(res)
	deleted, _ = checkpointDelta(t, b, 4, filepath.Join(dir, "4"))
	if len(deleted) != 1 || string(deleted[0]) != string(v.t.pebbleKey(1010)) {
		t.Errorf("delta 4 deletes %x, want only key 1010 (%x)", deleted, v.t.pebbleKey(1010))
	}

	// Restored, nothing is fresh: deleting a restored key needs a
	// tombstone too.
	b, s, v = restoreValue(t, filepath.Join(dir, "4"), filepath.Join(dir, "restored"))
	put(2000)
	del(1006, 2000)
	deleted, _ = checkpointDelta(t, b, 5, filepath.Join(dir, "5"))
	if len(deleted) != 1 || string(deleted[0]) != string(v.t.pebbleKey(1006)) {
		t.Errorf("delta 5 deletes %x, want only key 1006 (%x)", deleted, v.t.pebbleKey(1006))
	}
	_, s, v = restoreValue(t, filepath.Join(dir, "5"), filepath.Join(dir, "restored-5"))
	live := map[int64]bool{1007: true, 1008: true, 1009: true}
	for k := range int64(100) {
		live[k] = k != 5
	}
	for _, k := range []int64{1000, 1001, 1002, 1003, 1004, 1005, 1006, 1010, 2000} {
		live[k] = false
	}
	for k, want := range live {
		s.SetKey(k)
		if got, ok := v.Get(); ok != want || (ok && got != k) {
			t.Errorf("restored key %d = %d, %v; want present: %v", k, got, ok, want)
		}
	}
}

// TestFreshTimersLeaveNoTrace checks that timers registered and fired (or
// deleted) within one epoch leave no entry and no tombstone: a session
// window's timer mostly lives that long.
func TestFreshTimersLeaveNoTrace(t *testing.T) {
	var hashes int
	dir := t.TempDir()
	b, s, tm := openTimers(t, filepath.Join(dir, "db"), 64<<20, &hashes)
	defer b.Close()
	checkpointNow(t, b, 1, filepath.Join(dir, "1")) // writes the state's kind
	for k := range int64(100) {
		s.SetKey(k)
		tm.Register(10 + k%2)
		tm.Register(20)
		tm.Delete(20)
	}
	fired := 0
	tm.Fire(11, func(int64, int64) { fired++ })
	if fired != 100 {
		t.Fatalf("fired %d timers, want 100", fired)
	}
	if n := tm.set.m.len(); n != 0 {
		t.Errorf("%d timer entries cached after every timer fired or was deleted, want 0", n)
	}
	if n := len(tm.set.tombs); n != 0 {
		t.Errorf("%d timer tombstones, want 0", n)
	}
	if deleted, set := checkpointDelta(t, b, 2, filepath.Join(dir, "2")); len(deleted)+set != 0 {
		t.Errorf("the delta deletes %d timers and sets %d, want nothing", len(deleted), set)
	}
}

// openSpilled opens a backend in dir with a cache of cacheBytes, too small
// for its state: its value state holds every other key of the first
// keys, written by checkpoints of interleaved keys (tables at several
// levels that each span the keys).
func openSpilled(t testing.TB, dir string, cacheBytes int64, keys int64, checkpoints int) (*Backend, *Scope[int64], *Value[int64, int64]) {
	t.Helper()
	b, s, v := openValueIn[int64](t, Config{Dir: filepath.Join(dir, "db"), CacheBytes: cacheBytes}, nil)
	step := 2 * int64(checkpoints)
	for id := range int64(checkpoints) {
		for k := 2 * id; k < keys; k += step {
			s.SetKey(k)
			v.Put(k)
		}
		checkpointNow(t, b, uint64(id+1), filepath.Join(dir, fmt.Sprint(id+1)))
	}
	if b.complete || v.t.complete {
		t.Fatal("the cache holds the whole state; the test needs it to read Pebble")
	}
	return b, s, v
}

// forgetStored makes v's table forget which keys Pebble holds, as a table
// restored without reading all its entries (or whose filter of stored keys
// outgrew its bound) does: its cache misses then read Pebble even for keys
// it never wrote, which the tests of Pebble's reads need.
func forgetStored(v *Value[int64, int64]) { v.t.stored, v.t.storedKnown = nil, false }

// pebbleReads returns how many times Pebble has consulted a table's Bloom
// filter, which each read of a key in openSpilled's range does.
func pebbleReads(b *Backend) int64 {
	f := b.db.Metrics().Filter
	return f.Hits + f.Misses
}

// TestAbsentKeysPassBloomFilters checks that reads of keys Pebble lacks
// are answered by the tables' Bloom filters, without reading their blocks:
// without filters, each read sought through every table.
func TestAbsentKeysPassBloomFilters(t *testing.T) {
	b, s, v := openSpilled(t, t.TempDir(), 16<<10, 2000, 4)
	forgetStored(v)
	before := b.db.Metrics().Filter.Hits
	const reads = 200
	for k := int64(1); k < 2*reads; k += 2 {
		s.SetKey(k)
		if _, ok := v.Get(); ok {
			t.Fatalf("key %d has a value", k)
		}
	}
	if hits := b.db.Metrics().Filter.Hits - before; hits < reads {
		t.Errorf("%d reads of absent keys, %d tables passed by their Bloom filter; want at least one a read", reads, hits)
	}
}

// TestAbsentKeysReadPebbleOnce checks that a key that Pebble lacks is read
// from Pebble once, then found absent in the cache; that a write replaces
// the absent marker; and that no snapshot writes it: not as a tombstone,
// and a value written over it and deleted in the same epoch leaves no
// trace (nothing older holds the key). Without the marker, every read of
// an absent key read Pebble.
func TestAbsentKeysReadPebbleOnce(t *testing.T) {
	dir := t.TempDir()
	b, s, v := openSpilled(t, dir, 16<<10, 2000, 4)
	forgetStored(v)
	get := func(k int64) (int64, bool) {
		s.SetKey(k)
		return v.Get()
	}
	for _, k := range []int64{1, 3, 5} {
		n := pebbleReads(b)
		if _, ok := get(k); ok {
			t.Fatalf("key %d has a value", k)
		}
		if pebbleReads(b) == n {
			t.Fatalf("the first read of key %d did not read Pebble", k)
		}
		n = pebbleReads(b)
		if _, ok := get(k); ok {
			t.Fatalf("key %d has a value", k)
		}
		if r := pebbleReads(b) - n; r != 0 {
			t.Errorf("the second read of absent key %d read Pebble (%d filters)", k, r)
		}
		// Write over the marker now: caching the next key's marker may
		// evict this one (which entry goes follows the per-process seed of
		// the table's slots), and a key not cached needs a tombstone.
		switch k {
		case 1:
			v.Put(100)
		case 3:
			v.Put(300)
			v.Delete()
		}
	}
	if got, ok := get(1); !ok || got != 100 {
		t.Errorf("key 1 = %d, %v after a Put of 100 over its absent marker", got, ok)
	}
	deleted, set := checkpointDelta(t, b, 5, filepath.Join(dir, "5"))
	if len(deleted) != 0 || set != 1 {
		t.Errorf("the delta deletes %x and sets %d keys, want only key 1 set", deleted, set)
	}

	_, s, v = restoreValue(t, filepath.Join(dir, "5"), filepath.Join(dir, "restored"))
	for k := range int64(10) {
		want, ok := get(k)
		switch {
		case k == 1 && (!ok || want != 100), k%2 == 0 && (!ok || want != k), k%2 == 1 && k != 1 && ok:
			t.Errorf("restored key %d = %d, %v", k, want, ok)
		}
	}
}
