package statebackend

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/testseed"
)

// model is what the state of a backend should be: the Value, Map and List
// states of a string-keyed scope, with and without TTL, and the Value state
// of an int64-keyed scope.
type model struct {
	vals  map[string]int64
	maps  map[string]map[string]string
	lists map[string][]string
	ints  map[int64][]byte
	// With TTL (metaTTL), times in the fake clock's milliseconds: a value
	// that restarts its TTL on reads, and a list whose elements expire
	// ttl after their Add.
	tvals  map[string]stampedInt
	tlists map[string][]stampedStr
}

type (
	stampedInt = stamped[int64]
	stampedStr = stamped[string]
)

// metaTTL is the TTL of the metamorphic test's states with TTL.
const metaTTL = 40 * time.Millisecond

func newModel() model {
	return model{
		vals: map[string]int64{}, maps: map[string]map[string]string{}, lists: map[string][]string{},
		ints: map[int64][]byte{}, tvals: map[string]stampedInt{}, tlists: map[string][]stampedStr{},
	}
}

func (m model) clone() model {
	c := newModel()
	c.vals, c.tvals = maps.Clone(m.vals), maps.Clone(m.tvals)
	for k, v := range m.maps {
		c.maps[k] = maps.Clone(v)
	}
	for k, v := range m.lists {
		c.lists[k] = slices.Clone(v)
	}
	for k, v := range m.tlists {
		c.tlists[k] = slices.Clone(v)
	}
	for k, v := range m.ints {
		c.ints[k] = bytes.Clone(v)
	}
	return c
}

// readTVal is what a read of the TTL value of sk returns at now, and
// applies the read to the model (expiry, TTL restarted).
func (m model) readTVal(sk string, now int64) (int64, bool) {
	s, ok := m.tvals[sk]
	switch {
	case !ok:
		return 0, false
	case now-s.at >= metaTTL.Milliseconds():
		delete(m.tvals, sk)
		return 0, false
	}
	m.tvals[sk] = stampedInt{v: s.v, at: now}
	return s.v, true
}

// liveTList is the TTL list of sk as a read at now sees it.
func (m model) liveTList(sk string, now int64) []string {
	var live []string
	for _, s := range m.tlists[sk] {
		if now-s.at < metaTTL.Milliseconds() {
			live = append(live, s.v)
		}
	}
	return live
}

// fakeClock is a processing-time clock that moves only when told.
type fakeClock struct{ ms int64 }

func (c *fakeClock) now() time.Time { return time.UnixMilli(c.ms) }

// The key universes are small so that keys are rewritten often (copy on
// write) and larger than the smallest cache (eviction). Some string keys are
// longer than the 24-byte sort prefix of delta.
var (
	strKeys = func() []string {
		var ks []string
		for i := range 60 {
			ks = append(ks, fmt.Sprintf("k%d", i))
		}
		for i := range 20 {
			ks = append(ks, fmt.Sprintf("a-long-shared-prefix-%d", i))
		}
		return ks
	}()
	intKeys = func() []int64 {
		var ks []int64
		for i := range 50 {
			ks = append(ks, int64(i)-10)
		}
		return ks
	}()
	mapKeys = []string{"u0", "u1", "u2", "u3", "u4", "u5"}
)

// stateHandles are the states of a backend under test.
type stateHandles struct {
	b  *Backend
	ss *Scope[string]
	v  *Value[string, int64]
	mp *Map[string, string, string]
	ls *List[string, string]
	tv *Value[string, int64] // with TTL, OnReadAndWrite
	tl *List[string, string] // with TTL, OnCreateAndWrite
	is *Scope[int64]
	iv *Value[int64, []byte]
}

func openStates(t *testing.T, cfg Config) *stateHandles {
	t.Helper()
	b, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &stateHandles{b: b}
	if h.ss, err = NewScope(b, String); err != nil {
		t.Fatal(err)
	}
	if h.v, err = NewValue(h.ss, "value", Int64); err != nil {
		t.Fatal(err)
	}
	if h.mp, err = NewMap(h.ss, "map", String, String); err != nil {
		t.Fatal(err)
	}
	if h.ls, err = NewList(h.ss, "list", String); err != nil {
		t.Fatal(err)
	}
	if h.tv, err = NewValue(h.ss, "ttl-value", Int64, WithTTL(metaTTL, OnReadAndWrite)); err != nil {
		t.Fatal(err)
	}
	if h.tl, err = NewList(h.ss, "ttl-list", String, WithTTL(metaTTL, OnCreateAndWrite)); err != nil {
		t.Fatal(err)
	}
	if h.is, err = NewScope[int64](b, nil); err != nil {
		t.Fatal(err)
	}
	if h.iv, err = NewValue(h.is, "ints", Bytes); err != nil {
		t.Fatal(err)
	}
	return h
}

// metaConfig is one configuration of the metamorphic test.
type metaConfig struct {
	name           string
	cacheBytes     int64
	maxParallelism int
	ops            int
	freezeProb     float64 // per step, when not draining
	drainProb      float64 // per step, when draining
	maxBudget      int     // Drain budget is 1..maxBudget, or 0 (all)
	waitProb       float64 // wait for the result right after a hand-off
	wantFull       bool    // the run must take full and delta snapshots
}

