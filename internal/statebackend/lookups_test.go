package statebackend

import (
	"fmt"
	"path/filepath"
	"testing"
)

// countingHash wraps s's key hash in a counter of its calls.
func countingHash[K comparable](s *Scope[K]) *int {
	n := new(int)
	hash := s.hash
	s.hash = func(k K) uint64 { *n++; return hash(k) }
	return n
}

// openValue opens a backend in a temporary directory with one value state
// of int64 under a scope of keys K.
func openValue[K comparable](t *testing.T, keys Codec[K]) (*Backend, *Scope[K], *Value[K, int64]) {
	t.Helper()
	return openValueIn(t, Config{Dir: filepath.Join(t.TempDir(), "db")}, keys)
}

// openValueIn is openValue with cfg, whose directory may hold a restored
// database.
func openValueIn[K comparable](t testing.TB, cfg Config, keys Codec[K]) (*Backend, *Scope[K], *Value[K, int64]) {
	t.Helper()
	b, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	s, err := NewScope[K](b, keys)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewValue(s, "v", Int64)
	if err != nil {
		t.Fatal(err)
	}
	return b, s, v
}

// TestRecordHashesItsKeyOnce checks that a record's Get and Put hash its
// key once, for a new key and for a cached one, where each lookup hashed it
// again (three times, four for a new key). A key of a struct type is
// hashed through its encoding, which costs more than the lookup.
func TestRecordHashesItsKeyOnce(t *testing.T) {
	_, s, v := openValue[pairKey](t, pairKeyCodec{})
	hashes := countingHash(s)
	for round := range 2 { // new keys, then cached ones
		for i := range int64(100) {
			s.SetKey(pairKey{i, -i})
			before, grown := *hashes, v.t.m.grown
			if _, ok := v.Get(); ok != (round == 1) {
				t.Fatalf("round %d: key %d has a value: %v", round, i, ok)
			}
			v.Put(i)
			if v.t.m.grown != grown {
				continue // growing rehashes every key
			}
			if got := *hashes - before; got != 1 {
				t.Fatalf("round %d: a Get and a Put of key %d hashed it %d times, want once", round, i, got)
			}
		}
	}
}

// countingProbes counts the probes of v's cache table (its hashes, below
// the scope's memo: one a probe).
func countingProbes[K comparable](v *Value[K, int64]) *int {
	n := new(int)
	hash := v.t.m.hash
	v.t.m.hash = func(k K) uint64 { *n++; return hash(k) }
	return n
}

// TestPutLooksUpOnce checks that a Put probes the cache once, for a cached
// key and for a new one, whose free slot is where the lookup's probe ended:
// it used to look the key up to mark the change, then again to store it,
// and probe a third time for a new key's slot.
func TestPutLooksUpOnce(t *testing.T) {
	_, s, v := openValue[int64](t, nil)
	probes := countingProbes(v)
	for round := range 2 { // new keys, then cached ones
		for i := range int64(100) {
			s.SetKey(i)
			before, grown := *probes, v.t.m.grown
			v.Put(i)
			if v.t.m.grown != grown {
				continue // growing rehashes every key
			}
			if got := *probes - before; got != 1 {
				t.Fatalf("round %d: Put of key %d probed %d times, want once", round, i, got)
			}
		}
	}
}

// TestGetThenPutProbesOnce checks that a record's read-modify-write (a Get
// and a Put of the same key) probes the cache once: the Put reuses the
// Get's probe (hashTable.lastK), for a cached key and for a new one.
// Between records of other keys the memo must not mislead: every Get
// returns what the key's last Put stored.
func TestGetThenPutProbesOnce(t *testing.T) {
	_, s, v := openValue[int64](t, nil)
	probes := countingProbes(v)
	for round := range 3 { // new keys, then cached ones twice
		for i := range int64(100) {
			s.SetKey(i)
			before, grown := *probes, v.t.m.grown
			got, ok := v.Get()
			if want := int64(round - 1); ok != (round > 0) || (ok && got != i*10+want) {
				t.Fatalf("round %d: key %d holds %d, %v", round, i, got, ok)
			}
			v.Put(i*10 + int64(round))
			if v.t.m.grown != grown {
				continue // growing rehashes every key
			}
			if n := *probes - before; n != 1 {
				t.Fatalf("round %d: a Get and a Put of key %d probed %d times, want once", round, i, n)
			}
		}
	}
}

// TestDeltasCompactOnceEightAreInL0 checks that Pebble leaves the deltas of
// up to 7 checkpoints in L0 without compacting them into the state below,
// which each compaction rewrites whole: with L0CompactionThreshold 8 it
// compacted after 4.
func TestDeltasCompactOnceEightAreInL0(t *testing.T) {
	b, s, v := openValue[int64](t, nil)
	const keys = 1000
	for k := range int64(keys) {
		s.SetKey(k)
		v.Put(k)
	}
	dir := t.TempDir()
	if !checkpointNow(t, b, 1, filepath.Join(dir, "1")) {
		t.Fatal("the first checkpoint was a delta, want the full state")
	}
	for id := uint64(2); id <= 8; id++ {
		// A tenth of the keys, spread over the key space: each delta
		// overlaps the others and the full state.
		for k := int64(id); k < keys; k += 10 {
			s.SetKey(k)
			v.Put(k * int64(id))
		}
		if checkpointNow(t, b, id, filepath.Join(dir, fmt.Sprint(id))) {
			t.Fatalf("checkpoint %d was full, want a delta", id)
		}
		// Ingest schedules the compactions it makes due before it returns.
		m := b.db.Metrics()
		if n := m.Compact.Count + m.Compact.NumInProgress; n != 0 {
			t.Fatalf("after %d deltas in L0, %d compactions; want none before 8", id-1, n)
		}
	}
}
