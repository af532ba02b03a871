package statebackend

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/testseed"
)

// keyModel is the state of one key in every state kind.
type keyModel struct {
	v      int64
	m      map[string]string
	l      []string
	tv     int64 // with TTL
	tl     []string
	ns     map[int64]int64
	timers []int64
}

// rescaleHandles are the states of one subtask in TestRescaleKeyGroups.
type rescaleHandles struct {
	b      *Backend
	s      *Scope[string]
	v      *Value[string, int64]
	m      *Map[string, string, string]
	l      *List[string, string]
	tv     *Value[string, int64]
	tl     *List[string, string]
	ns     *Namespaced[string, int64]
	timers *Timers[string]
}

func openRescaleHandles(t *testing.T, dir string, maxParallelism int) *rescaleHandles {
	t.Helper()
	now := time.UnixMilli(1_000_000)
	b, err := Open(Config{Dir: dir, MaxParallelism: maxParallelism, CacheBytes: MinCacheBytes, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	h := &rescaleHandles{b: b}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	h.s, err = NewScope(b, String)
	must(err)
	h.v, err = NewValue(h.s, "value", Int64)
	must(err)
	h.m, err = NewMap(h.s, "map", String, String)
	must(err)
	h.l, err = NewList(h.s, "list", String)
	must(err)
	h.tv, err = NewValue(h.s, "ttl-value", Int64, WithTTL(time.Hour, OnCreateAndWrite))
	must(err)
	h.tl, err = NewList(h.s, "ttl-list", String, WithTTL(time.Hour, OnCreateAndWrite))
	must(err)
	h.ns, err = NewNamespaced(h.s, "windows", Int64)
	must(err)
	h.timers, err = NewTimers(h.s, "timers")
	must(err)
	return h
}

// read returns the state of the current key, as the handles see it.
func (h *rescaleHandles) read(k string) keyModel {
	h.s.SetKey(k)
	var km keyModel
	km.v, _ = h.v.Get()
	km.m = maps.Collect(h.m.All())
	km.l = slices.Collect(h.l.All())
	km.tv, _ = h.tv.Get()
	km.tl = slices.Collect(h.tl.All())
	km.ns = map[int64]int64{}
	for ns := range h.ns.Namespaces() {
		h.s.SetKey(k)
		if v, ok := h.ns.Get(ns); ok {
			km.ns[ns] = v
		}
	}
	h.s.SetKey(k)
	for at := range int64(8) {
		if _, ok := h.timers.set.get(timerKey[string]{at: at, key: k}); ok {
			km.timers = append(km.timers, at)
		}
	}
	return km
}

// write changes every state of key k in step, in h and in km.
func (h *rescaleHandles) write(k string, step int, km *keyModel, rng *rand.Rand) {
	h.s.SetKey(k)
	km.v += int64(rng.IntN(100) + 1)
	h.v.Put(km.v)
	uk, uv := fmt.Sprintf("u%d", rng.IntN(4)), fmt.Sprintf("s%d-%d", step, rng.IntN(1000))
	km.m[uk] = uv
	h.m.Put(uk, uv)
	e := fmt.Sprintf("e%d-%d", step, rng.IntN(1000))
	km.l = append(km.l, e)
	h.l.Add(e)
	km.tv = int64(step)
	h.tv.Put(km.tv)
	km.tl = append(km.tl, e)
	h.tl.Add(e)
	km.ns[int64(step)] = km.v
	h.ns.Put(int64(step), km.v)
	if at := int64(step % 8); !slices.Contains(km.timers, at) {
		km.timers = append(km.timers, at)
		slices.Sort(km.timers)
		h.timers.Register(at)
	}
}

func (km keyModel) equal(o keyModel) bool {
	return km.v == o.v && maps.Equal(km.m, o.m) && slices.Equal(km.l, o.l) && km.tv == o.tv &&
		slices.Equal(km.tl, o.tl) && maps.Equal(km.ns, o.ns) && slices.Equal(km.timers, o.timers)
}

func (km keyModel) empty() bool {
	return km.equal(keyModel{m: map[string]string{}, ns: map[int64]int64{}})
}

// TestRescaleKeyGroups runs subtasks at parallelism 2, 3, 1, 2 (and a
// random one), each restored from the checkpoints of the run before by
// RescaleKeyGroups: each key's state in every state kind (Value, Map,
// List with merge operands in Pebble, TTL value and list, Namespaced,
// Timers) must be exactly what it was, in the subtask that owns its key
// group only, and checkpoints taken after the rescale must restore too.
func TestRescaleKeyGroups(t *testing.T) {
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	const maxParallelism = 16
	schedule := []int{2, 3, 1, 2, 1 + rng.IntN(maxParallelism)}
	hash := keygroup.Hasher(String)
	model := map[string]*keyModel{}
	var keys []string
	// NB: 120 keys put at least three in each of the 16 key groups (the
	// hash is fixed), so that every key group's move is checked; each
	// subtask reads every key, so the time grows with keys × subtasks.
	for i := range 120 {
		k := fmt.Sprintf("key-%d", i)
		keys = append(keys, k)
		model[k] = &keyModel{m: map[string]string{}, ns: map[int64]int64{}}
	}
	root := t.TempDir()
	var prev []string // checkpoint directories of the previous run
	id := uint64(0)
	for stage, p := range schedule {
		var cur []string
		for sub := range p {
			dir := filepath.Join(root, fmt.Sprintf("live-%d-%d", stage, sub))
			if prev != nil {
				restoreRescaled(t, prev, dir, sub, maxParallelism, p)
			}
			h := openRescaleHandles(t, dir, maxParallelism)
			for _, k := range keys {
				owned := keygroup.SubtaskOf(keygroup.Of(hash(k), maxParallelism), maxParallelism, p) == sub
				got := h.read(k)
				switch {
				case owned && !got.equal(*model[k]):
					t.Fatalf("seed %d: parallelism %v, stage %d, subtask %d: key %q: got %+v, want %+v", seed, schedule, stage, sub, k, got, *model[k])
				case !owned && !got.empty():
					t.Fatalf("seed %d: parallelism %v, stage %d, subtask %d: key %q of another subtask has state %+v", seed, schedule, stage, sub, k, got)
				}
			}
			// Two epochs, so that Pebble holds List merge operands.
			for epoch := range 2 {
				for _, k := range keys {
					if keygroup.SubtaskOf(keygroup.Of(hash(k), maxParallelism), maxParallelism, p) == sub {
						h.write(k, 2*stage+epoch, model[k], rng)
					}
				}
				id++
				checkpointNow(t, h.b, id, filepath.Join(root, fmt.Sprintf("chk-%d", id)))
			}
			if stage == len(schedule)-1 { // timers fire for owned keys only
				var fired []string
				h.timers.Fire(7, func(k string, at int64) { fired = append(fired, fmt.Sprint(k, at)) })
				var want []string
				for _, k := range keys {
					if keygroup.SubtaskOf(keygroup.Of(hash(k), maxParallelism), maxParallelism, p) == sub {
						for _, at := range model[k].timers {
							want = append(want, fmt.Sprint(k, at))
						}
					}
				}
				slices.Sort(fired)
				slices.Sort(want)
				if !slices.Equal(fired, want) {
					t.Fatalf("seed %d: parallelism %v, subtask %d: fired %d timers, want %d", seed, schedule, sub, len(fired), len(want))
				}
			}
			if err := h.b.Close(); err != nil {
				t.Fatal(err)
			}
			cur = append(cur, filepath.Join(root, fmt.Sprintf("chk-%d", id)))
		}
		prev = cur
	}
}

// restoreRescaled builds in dir the state of subtask sub of parallelism p
// from the checkpoints of the subtasks of the previous run, as the engine
// does.
func restoreRescaled(t *testing.T, prev []string, dir string, sub, maxParallelism, p int) {
	t.Helper()
	first, end := keygroup.Range(sub, maxParallelism, p)
	var srcs []KeyGroupSource
	for _, old := range OverlappingSubtasks(first, end, maxParallelism, len(prev)) {
		f, e := keygroup.Range(old, maxParallelism, len(prev))
		srcs = append(srcs, KeyGroupSource{Dir: prev[old], First: f, End: e})
	}
	copyCheckpoint(t, srcs[0].Dir, dir)
	if err := RescaleKeyGroups(dir, first, end, srcs, nil); err != nil {
		t.Fatal(err)
	}
}

// TestOverlappingSubtasks checks that the old subtasks named cover the new
// range exactly, the largest overlap first.
func TestOverlappingSubtasks(t *testing.T) {
	for _, c := range []struct {
		max, oldP, newP, sub int
		want                 []int
	}{
		{128, 2, 3, 0, []int{0}},
		{128, 2, 3, 1, []int{1, 0}}, // [43, 86): 21 key groups of 0, 22 of 1
		{128, 3, 1, 0, []int{0, 1, 2}},
		{128, 3, 2, 1, []int{2, 1}},
		{4, 8, 2, 0, []int{0, 2}}, // subtasks 1 and 3 of 8 own no key group of 4
	} {
		first, end := keygroup.Range(c.sub, c.max, c.newP)
		if got := OverlappingSubtasks(first, end, c.max, c.oldP); !slices.Equal(got, c.want) {
			t.Errorf("max %d, %d → %d, subtask %d: got %v, want %v", c.max, c.oldP, c.newP, c.sub, got, c.want)
		}
	}
}
