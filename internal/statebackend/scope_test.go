package statebackend

import (
	"errors"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Dir is empty"},
		{Config{Dir: "x", MaxParallelism: 1<<15 + 1}, "MaxParallelism"},
		{Config{Dir: "x", MaxParallelism: -1}, "MaxParallelism"},
		{Config{Dir: "x", CacheBytes: MinCacheBytes - 1}, "CacheBytes"},
	} {
		tc.cfg.EnsureDefaults()
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error about %s", tc.cfg, err, tc.want)
		}
		if _, err := Open(tc.cfg); err == nil {
			t.Errorf("Open(%+v) succeeded", tc.cfg)
		}
	}
}

// collidingNames returns two state names with the same 32-bit state id
// (found by a birthday search over "state-<n>").
func collidingNames(t *testing.T) (string, string) {
	a, c := "state-555857", "state-1826110"
	id := func(name string) uint32 {
		h := fnv.New32a()
		h.Write([]byte(name))
		return h.Sum32()
	}
	if id(a) != id(c) {
		t.Fatalf("%q and %q no longer collide: state ids changed, which orphans stored state", a, c)
	}
	return a, c
}

func TestRegisterErrors(t *testing.T) {
	b := openBackend(t)
	s, err := NewScope[string](b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewValue(s, "v", Int64); err != nil {
		t.Fatal(err)
	}
	if _, err := NewValue(s, "v", String); err == nil || !strings.Contains(err.Error(), "registered twice") {
		t.Errorf("second state called v: %v", err)
	}
	if _, err := NewMap(s, "v", String, Int64); err == nil {
		t.Error("map with the name of a value state was registered")
	}
	if _, err := NewValue(s, "", Int64); err == nil {
		t.Error("state with an empty name was registered")
	}
	if _, err := NewValue[string, int64](s, "nil-codec", nil); err == nil {
		t.Error("value state without codec was registered")
	}
	if _, err := NewMap[string, string, int64](s, "nil-map-codec", String, nil); err == nil {
		t.Error("map state without value codec was registered")
	}
	a, c := collidingNames(t)
	if _, err := NewValue(s, a, Int64); err != nil {
		t.Fatal(err)
	}
	if _, err := NewValue(s, c, Int64); err == nil || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), c) {
		t.Errorf("states %q and %q share an id but registering both gave %v", a, c, err)
	}
	if _, err := NewScope[struct{ A int }](b, nil); err == nil || !strings.Contains(err.Error(), "need a codec") {
		t.Errorf("scope of struct keys without codec: %v", err)
	}
	if err := b.Freeze(1, filepath.Join(t.TempDir(), "chk")); err != nil {
		t.Fatal(err)
	}
	if err := b.Freeze(2, filepath.Join(t.TempDir(), "chk")); !errors.Is(err, ErrDraining) {
		t.Errorf("Freeze while draining = %v, want ErrDraining", err)
	}
}

func TestMapAllStopsEarly(t *testing.T) {
	b := openBackend(t)
	s, _ := NewScope[string](b, nil)
	m, err := NewMap(s, "m", String, Int)
	if err != nil {
		t.Fatal(err)
	}
	s.SetKey("k")
	if s.Key() != "k" {
		t.Fatalf("Key() = %q", s.Key())
	}
	for i := range 10 {
		m.Put(fmt.Sprint(i), i)
	}
	n := 0
	for range m.All() {
		if n++; n == 3 {
			break
		}
	}
	if n != 3 {
		t.Fatalf("iterated %d entries after break at 3", n)
	}
	m.Delete("absent") // no-op, must not create an empty map
	s.SetKey("other")
	m.Delete("absent")
	if _, ok := m.Get("absent"); ok || m.Len() != 0 {
		t.Fatal("Delete of an absent entry created one")
	}
}

