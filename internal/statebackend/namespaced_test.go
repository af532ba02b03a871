package statebackend

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/testseed"
)

// nsState is a backend with one Namespaced state under test.
type nsState struct {
	t *testing.T
	b *Backend
	s *Scope[string]
	n *Namespaced[string, int64]
}

func openNamespaced(t *testing.T, cfg Config, opts ...Option) *nsState {
	t.Helper()
	b, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	h := &nsState{t: t, b: b}
	if h.s, err = NewScope(b, String); err != nil {
		t.Fatal(err)
	}
	if h.n, err = NewNamespaced(h.s, "windows", Int64, opts...); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *nsState) put(ns int64, k string, v int64) {
	h.s.SetKey(k)
	h.n.Put(ns, v)
}

// freeze closes the epoch for a checkpoint into dest without draining it.
func (h *nsState) freeze(id uint64, dest string) {
	h.t.Helper()
	if err := h.b.Freeze(id, dest); err != nil {
		h.t.Fatal(err)
	}
}

// finish drains the frozen epoch and waits until it is in Pebble and dest.
func (h *nsState) finish() {
	h.t.Helper()
	if !h.b.Drain(0) {
		h.t.Fatal("Drain(0) did not finish")
	}
	res := <-h.b.Results()
	if res.Err != nil {
		h.t.Fatalf("checkpoint %d: %v", res.CheckpointID, res.Err)
	}
	h.b.Applied(res)
}

func (h *nsState) checkpoint(id uint64, dest string) {
	h.t.Helper()
	h.freeze(id, dest)
	h.finish()
}

// contents returns every namespace with its keys' values, through
// Namespaces and All.
func (h *nsState) contents() map[int64]map[string]int64 {
	h.t.Helper()
	got := map[int64]map[string]int64{}
	var prev int64
	first := true
	for ns := range h.n.Namespaces() {
		if !first && ns <= prev {
			h.t.Fatalf("Namespaces: %d after %d", ns, prev)
		}
		prev, first = ns, false
		m := map[string]int64{}
		h.n.All(ns, func(k string, v int64) {
			if _, dup := m[k]; dup {
				h.t.Fatalf("All(%d): key %q twice", ns, k)
			}
			if cur := h.s.Key(); cur != k {
				h.t.Fatalf("All(%d): key %q is not current (%q is)", ns, k, cur)
			}
			m[k] = v
		})
		got[ns] = m
	}
	if err := h.b.Err(); err != nil {
		h.t.Fatal(err)
	}
	return got
}

// check compares the state with want through All and through Get (also of
// keys want does not have in a namespace). Namespaces without values may or
// may not be listed: a restore finds only those Pebble has values of.
func (h *nsState) check(want map[int64]map[string]int64, keys []string, what string) {
	h.t.Helper()
	got := h.contents()
	for ns, m := range got {
		if len(m) == 0 {
			delete(got, ns)
		}
	}
	w := map[int64]map[string]int64{}
	for ns, m := range want {
		if len(m) > 0 {
			w[ns] = m
		}
	}
	if !maps.EqualFunc(got, w, maps.Equal) {
		h.t.Fatalf("%s: All = %v, want %v", what, got, w)
	}
	for ns := range want {
		for _, k := range keys {
			h.s.SetKey(k)
			v, ok := h.n.Get(ns)
			wv, wok := want[ns][k]
			if v != wv || ok != wok {
				h.t.Fatalf("%s: Get(%d) of %q = %d, %v; want %d, %v", what, ns, k, v, ok, wv, wok)
			}
		}
	}
}

func restoreNamespaced(t *testing.T, from, dir string, cfg Config, opts ...Option) *nsState {
	t.Helper()
	copyCheckpoint(t, from, dir)
	cfg.Dir = dir
	return openNamespaced(t, cfg, opts...)
}