// runner drives one backend with random operations and checks every read
// against the model.
type runner struct {
	t     *testing.T
	seed  uint64
	rng   *rand.Rand
	h     *stateHandles
	m     model
	step  int
	clock *fakeClock
	// extra draws the operations of the List and TTL states; nil leaves
	// them alone (regression seeds found before they existed).
	extra *rand.Rand

	mc metaConfig

	nextID    uint64
	root      string           // where checkpoints go
	snapshots map[uint64]model // model as of each frozen checkpoint
	done      map[uint64]string
	full      []uint64 // ids of the full snapshots
	handedOff int      // snapshots handed to the writer
	received  int
}

func (r *runner) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("seed %d, step %d: %s", r.seed, r.step, fmt.Sprintf(format, args...))
}

func (r *runner) randValue() string { return randString(r.rng) }

func randString(rng *rand.Rand) string {
	n := rng.IntN(8)
	if rng.IntN(4) == 0 {
		n = 100 + rng.IntN(200) // long: multi-byte length prefix in the map codec
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + rng.IntN(26))
	}
	return string(b)
}

func randStrings(rng *rand.Rand) []string {
	vs := make([]string, rng.IntN(4))
	for i := range vs {
		vs[i] = randString(rng)
	}
	return vs
}

// extraOp applies one random operation to the List and TTL states, drawn
// from r.extra (so that the other states see the operations of the seeds
// that were found before these states existed), or moves the clock.
func (r *runner) extraOp() {
	h, m, rng := r.h, r.m, r.extra
	sk := strKeys[rng.IntN(len(strKeys))]
	h.ss.SetKey(sk)
	now := r.clock.ms
	switch rng.IntN(13) {
	case 0, 1:
		v := randString(rng)
		h.ls.Add(v)
		m.lists[sk] = append(m.lists[sk], v)
	case 2:
		vs := randStrings(rng)
		h.ls.AddAll(vs)
		if len(vs) > 0 {
			m.lists[sk] = append(m.lists[sk], vs...)
		}
	case 3:
		if rng.IntN(3) == 0 {
			h.ls.Clear()
			delete(m.lists, sk)
			break
		}
		vs := randStrings(rng)
		h.ls.Update(vs)
		if len(vs) == 0 {
			delete(m.lists, sk)
		} else {
			m.lists[sk] = slices.Clone(vs)
		}
	case 4:
		r.checkList(sk, "")
	case 5:
		v := rng.Int64()
		h.tv.Put(v)
		m.tvals[sk] = stampedInt{v: v, at: now}
	case 6:
		got, ok := h.tv.Get()
		if want, wok := m.readTVal(sk, now); got != want || ok != wok {
			r.fatalf("ttl-value[%q] at %d = %d, %v; want %d, %v", sk, now, got, ok, want, wok)
		}
	case 7:
		got := h.tv.Update(func(n int64, _ bool) int64 { return n + 1 })
		s, ok := m.tvals[sk]
		if !ok || now-s.at >= metaTTL.Milliseconds() {
			s.v = 0
		}
		m.tvals[sk] = stampedInt{v: s.v + 1, at: now}
		if got != s.v+1 {
			r.fatalf("ttl-value[%q] at %d: Update returned %d, want %d", sk, now, got, s.v+1)
		}
	case 8:
		v := randString(rng)
		h.tl.Add(v)
		m.tlists[sk] = append(m.tlists[sk], stampedStr{v: v, at: now})
	case 9:
		r.checkTList(sk, "")
	case 10:
		if rng.IntN(3) == 0 {
			h.tl.Clear()
			delete(m.tlists, sk)
			break
		}
		vs := randStrings(rng)
		h.tl.Update(vs)
		delete(m.tlists, sk)
		for _, v := range vs {
			m.tlists[sk] = append(m.tlists[sk], stampedStr{v: v, at: now})
		}
	default:
		r.clock.ms += rng.Int64N(10)
	}
	if err := h.b.Err(); err != nil {
		r.fatalf("backend error: %v", err)
	}
}

// checkList compares the List of the current string key sk with the model.
func (r *runner) checkList(sk, what string) {
	r.t.Helper()
	got, want := slices.Collect(r.h.ls.All()), r.m.lists[sk]
	if !slices.Equal(got, want) || r.h.ls.Len() != len(want) {
		r.fatalf("%slist[%q] = %q (Len %d); want %q", what, sk, got, r.h.ls.Len(), want)
	}
}

// checkTList compares the TTL List of the current string key sk with the
// model.
func (r *runner) checkTList(sk, what string) {
	r.t.Helper()
	now := r.clock.ms
	got, want := slices.Collect(r.h.tl.All()), r.m.liveTList(sk, now)
	if !slices.Equal(got, want) || r.h.tl.Len() != len(want) {
		r.fatalf("%sttl-list[%q] at %d = %q (Len %d); want %q", what, sk, now, got, r.h.tl.Len(), want)
	}
}

