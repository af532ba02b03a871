package statebackend

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/internal/testseed"
)

// restoredCounts checkpoints keys values (key k holds k+1) and opens the
// checkpoint with cfg (its Dir set here), returning the restored backend
// with its scope and value handle.
func restoredCounts(t *testing.T, keys int, cfg Config) (*Backend, *Scope[uint64], *Value[uint64, int64]) {
	t.Helper()
	dir := t.TempDir()
	b, err := Open(Config{Dir: filepath.Join(dir, "live")})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewScope[uint64](b, nil)
	v, err := NewValue(s, "count", Int64)
	if err != nil {
		t.Fatal(err)
	}
	for k := range uint64(keys) {
		s.SetKey(k)
		v.Put(int64(k) + 1)
	}
	checkpointNow(t, b, 1, filepath.Join(dir, "chk-1"))
	b.Close()
	cfg.Dir = filepath.Join(dir, "restored")
	copyCheckpoint(t, filepath.Join(dir, "chk-1"), cfg.Dir)
	r, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	rs, _ := NewScope[uint64](r, nil)
	rv, err := NewValue(rs, "count", Int64)
	if err != nil {
		t.Fatal(err)
	}
	return r, rs, rv
}

// TestWarmLater checks Config.WarmLater: a restored state is not loaded at
// registration but by Warm calls, at most a budget a call, while the
// subtask reads, changes and deletes keys and takes a checkpoint (each
// Warm call reads Pebble as it is then); every value is right throughout,
// and the state ends complete, so a miss no longer reads Pebble.
func TestWarmLater(t *testing.T) {
	const keys, budget = 5_000, 97
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	r, rs, rv := restoredCounts(t, keys, Config{WarmLater: true})
	if n := r.Entries(); n != 0 || !r.Warming() || rv.t.complete {
		t.Fatalf("after registration: %d entries cached, warming %v, complete %v; want none, true, false", n, r.Warming(), rv.t.complete)
	}
	want := map[uint64]int64{}
	for k := range uint64(keys) {
		want[k] = int64(k) + 1
	}
	check := func(what string) {
		t.Helper()
		for k := range uint64(keys + 10) {
			rs.SetKey(k)
			got, ok := rv.Get()
			if w, wok := want[k]; got != w || ok != wok {
				t.Fatalf("seed %d: %s: key %d = %d, %v; want %d, %v", seed, what, k, got, ok, w, wok)
			}
		}
	}
	// Change some keys before the warm reaches them, delete others.
	change := func() {
		for range 20 {
			k := uint64(rng.IntN(keys + 10))
			rs.SetKey(k)
			if rng.IntN(3) == 0 {
				rv.Delete()
				delete(want, k)
				continue
			}
			v := rng.Int64()
			rv.Put(v)
			want[k] = v
		}
	}
	change()
	dir := t.TempDir()
	for calls := 1; ; calls++ {
		before := r.Entries()
		done := r.Warm(budget)
		if n := r.Entries() - before; n > budget {
			t.Fatalf("Warm(%d) cached %d more entries", budget, n)
		}
		if done {
			break
		}
		if calls > 2*keys/budget {
			t.Fatalf("still warming after %d calls of Warm(%d) for %d entries", calls, budget, keys)
		}
		change()
		if calls%10 == 0 {
			checkpointNow(t, r, uint64(1+calls), filepath.Join(dir, fmt.Sprint("chk-", calls)))
		}
	}
	if r.Warming() || !rv.t.complete {
		t.Fatalf("after the warm: warming %v, complete %v; want false, true", r.Warming(), rv.t.complete)
	}
	check("after the warm")
	change()
	check("after changes to the warm state")
}

// TestWarmLaterStopsAtTheCacheBound checks that a WarmLater state larger
// than the cache stops loading at the bound, stays incomplete, and reads
// the rest from Pebble.
func TestWarmLaterStopsAtTheCacheBound(t *testing.T) {
	const keys = 5_000
	r, rs, rv := restoredCounts(t, keys, Config{WarmLater: true, CacheBytes: 16 << 10})
	for calls := 0; !r.Warm(64); calls++ {
		if calls > keys {
			t.Fatal("Warm never ended")
		}
	}
	if rv.t.complete || r.Entries() >= keys || r.CachedBytes() > 16<<10 {
		t.Fatalf("complete %v with %d of %d entries, %d bytes cached; want an incomplete cache within its 16 KiB bound",
			rv.t.complete, r.Entries(), keys, r.CachedBytes())
	}
	for k := range uint64(keys) {
		rs.SetKey(k)
		if got, ok := rv.Get(); !ok || got != int64(k)+1 {
			t.Fatalf("key %d = %d, %v; want %d", k, got, ok, k+1)
		}
	}
}