func TestNamespacedCheckpointAndRestore(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{CacheBytes: MinCacheBytes}
	cfg.Dir = filepath.Join(dir, "live")
	h := openNamespaced(t, cfg)
	var keys []string
	for i := range 40 { // more than the cache holds, over many key groups
		keys = append(keys, fmt.Sprintf("k%d", i))
	}
	want := map[int64]map[string]int64{1: {}, 2: {}, math.MinInt64: {}, math.MaxInt64: {}}
	for i, k := range keys {
		for ns := range want {
			if (i+int(ns&3))%3 != 0 {
				h.put(ns, k, int64(i)*int64(ns&0xff+1))
				want[ns][k] = int64(i) * int64(ns&0xff+1)
			}
		}
	}
	h.check(want, keys, "live")
	if got := slices.Collect(h.n.Namespaces()); !slices.Equal(got, []int64{math.MinInt64, 1, 2, math.MaxInt64}) {
		t.Fatalf("Namespaces = %v", got)
	}
	c1 := filepath.Join(dir, "c1")
	h.checkpoint(1, c1)
	want1 := clone(want)

	// Drop namespaces at both ends of the range: their range deletions
	// must not spill into the neighbours.
	h.n.Drop(math.MaxInt64)
	h.n.Drop(math.MinInt64)
	h.n.Drop(99) // not there: nothing happens
	delete(want, math.MaxInt64)
	delete(want, math.MinInt64)
	h.s.SetKey("k1")
	h.n.Delete(2)
	delete(want[2], "k1")
	h.put(3, "new", 7)
	want[3] = map[string]int64{"new": 7}
	h.check(want, keys, "live after drops")
	c2 := filepath.Join(dir, "c2")
	h.checkpoint(2, c2)
	h.check(want, keys, "live after checkpoint 2")
	want2 := clone(want)

	r1 := restoreNamespaced(t, c1, filepath.Join(dir, "r1"), cfg)
	r1.check(want1, keys, "checkpoint 1 restored")
	r2 := restoreNamespaced(t, c2, filepath.Join(dir, "r2"), cfg)
	r2.check(want2, keys, "checkpoint 2 restored")
	if got := slices.Collect(r2.n.Namespaces()); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Fatalf("checkpoint 2 restored: Namespaces = %v", got)
	}

	// After a restore All merges Pebble with the cache: changed and
	// deleted keys come from the cache, the others from Pebble.
	r1.put(1, "k1", -1)
	r1.put(1, "fresh", 5)
	r1.s.SetKey("k2")
	r1.n.Delete(1)
	want1[1]["k1"], want1[1]["fresh"] = -1, 5
	delete(want1[1], "k2")
	r1.check(want1, append(keys, "fresh"), "checkpoint 1 restored and changed")
	// Writing more keys than the cache holds evicts entries of earlier
	// epochs: then All reads them from Pebble even in a namespace created
	// since Open.
	r1.checkpoint(3, filepath.Join(dir, "c3"))
	want1[7] = map[string]int64{}
	for i, k := range keys {
		r1.put(7, k, int64(i))
		want1[7][k] = int64(i)
	}
	r1.checkpoint(4, filepath.Join(dir, "c4"))
	more := slices.Clone(keys)
	for i := range 20 {
		k := fmt.Sprintf("x%d", i)
		r1.put(7, k, int64(i))
		want1[7][k] = int64(i)
		more = append(more, k)
	}
	if t7 := r1.n.live[r1.n.find(7)].t; t7.complete || t7.m.len() >= len(want1[7]) {
		t.Fatalf("namespace 7 did not evict: %d of %d entries cached", t7.m.len(), len(want1[7]))
	}
	r1.check(want1, more, "checkpoint 1 restored, changed, evicted")

	// A namespace dropped and created again must not see the dropped
	// values, although Pebble still has them until the next checkpoint.
	r2.n.Drop(1)
	r2.put(1, "k0", 42)
	want2[1] = map[string]int64{"k0": 42}
	r2.check(want2, keys, "checkpoint 2 restored, namespace 1 dropped and created again")
	c5 := filepath.Join(dir, "c5")
	r2.checkpoint(5, c5)
	r5 := restoreNamespaced(t, c5, filepath.Join(dir, "r5"), cfg)
	r5.check(want2, keys, "checkpoint 5 (drop and create again in one epoch) restored")
}