// op applies one random state operation and checks reads against the model.
func (r *runner) op() {
	h, m, rng := r.h, r.m, r.rng
	sk := strKeys[rng.IntN(len(strKeys))]
	ik := intKeys[rng.IntN(len(intKeys))]
	uk := mapKeys[rng.IntN(len(mapKeys))]
	h.ss.SetKey(sk)
	h.is.SetKey(ik)
	switch op := rng.IntN(15); op {
	case 0, 1:
		v := rng.Int64()
		h.v.Put(v)
		m.vals[sk] = v
	case 2:
		h.v.Delete()
		delete(m.vals, sk)
	case 3, 4:
		got, ok := h.v.Get()
		want, wok := m.vals[sk]
		if got != want || ok != wok {
			r.fatalf("value[%q] = %d, %v; want %d, %v", sk, got, ok, want, wok)
		}
	case 5, 6:
		v := r.randValue()
		h.mp.Put(uk, v)
		if m.maps[sk] == nil {
			m.maps[sk] = map[string]string{}
		}
		m.maps[sk][uk] = v
	case 7:
		h.mp.Delete(uk)
		delete(m.maps[sk], uk)
		if len(m.maps[sk]) == 0 {
			delete(m.maps, sk)
		}
	case 8:
		got, ok := h.mp.Get(uk)
		want, wok := m.maps[sk][uk]
		if got != want || ok != wok {
			r.fatalf("map[%q][%q] = %q, %v; want %q, %v", sk, uk, got, ok, want, wok)
		}
	case 9:
		if rng.IntN(4) == 0 {
			h.mp.Clear()
			delete(m.maps, sk)
		} else {
			r.checkMap(sk, m.maps[sk])
		}
	case 10, 11:
		v := []byte(r.randValue())
		h.iv.Put(v)
		m.ints[ik] = bytes.Clone(v)
	case 12:
		h.iv.Delete()
		delete(m.ints, ik)
	default:
		got, ok := h.iv.Get()
		want, wok := m.ints[ik]
		if !bytes.Equal(got, want) || ok != wok {
			r.fatalf("ints[%d] = %q, %v; want %q, %v", ik, got, ok, want, wok)
		}
	}
	if err := h.b.Err(); err != nil {
		r.fatalf("backend error: %v", err)
	}
	if r.extra != nil && r.extra.IntN(2) == 0 {
		r.extraOp()
	}
}

// checkMap compares the whole map of the current string key with want.
func (r *runner) checkMap(sk string, want map[string]string) {
	r.t.Helper()
	got := maps.Collect(r.h.mp.All())
	if !maps.Equal(got, want) {
		r.fatalf("map[%q] = %v; want %v", sk, got, want)
	}
	if n := r.h.mp.Len(); n != len(want) {
		r.fatalf("map[%q].Len() = %d; want %d", sk, n, len(want))
	}
}

// checkAll reads every key of the universe and compares with want.
func (r *runner) checkAll(want model, what string) {
	r.t.Helper()
	h := r.h
	for _, sk := range strKeys {
		h.ss.SetKey(sk)
		got, ok := h.v.Get()
		w, wok := want.vals[sk]
		if got != w || ok != wok {
			r.fatalf("%s: value[%q] = %d, %v; want %d, %v", what, sk, got, ok, w, wok)
		}
		gm := maps.Collect(h.mp.All())
		if !maps.Equal(gm, want.maps[sk]) {
			r.fatalf("%s: map[%q] = %v; want %v", what, sk, gm, want.maps[sk])
		}
		for _, uk := range mapKeys {
			got, ok := h.mp.Get(uk)
			w, wok := want.maps[sk][uk]
			if got != w || ok != wok {
				r.fatalf("%s: map[%q][%q] = %q, %v; want %q, %v", what, sk, uk, got, ok, w, wok)
			}
		}
		if gl := slices.Collect(h.ls.All()); !slices.Equal(gl, want.lists[sk]) {
			r.fatalf("%s: list[%q] = %q; want %q", what, sk, gl, want.lists[sk])
		}
		now := r.clock.ms
		got, ok = h.tv.Get()
		if w, wok := want.readTVal(sk, now); got != w || ok != wok {
			r.fatalf("%s: ttl-value[%q] at %d = %d, %v; want %d, %v", what, sk, now, got, ok, w, wok)
		}
		if gl, wl := slices.Collect(h.tl.All()), want.liveTList(sk, now); !slices.Equal(gl, wl) {
			r.fatalf("%s: ttl-list[%q] at %d = %q; want %q", what, sk, now, gl, wl)
		}
	}
	for _, ik := range intKeys {
		h.is.SetKey(ik)
		got, ok := h.iv.Get()
		w, wok := want.ints[ik]
		if !bytes.Equal(got, w) || ok != wok {
			r.fatalf("%s: ints[%d] = %q, %v; want %q, %v", what, ik, got, ok, w, wok)
		}
	}
	if err := h.b.Err(); err != nil {
		r.fatalf("%s: backend error: %v", what, err)
	}
}

func (r *runner) onResult(res Result) {
	r.t.Helper()
	r.received++
	if res.Err != nil || res.Fatal {
		r.fatalf("checkpoint %d failed (fatal %v): %v", res.CheckpointID, res.Fatal, res.Err)
	}
	if _, ok := r.snapshots[res.CheckpointID]; !ok {
		r.fatalf("result for unknown checkpoint %d", res.CheckpointID)
	}
	for id := range r.done {
		if id >= res.CheckpointID {
			r.fatalf("result for checkpoint %d after checkpoint %d: out of order", res.CheckpointID, id)
		}
	}
	r.done[res.CheckpointID] = res.Dir
	r.h.b.Applied(res)
}

