package statebackend

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// ttlStates is a backend with a state of every kind with a TTL, on a fake
// clock.
type ttlStates struct {
	b     *Backend
	clock *fakeClock
	s     *Scope[string]
	v     *Value[string, int64]
	m     *Map[string, string, int64]
	l     *List[string, int64]
	n     *Namespaced[string, int64]
}

func openTTLStates(t *testing.T, cfg Config, clock *fakeClock, ttl time.Duration, update TTLUpdate) *ttlStates {
	t.Helper()
	cfg.Now = clock.now
	b, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	h := &ttlStates{b: b, clock: clock}
	h.s, _ = NewScope(b, String)
	opt := WithTTL(ttl, update)
	if h.v, err = NewValue(h.s, "v", Int64, opt); err != nil {
		t.Fatal(err)
	}
	if h.m, err = NewMap(h.s, "m", String, Int64, opt); err != nil {
		t.Fatal(err)
	}
	if h.l, err = NewList(h.s, "l", Int64, opt); err != nil {
		t.Fatal(err)
	}
	if h.n, err = NewNamespaced(h.s, "n", Int64, opt); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestTTLExpiry checks Flink's semantics on every kind of handle: a value
// expires ttl after its last write (or read, with OnReadAndWrite), per Map
// entry and per List element, and an expired value is never returned.
func TestTTLExpiry(t *testing.T) {
	const ttl = 10 * time.Second
	for _, update := range []TTLUpdate{OnCreateAndWrite, OnReadAndWrite} {
		t.Run(update.String(), func(t *testing.T) {
			clock := &fakeClock{ms: 1_000_000}
			h := openTTLStates(t, Config{Dir: t.TempDir()}, clock, ttl, update)
			h.s.SetKey("k")
			h.v.Put(1)
			h.m.Put("a", 1)
			h.l.Add(1)
			h.n.Put(7, 1)
			clock.ms += 6_000
			h.m.Put("b", 2)
			h.l.Add(2)
			// A read 9.999 s after the first writes: all there. With
			// OnReadAndWrite it restarts their TTL.
			clock.ms += 3_999
			v, ok := h.v.Get()
			mv, mok := h.m.Get("a")
			nv, nok := h.n.Get(7)
			if !ok || v != 1 || !mok || mv != 1 || !nok || nv != 1 {
				t.Fatalf("before expiry: value %d %v, map[a] %d %v, namespaced %d %v", v, ok, mv, mok, nv, nok)
			}
			if got := slices.Collect(h.l.All()); !slices.Equal(got, []int64{1, 2}) {
				t.Fatalf("before expiry: list = %v, want [1 2]", got)
			}
			clock.ms++ // 10 s after the first writes
			_, ok = h.v.Get()
			_, mok = h.m.Get("a")
			_, nok = h.n.Get(7)
			list := slices.Collect(h.l.All())
			if update == OnCreateAndWrite {
				if ok || mok || nok || !slices.Equal(list, []int64{2}) || h.m.Len() != 1 || h.l.Len() != 1 {
					t.Fatalf("ttl after write: value %v, map[a] %v (Len %d), namespaced %v, list %v: want the first writes expired",
						ok, mok, h.m.Len(), nok, list)
				}
				return
			}
			if !ok || !mok || !nok || !slices.Equal(list, []int64{1, 2}) {
				t.Fatalf("ttl after read: value %v, map[a] %v, namespaced %v, list %v: want all kept by the last read", ok, mok, nok, list)
			}
			clock.ms += 10_000
			_, ok = h.v.Get()
			_, mok = h.m.Get("a")
			if ok || mok || h.l.Len() != 0 || h.m.Len() != 0 {
				t.Fatalf("10 s after the last read: value %v, map[a] %v, list Len %d, map Len %d; want all expired", ok, mok, h.l.Len(), h.m.Len())
			}
			var all []string
			h.n.All(7, func(k string, v int64) { all = append(all, k) })
			if len(all) != 0 {
				t.Fatalf("namespaced All returned expired keys %v", all)
			}
		})
	}
}

// TestTTLUpdateAfterExpiry checks that Update sees an expired value absent.
func TestTTLUpdateAfterExpiry(t *testing.T) {
	clock := &fakeClock{ms: 1}
	h := openTTLStates(t, Config{Dir: t.TempDir()}, clock, time.Second, OnCreateAndWrite)
	h.s.SetKey("k")
	h.v.Put(41)
	h.n.Put(1, 41)
	clock.ms += 1000
	inc := func(n int64, ok bool) int64 {
		if ok {
			return n + 1
		}
		return -1
	}
	if got := h.v.Update(inc); got != -1 {
		t.Errorf("Value.Update of an expired value returned %d, want -1 (absent)", got)
	}
	if got := h.n.Update(1, inc); got != -1 {
		t.Errorf("Namespaced.Update of an expired value returned %d, want -1 (absent)", got)
	}
}

// TestTTLOptionErrors checks that a bad TTL fails the handle's creation
// with an error naming the state.
func TestTTLOptionErrors(t *testing.T) {
	b, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, _ := NewScope(b, String)
	for _, c := range []struct {
		opt  Option
		want string
	}{
		{WithTTL(0, OnCreateAndWrite), "at least 1ms"},
		{WithTTL(time.Microsecond, OnReadAndWrite), "at least 1ms"},
		{WithTTL(time.Second, 0), "OnCreateAndWrite"},
	} {
		_, err := NewValue(s, "bad", Int64, c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `"bad"`) {
			t.Errorf("NewValue with a bad TTL: %v; want an error naming \"bad\" and saying %q", err, c.want)
		}
	}
}

// storedKeys returns the number of entries Pebble holds for state name.
func storedKeys(t *testing.T, b *Backend, name string) int {
	t.Helper()
	for id, n := range b.names {
		if n == name {
			count := 0
			complete := b.complete
			b.complete = false // scan only reads Pebble when something is there
			err := b.scan(id, func(_, _ []byte) error { count++; return nil })
			b.complete = complete
			if err != nil {
				t.Fatal(err)
			}
			return count
		}
	}
	t.Fatalf("no state %q", name)
	return 0
}

// TestTTLCleanupWithCheckpoints checks that expired values leave memory and
// Pebble with checkpoints, cached or not, and that a partly expired Map or
// List is trimmed, with bounded work per checkpoint.
func TestTTLCleanupWithCheckpoints(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{ms: 1_000_000}
	const keys = 3 * ttlCleanupMin / 2 // more than one checkpoint's quota
	h := openTTLStates(t, Config{Dir: filepath.Join(dir, "live"), CacheBytes: 4 * MinCacheBytes}, clock, time.Minute, OnCreateAndWrite)
	for i := range keys {
		h.s.SetKey(fmt.Sprint("k", i))
		h.v.Put(int64(i))
		h.m.Put("old", 1)
		h.l.Add(1)
		h.n.Put(1, int64(i))
	}
	id := uint64(1)
	checkpoint := func() {
		t.Helper()
		checkpointNow(t, h.b, id, filepath.Join(dir, fmt.Sprint("chk-", id)))
		id++
	}
	checkpoint()
	clock.ms += 30_000
	for i := range keys {
		h.s.SetKey(fmt.Sprint("k", i))
		h.m.Put("new", 2)
		h.l.Add(2)
	}
	checkpoint()
	for _, name := range []string{"v", "m", "l", "n"} {
		if n := storedKeys(t, h.b, name); n != keys {
			t.Fatalf("state %q: Pebble holds %d keys before expiry, want %d", name, n, keys)
		}
	}

	clock.ms += 30_000 // the first writes expire
	// Each checkpoint cleans a bounded part of each state: the cached
	// values it finds expired are deleted in the next epoch, so they leave
	// Pebble with the checkpoint after; the others leave Pebble with it.
	checkpoint()
	if n := liveEntries(h.v.tv.t); n == 0 || n == keys {
		t.Errorf("value state: %d of %d expired values left in the cache after one checkpoint; the cleanup must be bounded, and not nothing", n, keys)
	}
	for range 3 {
		checkpoint()
	}
	for _, name := range []string{"v", "n"} {
		if n := storedKeys(t, h.b, name); n != 0 {
			t.Errorf("state %q: Pebble holds %d expired keys after four checkpoints", name, n)
		}
	}
	// The cache holds no expired value either (tombstones left with the
	// checkpoints that wrote them).
	if n := h.v.tv.t.entries(); n != 0 {
		t.Errorf("value state: %d entries cached after cleanup", n)
	}
	// Map and List keys remain, trimmed to their new parts.
	for i := 0; i < keys; i += 97 {
		h.s.SetKey(fmt.Sprint("k", i))
		checkTrimmed(t, h, i)
	}

	// What Pebble holds was trimmed, not only what reads see: read it
	// with a clock that stopped before the expiry.
	copyCheckpoint(t, filepath.Join(dir, fmt.Sprint("chk-", id-1)), filepath.Join(dir, "restored"))
	past := &fakeClock{ms: 1_000_000}
	r := openTTLStates(t, Config{Dir: filepath.Join(dir, "restored"), CacheBytes: 4 * MinCacheBytes}, past, time.Minute, OnCreateAndWrite)
	for i := 0; i < keys; i += 97 {
		r.s.SetKey(fmt.Sprint("k", i))
		if v, ok := r.v.Get(); ok {
			t.Fatalf("k%d: the value expired before the checkpoint is still stored (%d)", i, v)
		}
		checkTrimmed(t, r, i)
	}
}

// liveEntries returns the number of cached entries of t that are not
// tombstones.
func liveEntries[K comparable, V any](t *table[K, V]) int {
	n := 0
	for _, s := range t.m.slots {
		if s.e.mark&occupied != 0 && !s.e.deleted() {
			n++
		}
	}
	return n
}

func checkTrimmed(t *testing.T, h *ttlStates, i int) {
	t.Helper()
	if got := maps.Collect(h.m.All()); !maps.Equal(got, map[string]int64{"new": 2}) {
		t.Fatalf("k%d: map = %v, want only the entry written after the expired one", i, got)
	}
	if got := slices.Collect(h.l.All()); !slices.Equal(got, []int64{2}) {
		t.Fatalf("k%d: list = %v, want [2]", i, got)
	}
}

// TestTTLAcrossRestore checks that a TTL counts wall-clock time across a
// restore: a value restored after its TTL is expired.
func TestTTLAcrossRestore(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{ms: 1_000_000}
	h := openTTLStates(t, Config{Dir: filepath.Join(dir, "live")}, clock, time.Hour, OnCreateAndWrite)
	h.s.SetKey("k")
	h.v.Put(1)
	checkpointNow(t, h.b, 1, filepath.Join(dir, "chk-1"))
	copyCheckpoint(t, filepath.Join(dir, "chk-1"), filepath.Join(dir, "r1"))
	clock.ms += time.Hour.Milliseconds() - 1
	r := openTTLStates(t, Config{Dir: filepath.Join(dir, "r1")}, clock, time.Hour, OnCreateAndWrite)
	r.s.SetKey("k")
	if _, ok := r.v.Get(); !ok {
		t.Fatal("value restored within its TTL is gone")
	}
	copyCheckpoint(t, filepath.Join(dir, "chk-1"), filepath.Join(dir, "r2"))
	clock.ms++
	r = openTTLStates(t, Config{Dir: filepath.Join(dir, "r2")}, clock, time.Hour, OnCreateAndWrite)
	r.s.SetKey("k")
	if v, ok := r.v.Get(); ok {
		t.Fatalf("value restored an hour after it was written, with a TTL of an hour: %d", v)
	}
}

// TestKindChangeRefused checks that a state restored as another kind than
// it was stored as (a TTL added, a Value read as a List) fails with
// ErrKindChanged instead of misreading its bytes, and that the same kind
// opens.
func TestKindChangeRefused(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(Config{Dir: filepath.Join(dir, "live")})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewScope(b, String)
	v, _ := NewValue(s, "x", String)
	s.SetKey("k")
	v.Put("a string longer than a timestamp")
	checkpointNow(t, b, 1, filepath.Join(dir, "chk-1"))
	b.Close()

	restore := func(sub string) *Scope[string] {
		copyCheckpoint(t, filepath.Join(dir, "chk-1"), filepath.Join(dir, sub))
		r, err := Open(Config{Dir: filepath.Join(dir, sub)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		rs, _ := NewScope(r, String)
		return rs
	}
	if _, err := NewValue(restore("r1"), "x", String, WithTTL(time.Hour, OnCreateAndWrite)); !errors.Is(err, ErrKindChanged) || !strings.Contains(err.Error(), `"x" is stored as a Value and registered as a Value with TTL`) {
		t.Errorf("Value restored with a TTL: %v; want ErrKindChanged naming the state and both kinds", err)
	}
	if _, err := NewList(restore("r2"), "x", String); !errors.Is(err, ErrKindChanged) {
		t.Errorf("Value restored as a List: %v; want ErrKindChanged", err)
	}
	rs := restore("r3")
	rv, err := NewValue(rs, "x", String)
	if err != nil {
		t.Fatal(err)
	}
	rs.SetKey("k")
	if got, _ := rv.Get(); got != "a string longer than a timestamp" {
		t.Errorf("restored value = %q", got)
	}
}