// TestNamespacedDropWhileDraining drops a namespace whose frozen entries
// are not all encoded yet: the checkpoint being written must still hold
// them all, the next one none but those put after the drop.
func TestNamespacedDropWhileDraining(t *testing.T) {
	for _, n := range []int{50, 2000} { // the dirty list, and a map scan
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{Dir: filepath.Join(dir, "live"), MaxParallelism: 16}
			h := openNamespaced(t, cfg)
			var keys []string
			want := map[int64]map[string]int64{10: {}, 20: {}}
			for i := range n {
				k := fmt.Sprintf("key-%d", i)
				keys = append(keys, k)
				h.put(10, k, int64(i))
				want[10][k] = int64(i)
			}
			h.checkpoint(1, filepath.Join(dir, "c1"))
			for i, k := range keys { // changed in epoch 2: frozen below
				h.put(10, k, int64(i)+1000)
				want[10][k] = int64(i) + 1000
			}
			h.put(20, "other", 1)
			want[20]["other"] = 1
			c2 := filepath.Join(dir, "c2")
			h.freeze(2, c2)
			want2 := clone(want)
			if h.b.Drain(3) {
				t.Fatal("Drain(3) encoded everything")
			}
			h.n.Drop(10)
			h.put(10, "after", 9)
			want[10] = map[string]int64{"after": 9}
			h.check(want, append(keys, "after"), "live after the drop")
			h.finish()
			c3 := filepath.Join(dir, "c3")
			h.checkpoint(3, c3)

			r2 := restoreNamespaced(t, c2, filepath.Join(dir, "r2"), cfg)
			r2.check(want2, keys, "checkpoint 2 restored")
			r3 := restoreNamespaced(t, c3, filepath.Join(dir, "r3"), cfg)
			r3.check(want, append(keys, "after"), "checkpoint 3 restored")
		})
	}
}

func clone(m map[int64]map[string]int64) map[int64]map[string]int64 {
	c := map[int64]map[string]int64{}
	for ns, kv := range m {
		c[ns] = maps.Clone(kv)
	}
	return c
}

// TestNamespacedMetamorphic drives a Namespaced state with random puts,
// updates, deletes and drops over many epochs, freezing and partially
// draining in between, with a cache small enough to evict, and checks every
// read against a model; then restores checkpoints and compares them with
// the model as of each. The TTL configurations give the state a TTL on a
// fake clock that the operations move.
func TestNamespacedMetamorphic(t *testing.T) {
	seed := testseed.Seed(t)
	for _, c := range []struct {
		metaConfig
		ttl time.Duration
	}{
		{metaConfig: metaConfig{name: "small-cache", cacheBytes: MinCacheBytes, maxParallelism: 128, ops: 4000, freezeProb: 0.02, drainProb: 0.3, maxBudget: 4}},
		{metaConfig: metaConfig{name: "large-cache/slow-drain", cacheBytes: 1 << 20, maxParallelism: 7, ops: 4000, freezeProb: 0.01, drainProb: 0.05, maxBudget: 2}},
		{metaConfig: metaConfig{name: "small-cache/ttl", cacheBytes: MinCacheBytes, maxParallelism: 128, ops: 4000, freezeProb: 0.02, drainProb: 0.3, maxBudget: 4}, ttl: 30 * time.Millisecond},
		{metaConfig: metaConfig{name: "large-cache/ttl", cacheBytes: 1 << 20, maxParallelism: 7, ops: 4000, freezeProb: 0.01, drainProb: 0.05, maxBudget: 2}, ttl: 30 * time.Millisecond},
	} {
		if raceEnabled || testing.Short() {
			c.ops /= 2
		}
		t.Run(c.name, func(t *testing.T) { testNamespacedMetamorphic(t, seed, c.metaConfig, c.ttl) })
	}
}