func (r *runner) pollResults() {
	for {
		select {
		case res := <-r.h.b.Results():
			r.onResult(res)
		default:
			return
		}
	}
}

func (r *runner) waitResults() {
	for r.received < r.handedOff {
		r.onResult(<-r.h.b.Results())
	}
}

func (r *runner) freeze() {
	id := r.nextID
	r.nextID++
	dest := filepath.Join(r.root, fmt.Sprintf("chk-%d", id))
	if err := r.h.b.Freeze(id, dest); err != nil {
		r.fatalf("Freeze(%d): %v", id, err)
	}
	r.snapshots[id] = r.m.clone()
	if r.h.b.full {
		r.full = append(r.full, id)
	}
}

func (r *runner) drain(budget int) {
	if !r.h.b.Draining() {
		return
	}
	if r.h.b.Drain(budget) {
		r.handedOff++
		if r.h.b.Draining() {
			r.fatalf("Drain reported done but the backend is still draining")
		}
		if r.rng.Float64() < r.mc.waitProb {
			r.waitResults()
		}
	}
}

// run performs mc.ops operations with freezes and partial drains
// interleaved, then drains and waits for every checkpoint.
func (r *runner) run(ops int) {
	for r.step = 0; r.step < ops; r.step++ {
		r.pollResults()
		if r.step > 0 && r.step%(ops/6) == 0 {
			// At least five checkpoints per run (steps ops/6 … 5·ops/6),
			// whatever the dice say.
			r.drain(0)
			r.freeze()
			continue
		}
		if r.h.b.Warming() && r.rng.Float64() < r.mc.drainProb {
			r.h.b.Warm(1 + r.rng.IntN(r.mc.maxBudget)) // Config.WarmLater
			continue
		}
		if r.h.b.Draining() {
			if r.rng.Float64() < 0.02 {
				if err := r.h.b.Freeze(r.nextID, filepath.Join(r.root, "never")); !errors.Is(err, ErrDraining) {
					r.fatalf("Freeze while draining = %v, want ErrDraining", err)
				}
			}
			if r.rng.Float64() < r.mc.drainProb {
				budget := 1 + r.rng.IntN(r.mc.maxBudget)
				if r.rng.IntN(10) == 0 {
					budget = 0
				}
				r.drain(budget)
				continue
			}
		} else if r.rng.Float64() < r.mc.freezeProb {
			r.freeze()
			continue
		}
		r.op()
	}
	if r.h.b.Draining() {
		r.drain(0)
	}
	r.waitResults()
}

// ensureBothKinds adds the kind of snapshot the dice did not produce: a
// delta after an epoch with one change, a full snapshot after one that
// rewrites every value.
func (r *runner) ensureBothKinds() {
	h, m := r.h, r.m
	checkpoint := func(wantFull bool) {
		r.freeze()
		r.drain(0)
		r.waitResults()
		if full := slices.Contains(r.full, r.nextID-1); full != wantFull {
			r.fatalf("ensureBothKinds: snapshot %d full = %v, want %v", r.nextID-1, full, wantFull)
		}
	}
	if len(r.full) == len(r.done) {
		// Close the epoch the run left open, then make one change.
		r.freeze()
		r.drain(0)
		r.waitResults()
		v := r.rng.Int64()
		h.ss.SetKey(strKeys[0])
		h.v.Put(v)
		m.vals[strKeys[0]] = v
		checkpoint(false)
	}
	if len(r.full) == 0 {
		for sk := range m.vals {
			v := r.rng.Int64()
			h.ss.SetKey(sk)
			h.v.Put(v)
			m.vals[sk] = v
		}
		for sk, mm := range m.maps {
			h.ss.SetKey(sk)
			for uk := range mm {
				v := r.randValue()
				h.mp.Put(uk, v)
				mm[uk] = v
			}
		}
		for ik := range m.ints {
			v := []byte(r.randValue())
			h.is.SetKey(ik)
			h.iv.Put(v)
			m.ints[ik] = bytes.Clone(v)
		}
		now := r.clock.ms
		for _, sk := range strKeys {
			h.ss.SetKey(sk)
			if l, ok := m.lists[sk]; ok {
				h.ls.Update(l)
			}
			if s, ok := m.tvals[sk]; ok {
				h.tv.Put(s.v)
				m.tvals[sk] = stampedInt{v: s.v, at: now}
			}
			if _, ok := m.tlists[sk]; ok {
				live := m.liveTList(sk, now)
				h.tl.Update(live) // empty: a Clear
				delete(m.tlists, sk)
				for _, v := range live {
					m.tlists[sk] = append(m.tlists[sk], stampedStr{v: v, at: now})
				}
			}
		}
		checkpoint(true)
	}
}