// TestPrefetchKeepsHashes checks that the keys of a Prefetch, set in order
// as the runtime sets them, are hashed once each: by the Prefetch, not again
// by their Get and Put (which hashed each key a second time). Keys set out
// of order, or skipped, still get their own hash.
func TestPrefetchKeepsHashes(t *testing.T) {
	b := openBackend(t)
	s, err := NewScope[pairKey](b, pairKeyCodec{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewValue(s, "v", Int64)
	if err != nil {
		t.Fatal(err)
	}
	hash := s.hash
	calls := 0
	s.hash = func(k pairKey) uint64 { calls++; return hash(k) }
	keys := make([]pairKey, 64)
	for i := range keys {
		keys[i] = pairKey{int64(i), int64(i % 7)}
	}
	for round := range 3 {
		calls = 0
		s.Prefetch(keys)
		for i, k := range keys {
			s.SetKey(k)
			got, _ := v.Get()
			v.Put(got + int64(i))
		}
		if round > 0 && calls != len(keys) { // (round 0 grows the table, which hashes)
			t.Errorf("round %d: %d hashes for %d keys, want one each", round, calls, len(keys))
		}
	}
	// Out of order: the hashes must still be the keys' own.
	s.Prefetch(keys)
	for _, i := range []int{3, 0, 1, 1, 63, 2, 5, 4} {
		s.SetKey(keys[i])
		if got, want := s.keyHash(keys[i]), hash(keys[i]); got != want {
			t.Errorf("key %v: hash %x, want %x", keys[i], got, want)
		}
		if got, _ := v.Get(); got != 3*int64(i) {
			t.Errorf("key %v: %d, want %d", keys[i], got, 3*i)
		}
	}
}

// TestValueEachChanged checks that EachChanged reports exactly the keys set
// since the last barrier that still have a value, each once with its
// current value, both by its list of changed keys (few changed) and by its
// walk over the table (many changed), and nothing changed before the
// barrier.
func TestValueEachChanged(t *testing.T) {
	b := openBackend(t)
	s, _ := NewScope[int64](b, nil)
	v, err := NewValue(s, "v", Int64)
	if err != nil {
		t.Fatal(err)
	}
	put := func(k, val int64) { s.SetKey(k); v.Put(val) }
	del := func(k int64) { s.SetKey(k); v.Delete() }
	check := func(step string, want map[int64]int64) {
		t.Helper()
		got := map[int64]int64{}
		v.EachChanged(func(k, val int64) {
			if _, dup := got[k]; dup {
				t.Errorf("%s: key %d reported twice", step, k)
			}
			got[k] = val
		})
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: changed %v, want %v", step, got, want)
		}
	}
	barrier := func(id uint64) {
		t.Helper()
		if err := b.Freeze(id, filepath.Join(t.TempDir(), "chk")); err != nil {
			t.Fatal(err)
		}
		if !b.Drain(0) {
			t.Fatal("Drain(0) did not finish")
		}
	}

	// Every key is new: the walk over the table.
	want := map[int64]int64{}
	for k := range int64(100) {
		put(k, k)
		put(k, k+1) // a second change in the epoch is the same key
		want[k] = k + 1
	}
	check("first interval", want)
	barrier(1)
	check("after the barrier", map[int64]int64{})

	// A few changes: the list of changed keys, with a deletion.
	put(3, 30)
	put(7, 70)
	del(5)
	check("second interval", map[int64]int64{3: 30, 7: 70})
	// A new key set and deleted has no value; set again, it is listed
	// twice among the changed keys but reported once.
	put(200, 1)
	del(200)
	check("second interval, a new key deleted", map[int64]int64{3: 30, 7: 70})
	put(200, 2)
	check("second interval, the key set again", map[int64]int64{3: 30, 7: 70, 200: 2})
	barrier(2)

	// Many changes and deletions: the walk, which must skip the deleted.
	want = map[int64]int64{}
	for k := int64(10); k < 90; k++ {
		if k%3 == 0 {
			del(k)
			continue
		}
		put(k, -k)
		want[k] = -k
	}
	check("third interval", want)
}

// openBackend opens a Backend with the default configuration in a
// temporary directory, closed when the test ends.
func openBackend(t *testing.T) *Backend {
	t.Helper()
	b, err := Open(Config{Dir: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