// testNamespacedMetamorphic runs the test for one seed and configuration,
// with a TTL if ttl is not 0.
func testNamespacedMetamorphic(t *testing.T, seed uint64, mc metaConfig, ttl time.Duration) {
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("seed %d: panic: %v\n%s", seed, p, debug.Stack())
		}
	}()
	fatalf := func(step int, format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, step %d: %s", seed, step, fmt.Sprintf(format, args...))
	}
	rng := rand.New(rand.NewPCG(seed, 0x4e5))
	dir := t.TempDir()
	clock := &fakeClock{ms: 1_700_000_000_000}
	cfg := Config{Dir: filepath.Join(dir, "live"), MaxParallelism: mc.maxParallelism, CacheBytes: mc.cacheBytes, Now: clock.now}
	var opts []Option
	ops := 12
	if ttl > 0 {
		opts, ops = []Option{WithTTL(ttl, OnCreateAndWrite)}, 13
	}
	h := openNamespaced(t, cfg, opts...)
	nss := []int64{math.MinInt64, -5, 0, 1, 2, 3, 1 << 40, math.MaxInt64}
	keys := strKeys
	model := map[int64]map[string]int64{}
	// written holds when each value of model was written; with a TTL, the
	// values written ttl ago or more are expired.
	written := map[int64]map[string]int64{}
	live := func(model, written map[int64]map[string]int64) map[int64]map[string]int64 {
		l := map[int64]map[string]int64{}
		for ns, m := range model {
			l[ns] = map[string]int64{}
			for k, v := range m {
				if ttl == 0 || clock.ms-written[ns][k] < ttl.Milliseconds() {
					l[ns][k] = v
				}
			}
		}
		return l
	}
	write := func(ns int64, k string, v int64) {
		if model[ns] == nil {
			model[ns], written[ns] = map[string]int64{}, map[string]int64{}
		}
		model[ns][k], written[ns][k] = v, clock.ms
	}
	snapshots := map[uint64]map[int64]map[string]int64{}
	writtenAt := map[uint64]map[int64]map[string]int64{}
	done := map[uint64]string{}
	nextID := uint64(1)
	receive := func(res Result) {
		if res.Err != nil {
			t.Fatalf("seed %d: checkpoint %d: %v", seed, res.CheckpointID, res.Err)
		}
		done[res.CheckpointID] = res.Dir
		h.b.Applied(res)
	}
	freeze := func() {
		h.freeze(nextID, filepath.Join(dir, fmt.Sprintf("chk-%d", nextID)))
		snapshots[nextID], writtenAt[nextID] = clone(model), clone(written)
		nextID++
	}
	for step := range mc.ops {
		select {
		case res := <-h.b.Results():
			receive(res)
		default:
		}
		if step > 0 && step%(mc.ops/6) == 0 {
			// At least five checkpoints per run (steps ops/6 … 5·ops/6),
			// whatever the dice say.
			if h.b.Draining() {
				h.b.Drain(0)
			}
			freeze()
			continue
		}
		if h.b.Draining() {
			if rng.Float64() < mc.drainProb {
				budget := 1 + rng.IntN(mc.maxBudget)
				if rng.IntN(10) == 0 {
					budget = 0
				}
				h.b.Drain(budget)
				continue
			}
		} else if rng.Float64() < mc.freezeProb {
			freeze()
			continue
		}
		ns := nss[rng.IntN(len(nss))]
		k := keys[rng.IntN(len(keys))]
		h.s.SetKey(k)
		switch rng.IntN(ops) {
		case 0, 1:
			v := rng.Int64()
			h.n.Put(ns, v)
			write(ns, k, v)
		case 2, 3:
			want, wok := live(model, written)[ns][k]
			h.n.Update(ns, func(v int64, ok bool) int64 {
				if v != want || ok != wok {
					fatalf(step, "Update(%d) of %q got %d, %v; want %d, %v", ns, k, v, ok, want, wok)
				}
				return v + 1
			})
			write(ns, k, want+1)
		case 4:
			h.n.Delete(ns)
			delete(model[ns], k)
		case 5:
			if rng.IntN(3) == 0 {
				h.n.Drop(ns)
				delete(model, ns)
				delete(written, ns)
			}
		case 6:
			got := map[string]int64{}
			h.n.All(ns, func(k string, v int64) { got[k] = v })
			if want := live(model, written)[ns]; !maps.Equal(got, want) {
				fatalf(step, "All(%d) = %v; want %v", ns, got, want)
			}
		case 12:
			clock.ms += rng.Int64N(10)
		case 7:
			listed := slices.Collect(h.n.Namespaces())
			for ns, m := range model {
				if len(m) > 0 && !slices.Contains(listed, ns) {
					fatalf(step, "Namespaces = %v lacks %d", listed, ns)
				}
			}
			for _, ns := range listed {
				if _, ok := model[ns]; !ok {
					fatalf(step, "Namespaces = %v lists %d, which was dropped", listed, ns)
				}
			}
		default:
			v, ok := h.n.Get(ns)
			want, wok := live(model, written)[ns][k]
			if v != want || ok != wok {
				fatalf(step, "Get(%d) of %q = %d, %v; want %d, %v", ns, k, v, ok, want, wok)
			}
		}
		if err := h.b.Err(); err != nil {
			fatalf(step, "backend: %v", err)
		}
	}
	if h.b.Draining() {
		h.b.Drain(0)
	}
	for len(done) < int(nextID-1) {
		receive(<-h.b.Results())
	}
	h.check(live(model, written), keys, "live at the end")
	if len(done) < 5 {
		t.Fatalf("seed %d: only %d checkpoints", seed, len(done))
	}
	for _, id := range slices.Sorted(maps.Keys(done)) {
		if id > 2 && id < nextID-2 && rng.IntN(3) != 0 {
			continue // restoring is slow: a sample
		}
		r := restoreNamespaced(t, done[id], filepath.Join(dir, fmt.Sprintf("restore-%d", id)), cfg, opts...)
		r.check(live(snapshots[id], writtenAt[id]), keys, fmt.Sprintf("seed %d: checkpoint %d restored", seed, id))
	}
}