// copyCheckpoint materializes a Pebble checkpoint into a new live directory
// the way chkstore.Store.RestoreKeyed does: sstables are hard-linked,
// everything else is copied.
func copyCheckpoint(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if strings.HasSuffix(e.Name(), ".sst") {
			if err := os.Link(from, to); err == nil {
				continue
			}
		}
		in, err := os.Open(from)
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(to)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBackendMetamorphic drives a Backend with random Value and Map
// operations over many epochs, freezing and partially draining while more
// writes arrive (the copy-on-write path), with caches small enough that
// reads go to Pebble. Every read is checked against a model. Then every
// checkpoint is restored into a new Backend, which must hold exactly the
// model as of that checkpoint, and which is itself driven further and
// checkpointed again (reads and writes of entries loaded from a restored
// database).
func TestBackendMetamorphic(t *testing.T) {
	seed := testseed.Seed(t)
	configs := []metaConfig{
		{name: "small-cache/frequent-checkpoints", cacheBytes: MinCacheBytes, maxParallelism: 128, ops: 3000, freezeProb: 0.02, drainProb: 0.3, maxBudget: 4, waitProb: 0.7},
		{name: "small-cache/long-epochs", cacheBytes: MinCacheBytes, maxParallelism: 7, ops: 3000, freezeProb: 0.005, drainProb: 0.1, maxBudget: 16, waitProb: 0.5},
		{name: "large-cache/slow-drain", cacheBytes: 1 << 20, maxParallelism: 128, ops: 3000, freezeProb: 0.02, drainProb: 0.05, maxBudget: 2, waitProb: 0.2, wantFull: true},
		// Long epochs change much of the state: mostly full snapshots,
		// drained slowly while writes copy entries on write.
		{name: "large-cache/long-epochs", cacheBytes: 1 << 20, maxParallelism: 128, ops: 3000, freezeProb: 0.004, drainProb: 0.03, maxBudget: 2, waitProb: 0.3, wantFull: true},
		{name: "one-key-group", cacheBytes: 2 * MinCacheBytes, maxParallelism: 1, ops: 2000, freezeProb: 0.015, drainProb: 0.5, maxBudget: 64, waitProb: 1},
	}
	for _, mc := range configs {
		if raceEnabled || testing.Short() {
			mc.ops /= 2
		}
		t.Run(mc.name, func(t *testing.T) { testBackendMetamorphic(t, seed, mc, true) })
		// Seeds that once failed run every time, with the random one.
		for _, rs := range metamorphicRegressions {
			if rs.config == mc.name {
				t.Run(fmt.Sprintf("%s/seed-%d", mc.name, rs.seed), func(t *testing.T) { testBackendMetamorphic(t, rs.seed, mc, false) })
			}
		}
	}
}

// metamorphicRegressions are seeds of TestBackendMetamorphic that found bugs,
// with the configuration they found them in (as run under -race, whose
// invariants caught them).
var metamorphicRegressions = []struct {
	config string
	seed   uint64
}{
	// Eviction during a full snapshot after one state's scan was done (see
	// TestFullSnapshotOutlivesOneTableScan).
	{"small-cache/long-epochs", 7796509801087939911},
}

// testBackendMetamorphic runs the test for one seed and configuration; the
// List and TTL states are driven only if extra is set.
func testBackendMetamorphic(t *testing.T, seed uint64, mc metaConfig, extra bool) {
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("seed %d: panic: %v\n%s", seed, p, debug.Stack())
		}
	}()
	dir := t.TempDir()
	clock := &fakeClock{ms: 1_700_000_000_000}
	extraRand := func(stream uint64) *rand.Rand {
		if !extra {
			return nil
		}
		return rand.New(rand.NewPCG(seed, stream^0x7171))
	}
	r := &runner{
		t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x5eed)), m: newModel(), mc: mc,
		nextID: 1, root: filepath.Join(dir, "checkpoints"),
		snapshots: map[uint64]model{}, done: map[uint64]string{},
		clock: clock, extra: extraRand(0),
	}
	r.h = openStates(t, Config{Dir: filepath.Join(dir, "live"), MaxParallelism: mc.maxParallelism, CacheBytes: mc.cacheBytes, Now: clock.now})
	defer func() {
		if err := r.h.b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	r.run(mc.ops)
	if mc.wantFull {
		r.ensureBothKinds()
	}
	r.checkAll(r.m, "live backend at the end")
	if len(r.done) < 5 {
		r.fatalf("only %d checkpoints were taken", len(r.done))
	}
	if mc.wantFull && (len(r.full) == 0 || len(r.full) == len(r.done)) {
		r.fatalf("%d of %d snapshots were full; the test needs both kinds", len(r.full), len(r.done))
	}

	// Restore checkpoints while the live backend is still open: the first,
	// the last two, the full snapshots and a random sample of the others
	// (restoring is slow).
	ids := slices.Sorted(maps.Keys(r.done))
	restoredFull := 0
	for n, id := range ids {
		if n > 0 && n < len(ids)-2 && !slices.Contains(r.full, id) && r.rng.IntN(len(ids)) >= 4 {
			continue
		}
		restoreDir := filepath.Join(dir, fmt.Sprintf("restore-%d", id))
		copyCheckpoint(t, r.done[id], restoreDir)
		rr := &runner{
			t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, id)), m: r.snapshots[id].clone(), mc: mc,
			nextID: 1000 + id, root: filepath.Join(dir, fmt.Sprintf("rechk-%d", id)),
			snapshots: map[uint64]model{}, done: map[uint64]string{},
			clock: clock, extra: extraRand(id),
		}
		// Restored with the run's cache: a large one loads the state whole
		// and may take full snapshots again.
		rr.h = openStates(t, Config{Dir: restoreDir, MaxParallelism: mc.maxParallelism, CacheBytes: mc.cacheBytes, Now: clock.now})
		rr.checkAll(rr.m, fmt.Sprintf("checkpoint %d restored", id))
		// Reading every key of a restored backend keeps the cache bounded.
		// (Reads of the TTL states may write: OnReadAndWrite, expiry. What
		// a subtask changes within an epoch stays cached.)
		// The bound is over all states, which an insertion may pass by
		// one entry.
		ttlBytes := tableBytes(rr.h.tv.tv.t) + tableBytes(rr.h.tl.tl.t)
		// The bound holds up to one entry of each state (an insertion
		// passes it by one, and each estimate may grow as it learns).
		slack := rr.h.v.t.m.per + rr.h.mp.t.m.per + rr.h.ls.t.m.per + rr.h.iv.t.m.per
		if n := rr.h.b.CachedBytes() - ttlBytes; n > mc.cacheBytes+slack {
			rr.fatalf("checkpoint %d restored: %d cached bytes after reading every key, cache bound is %d", id, n, mc.cacheBytes)
		}
		if ttlBytes > 2*mc.cacheBytes+int64(len(strKeys))*(rr.h.tv.tv.t.m.per+rr.h.tl.tl.t.m.per) {
			rr.fatalf("checkpoint %d restored: %d cached bytes of TTL states after reading every key, cache bound is %d", id, ttlBytes, mc.cacheBytes)
		}
		// Only the newest few are driven further, to bound the runtime.
		if n >= len(ids)-2 || n == 0 {
			rr.run(400)
			rr.freeze()
			rr.drain(0)
			rr.waitResults()
			restoredFull += len(rr.full)
			rr.checkAll(rr.m, fmt.Sprintf("checkpoint %d restored and changed", id))
			last := rr.nextID - 1
			again := filepath.Join(dir, fmt.Sprintf("restore-again-%d", id))
			copyCheckpoint(t, rr.done[last], again)
			rr2 := &runner{t: t, seed: seed, rng: rr.rng, m: rr.snapshots[last], mc: mc, clock: clock}
			rr2.h = openStates(t, Config{Dir: again, MaxParallelism: mc.maxParallelism, CacheBytes: MinCacheBytes, Now: clock.now})
			rr2.checkAll(rr2.m, fmt.Sprintf("checkpoint %d of a backend restored from checkpoint %d", last, id))
			if err := rr2.h.b.Close(); err != nil {
				t.Fatal(err)
			}
			if n == len(ids)-1 {
				warmLaterRestore(t, r, id, filepath.Join(dir, fmt.Sprintf("restore-warm-%d", id)), extraRand(id^0x3a3a))
			}
		}
		if err := rr.h.b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d full snapshots of restored backends", restoredFull)
}

