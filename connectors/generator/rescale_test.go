package generator

import (
	"context"
	"errors"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir/runtime"
)

// redistribute opens subtask i of parallelism p restored from the states of
// the old subtasks, as the runtime does after a change of parallelism.
func redistribute(t *testing.T, cfg SourceConfig[uint64], i, p int, old [][]byte) runtime.Source[uint64] {
	t.Helper()
	src := newSource(t, cfg)
	info := runtime.TaskInfo{Subtask: i, Parallelism: p}
	share, err := src.(runtime.Rescalable).Redistribute(info, old)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Open(context.Background(), info, share); err != nil {
		t.Fatal(err)
	}
	return src
}

// Restores at parallelism 2 → 3 → 1 → 2, each from a checkpoint taken at a
// random point of every subtask (records read after it are replayed), emit
// together what one uninterrupted run emits: every record once.
func TestSourceRedistribute(t *testing.T) {
	const count = 2000
	cfg := SourceConfig[uint64]{Count: count, ChunkSize: 7}
	for seed := int64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		var emitted []uint64
		var states [][]byte
		for stage, p := range []int{2, 3, 1, 2} {
			next := make([][]byte, p)
			for i := range p {
				var src runtime.Source[uint64]
				if stage == 0 {
					src = open(t, cfg, i, p, nil)
				} else {
					src = redistribute(t, cfg, i, p, states)
				}
				if stage == 3 {
					out, _ := readAll(t, src, 2*count)
					emitted = append(emitted, out...)
					continue
				}
				before, _ := readAll(t, src, rng.Intn(count/4))
				snap, err := src.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				if stage == 0 && rng.Intn(4) == 0 {
					// No checkpoint yet covers the subtask: nil state, all replayed.
					before, snap = nil, nil
				}
				emitted = append(emitted, before...)
				next[i] = snap
				readAll(t, src, rng.Intn(50)) // after the checkpoint: replayed
			}
			states = next
		}
		want := make([]uint64, count)
		for n := range want {
			want[n] = uint64(n) * 10
		}
		slices.Sort(emitted)
		if !slices.Equal(emitted, want) {
			t.Fatalf("seed %d: restores 2→3→1→2 emitted %d records, want each of %d once; first difference at %d", seed, len(emitted), count, firstDiff(emitted, want))
		}
	}
}

func firstDiff(a, b []uint64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// After a rescale to more subtasks than there are splits, every new subtask
// gets work, and an unbounded source keeps its splits.
func TestRedistributeSharesWork(t *testing.T) {
	cfg := SourceConfig[uint64]{ChunkSize: 5}
	old := [][]byte{nil}
	seen := map[uint64]bool{}
	for i := range 3 {
		out, _ := readAll(t, redistribute(t, cfg, i, 3, old), 30)
		if len(out) == 0 {
			t.Fatalf("new subtask %d of 3 emits nothing", i)
		}
		for _, v := range out {
			if seen[v] {
				t.Fatalf("record %d emitted twice", v)
			}
			seen[v] = true
		}
	}
	for v := uint64(0); v < 60; v++ {
		if !seen[v*10] {
			t.Fatalf("record %d of the first 60 not emitted by the 3 new subtasks", v*10)
		}
	}
}

// A state that cannot be redistributed is refused, naming the old subtask.
func TestRedistributeRefusesBadStates(t *testing.T) {
	good := open(t, SourceConfig[uint64]{}, 1, 2, nil)
	snap, _ := good.Snapshot()
	for name, old := range map[string][][]byte{
		"other subtask's offset": {snap, snap},
		"truncated splits":       {nil, encodeSplits([]split{{1, 2}})[:10]},
		"stride 0":               {nil, encodeSplits([]split{{1, 0}})},
		"unknown version":        {nil, {9, 1}},
	} {
		src := newSource(t, SourceConfig[uint64]{})
		_, err := src.(runtime.Rescalable).Redistribute(runtime.TaskInfo{Subtask: 0, Parallelism: 3}, old)
		if err == nil || !strings.Contains(err.Error(), "old subtask") {
			t.Errorf("%s: Redistribute = %v, want an error naming the old subtask", name, err)
		}
	}
	src := newSource(t, SourceConfig[uint64]{})
	if err := src.Open(context.Background(), runtime.TaskInfo{Parallelism: 1}, []byte{splitsVersion, 5}); !errors.Is(err, errBadSplits) {
		t.Errorf("Open of truncated splits = %v, want errBadSplits", err)
	}
}