// TestNamespacedRestoreLoadsWhole restores namespaces that fit the cache:
// they are loaded whole, so the first checkpoint that rewrites them is full,
// and restoring it gives the rewritten state.
func TestNamespacedRestoreLoadsWhole(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: filepath.Join(dir, "live"), CacheBytes: 1 << 18}
	h := openNamespaced(t, cfg)
	var keys []string
	want := map[int64]map[string]int64{10: {}, 20: {}}
	for i := range 50 {
		k := fmt.Sprintf("k%d", i)
		keys = append(keys, k)
		for ns := range want {
			h.put(ns, k, int64(i))
			want[ns][k] = int64(i)
		}
	}
	h.checkpoint(1, filepath.Join(dir, "c1"))

	r := restoreNamespaced(t, filepath.Join(dir, "c1"), filepath.Join(dir, "r1"), Config{CacheBytes: 1 << 18})
	for _, l := range r.n.live {
		if !l.t.complete || l.t.m.len() != len(want[l.ns]) {
			t.Fatalf("restored namespace %d: complete %v with %d of %d entries cached", l.ns, l.t.complete, l.t.m.len(), len(want[l.ns]))
		}
	}
	r.check(want, keys, "restored")
	for ns := range want {
		for i, k := range keys {
			r.put(ns, k, -int64(i))
			want[ns][k] = -int64(i)
		}
	}
	r.freeze(2, filepath.Join(dir, "c2"))
	if !r.b.full {
		t.Error("restored namespaces loaded whole and rewritten: the snapshot is not full")
	}
	r.finish()
	r2 := restoreNamespaced(t, filepath.Join(dir, "c2"), filepath.Join(dir, "r2"), Config{CacheBytes: 1 << 18})
	r2.check(want, keys, "full snapshot after a restore, restored")
}