// warmLaterRestore restores r's checkpoint id into dir with
// Config.WarmLater and drives it with Warm calls among its operations and
// checkpoints, then warms the rest: the state must match the model
// throughout, and so must a restore of its last checkpoint.
func warmLaterRestore(t *testing.T, r *runner, id uint64, dir string, extra *rand.Rand) {
	mc := r.mc
	copyCheckpoint(t, r.done[id], dir)
	wr := &runner{
		t: t, seed: r.seed, rng: rand.New(rand.NewPCG(r.seed, id^0x3a3a)), m: r.snapshots[id].clone(), mc: mc,
		nextID: 2000 + id, root: dir + "-chk", snapshots: map[uint64]model{}, done: map[uint64]string{},
		clock: r.clock, extra: extra,
	}
	wr.h = openStates(t, Config{Dir: dir, MaxParallelism: mc.maxParallelism, CacheBytes: mc.cacheBytes, Now: r.clock.now, WarmLater: true})
	defer wr.h.b.Close()
	wr.run(400)
	for !wr.h.b.Warm(1 + wr.rng.IntN(mc.maxBudget)) {
	}
	wr.checkAll(wr.m, fmt.Sprintf("checkpoint %d restored with WarmLater, changed and warmed", id))
	wr.freeze()
	wr.drain(0)
	wr.waitResults()
	last := wr.nextID - 1
	again := dir + "-again"
	copyCheckpoint(t, wr.done[last], again)
	wr2 := &runner{t: t, seed: r.seed, rng: wr.rng, m: wr.snapshots[last], mc: mc, clock: r.clock}
	wr2.h = openStates(t, Config{Dir: again, MaxParallelism: mc.maxParallelism, CacheBytes: MinCacheBytes, Now: r.clock.now})
	defer wr2.h.b.Close()
	wr2.checkAll(wr2.m, fmt.Sprintf("checkpoint %d of a backend restored with WarmLater from checkpoint %d", last, id))
}

// TestScanSurvivesGrowth freezes a full snapshot, drains part of it, then
// inserts keys until the table grows (which moves every entry) before
// draining the rest: every frozen entry must still be encoded. Small tables
// with long probe sequences are where growth moves an entry the scan has not
// reached to a slot it has passed, hence many small trials.
func TestScanSurvivesGrowth(t *testing.T) {
	for trial := range 60 {
		dir := t.TempDir()
		h := openStates(t, Config{Dir: filepath.Join(dir, "live"), CacheBytes: 1 << 24})
		put := func(k string, v int64) { h.ss.SetKey(k); h.v.Put(v) }
		frozen := 4 + trial%3
		for i := range frozen {
			put(fmt.Sprintf("t%d-g%d", trial, i), int64(i))
		}
		dest := filepath.Join(dir, "chk-1")
		if err := h.b.Freeze(1, dest); err != nil {
			t.Fatal(err)
		}
		if !h.b.full {
			t.Fatal("the first snapshot of a fresh backend with every entry changed is not full")
		}
		h.b.Drain(1 + trial%2)
		grown := h.v.t.m.grown
		for i := 0; h.v.t.m.grown == grown; i++ {
			put(fmt.Sprintf("t%d-n%d", trial, i), -1)
		}
		if !h.b.Drain(0) {
			t.Fatal("Drain(0) did not finish")
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("trial %d: %v", trial, p)
				}
			}()
			h.v.t.checkDrained(1, true)
		}()
		res := <-h.b.Results()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		if err := h.b.Close(); err != nil {
			t.Fatal(err)
		}
		if trial > 0 {
			continue
		}
		// Once, the checkpoint itself: the frozen entries, not the new ones.
		copyCheckpoint(t, dest, filepath.Join(dir, "restored"))
		r := openStates(t, Config{Dir: filepath.Join(dir, "restored")})
		for i := range frozen {
			r.ss.SetKey(fmt.Sprintf("t0-g%d", i))
			if v, ok := r.v.Get(); !ok || v != int64(i) {
				t.Errorf("t0-g%d = %d, %v after restore; want %d", i, v, ok, i)
			}
		}
		r.ss.SetKey("t0-n0")
		if v, ok := r.v.Get(); ok {
			t.Errorf("t0-n0 = %d after restore: written after the barrier", v)
		}
		r.b.Close()
	}
}

// TestFullSnapshotOutlivesOneTableScan is the case metamorphic seed
// 7796509801087939911 found (small-cache/long-epochs): a full snapshot whose
// scan of one state is done while another state still drains. Entries of the
// done state must not be evicted then: one read back from Pebble has lost
// its encoded mark, so its next write encodes it again, and the snapshot
// holds the key twice (its ingest fails, and the job with it).
func TestFullSnapshotOutlivesOneTableScan(t *testing.T) {
	dir := t.TempDir()
	const bound = 16
	h := openStates(t, Config{Dir: filepath.Join(dir, "live")})
	defer h.b.Close()
	put := func(k string, v int64) { h.ss.SetKey(k); h.v.Put(v) }
	for i := range bound {
		put(fmt.Sprintf("k%d", i), int64(i))
	}
	checkpointNow(t, h.b, 1, filepath.Join(dir, "chk-1"))
	// The cache is full now, with room for the 12 map entries below.
	h.b.cfg.CacheBytes = h.b.CachedBytes() + 12*h.mp.t.m.per + 1

	// Epoch 2 changes 12 of the 16 values and 12 maps: a full snapshot, in
	// which k12…k15 are clean (durable since checkpoint 1), so evictable.
	for i := range 12 {
		put(fmt.Sprintf("k%d", i), 100+int64(i))
		h.mp.Put("u", fmt.Sprint(i))
	}
	if err := h.b.Freeze(2, filepath.Join(dir, "chk-2")); err != nil {
		t.Fatal(err)
	}
	if !h.b.full {
		t.Fatal("the snapshot of an epoch that changed 24 of 28 cached entries is not full")
	}
	// Scan the values alone; the maps stay frozen.
	if _, done := h.v.t.drainSome(int(^uint(0) >> 1)); !done {
		t.Fatal("the value state did not finish draining")
	}
	// New keys past the bound (evicting, if allowed, clean entries), then an
	// update of every clean key (which reads it back if it was evicted).
	for i := range 2 * bound {
		put(fmt.Sprintf("n%d", i), -1)
	}
	for i := 12; i < bound; i++ {
		h.ss.SetKey(fmt.Sprintf("k%d", i))
		h.v.Update(func(v int64, _ bool) int64 { return v + 1000 })
	}
	if !h.b.Drain(0) {
		t.Fatal("Drain(0) did not finish")
	}
	res := <-h.b.Results()
	if res.Err != nil {
		t.Fatalf("checkpoint 2: %v", res.Err)
	}
	h.b.Applied(res)

	copyCheckpoint(t, res.Dir, filepath.Join(dir, "restored"))
	r := openStates(t, Config{Dir: filepath.Join(dir, "restored")})
	defer r.b.Close()
	for i := range bound {
		want := int64(i)
		if i < 12 {
			want += 100
		}
		r.ss.SetKey(fmt.Sprintf("k%d", i))
		if v, ok := r.v.Get(); !ok || v != want {
			t.Errorf("k%d = %d, %v after restoring checkpoint 2; want %d", i, v, ok, want)
		}
	}
}

// tableBytes returns the estimated memory of t's cached entries.
func tableBytes[K comparable, V any](t *table[K, V]) int64 { return int64(t.m.n) * t.m.per }

// checkpointNow freezes checkpoint id into dest, drains it and waits for it.
func checkpointNow(t testing.TB, b *Backend, id uint64, dest string) (full bool) {
	t.Helper()
	if err := b.Freeze(id, dest); err != nil {
		t.Fatal(err)
	}
	full = b.full
	if !b.Drain(0) {
		t.Fatal("Drain(0) did not finish")
	}
	res := <-b.Results()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	b.Applied(res)
	return full
}

// TestRestoredBackendTakesFullSnapshots checks that a restored backend whose
// state fits the cache loads it whole and takes full snapshots again, and
// that it does not while Pebble holds state no handle registered (a full
// snapshot would delete it).
func TestRestoredBackendTakesFullSnapshots(t *testing.T) {
	dir := t.TempDir()
	cfg := func(sub string) Config { return Config{Dir: filepath.Join(dir, sub), CacheBytes: 1 << 20} }
	fill := func(h *stateHandles, round int64) {
		for i := range 100 {
			h.ss.SetKey(fmt.Sprintf("k%d", i))
			h.v.Put(round*1000 + int64(i))
			if i%10 == 0 {
				h.mp.Put("u", fmt.Sprint(round))
			}
		}
		for i := range int64(20) {
			h.is.SetKey(i)
			h.iv.Put([]byte{byte(round), byte(i)})
		}
	}
	check := func(h *stateHandles, round int64) {
		t.Helper()
		for i := range 100 {
			h.ss.SetKey(fmt.Sprintf("k%d", i))
			if v, ok := h.v.Get(); !ok || v != round*1000+int64(i) {
				t.Fatalf("k%d = %d, %v; want %d", i, v, ok, round*1000+int64(i))
			}
			if u, ok := h.mp.Get("u"); i%10 == 0 && (!ok || u != fmt.Sprint(round)) {
				t.Fatalf("map of k%d: u = %q, %v; want %d", i, u, ok, round)
			}
		}
		for i := range int64(20) {
			h.is.SetKey(i)
			if v, ok := h.iv.Get(); !ok || !bytes.Equal(v, []byte{byte(round), byte(i)}) {
				t.Fatalf("int key %d = %v, %v", i, v, ok)
			}
		}
	}

	h := openStates(t, cfg("live"))
	fill(h, 1)
	if !checkpointNow(t, h.b, 1, filepath.Join(dir, "chk-1")) {
		t.Fatal("first snapshot of a fresh backend is not full")
	}
	h.b.Close()

	// Restored with every state registered: loaded whole, full again.
	copyCheckpoint(t, filepath.Join(dir, "chk-1"), filepath.Join(dir, "r1"))
	r := openStates(t, cfg("r1"))
	if got := r.b.Entries(); got != 100+10+20 {
		t.Fatalf("%d entries cached after the restore, want all 130", got)
	}
	fill(r, 2)
	if !checkpointNow(t, r.b, 2, filepath.Join(dir, "chk-2")) {
		t.Error("a restored backend holding all its state in the cache took a delta snapshot")
	}
	r.b.Close()
	copyCheckpoint(t, filepath.Join(dir, "chk-2"), filepath.Join(dir, "r2"))
	r = openStates(t, cfg("r2"))
	check(r, 2)
	r.b.Close()

	// Restored with only "value" registered: the map and ints states are
	// orphans, which only deltas leave alone.
	copyCheckpoint(t, filepath.Join(dir, "chk-1"), filepath.Join(dir, "r3"))
	b, err := Open(cfg("r3"))
	if err != nil {
		t.Fatal(err)
	}
	ss, _ := NewScope(b, String)
	v, err := NewValue(ss, "value", Int64)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		ss.SetKey(fmt.Sprintf("k%d", i))
		v.Put(1000 + int64(i))
	}
	if checkpointNow(t, b, 3, filepath.Join(dir, "chk-3")) {
		t.Error("full snapshot while Pebble holds state of unregistered names")
	}
	b.Close()
	copyCheckpoint(t, filepath.Join(dir, "chk-3"), filepath.Join(dir, "r4"))
	r = openStates(t, cfg("r4"))
	defer r.b.Close()
	check(r, 1)
}

// TestRestoreWarmsInOneGrowth checks that a restore loading a state whole
// sizes the cache's table for it at once, instead of doubling it all the
// way up (17 times for the 500,000 entries of BenchmarkRestoreWarm), and
// that every entry is loaded with its value.
func TestRestoreWarmsInOneGrowth(t *testing.T) {
	const keys = 10_000
	r, rs, rv := restoredCounts(t, keys, Config{})
	if g := rv.t.m.grown; g != 1 {
		t.Errorf("the table grew %d times while %d entries were loaded, want once", g, keys)
	}
	if !rv.t.complete || r.Entries() != keys {
		t.Fatalf("%d entries cached after the restore (complete: %v), want all %d", r.Entries(), rv.t.complete, keys)
	}
	for k := range uint64(keys) {
		rs.SetKey(k)
		if got, ok := rv.Get(); !ok || got != int64(k)+1 {
			t.Fatalf("key %d = %d, %v after the restore; want %d", k, got, ok, k+1)
		}
	}
}
