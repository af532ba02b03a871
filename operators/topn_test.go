package operators

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/weirstream/weir/state"
)

// newRankHarness drives a TopNPerKey operator (rankOp) keyed by rec.Key,
// collecting its Rankings as they are (not copied).
func newRankHarness(t *testing.T, top TopN[rec]) (*harness[rec], *rankingsCollector) {
	t.Helper()
	h, env := newHarness(t, func(r rec) string { return r.Key }, recTime)
	out := &rankingsCollector{}
	op := &rankOp[string, rec]{top: top, out: out}
	var err error
	if op.list, err = state.NewValue(env.scope, "top", state.Codec[[]rec](listCodec[rec]{elems: state.JSON[rec]()})); err != nil {
		t.Fatal(err)
	}
	h.op = op
	return h, out
}

// modelTop is the ranking of recs (in arrival order) by top: a stable sort
// (ties keep arrival order), cut after the N-th record or, WithTies, after
// the last record tied with it.
func modelTop(top TopN[rec], recs []rec) []rec {
	s := slices.Clone(recs)
	slices.SortStableFunc(s, top.Compare)
	keep := min(top.N, len(s))
	for top.WithTies && keep > 0 && keep < len(s) && top.Compare(s[keep], s[top.N-1]) == 0 {
		keep++
	}
	return s[:keep]
}

// TestTopNRankingsMatchModel feeds random records with many ties (few
// distinct values) to TopNPerKey and WindowTopN's in-place add, with and
// without WithTies, and checks every ranking against modelTop: records
// arriving while a key has fewer than N, ties at the N-th place (kept in
// arrival order, or all kept WithTies) and records that push several tied
// ones out. It also checks that an emitted Ranking is never changed later,
// that From is where the new record entered, and that Top is allocated at
// its length (the old copy grew the list by one slot and cut it: a
// Ranking of N records had room for N+1, which this test rejects).
func TestTopNRankingsMatchModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	byV := func(a, b rec) int { return cmp.Compare(b.V, a.V) } // ties: equal V
	for _, n := range []int{1, 2, 3, 5} {
		for _, ties := range []bool{false, true} {
			top := TopN[rec]{N: n, Compare: byV, WithTies: ties}
			t.Run(fmt.Sprintf("N=%d/ties=%v", n, ties), func(t *testing.T) {
				checkRankings(t, top, r, seed)
			})
		}
	}
}

func checkRankings(t *testing.T, top TopN[rec], r *rand.Rand, seed uint64) {
	h, out := newRankHarness(t, top)
	seen := map[string][]rec{}     // every record of each key, in arrival order
	windowed := map[string][]rec{} // each key's list, kept by add
	emitted := map[string][]rec{}  // each key's last Ranking.Top
	snapshots := [][]rec{}         // a copy of every emitted Top, in order
	for i := range 400 {
		in := rec{Key: fmt.Sprint(r.IntN(3)), TS: int64(i), V: r.Int64N(6)}
		h.process(in)
		seen[in.Key] = append(seen[in.Key], in)
		want := modelTop(top, seen[in.Key])
		windowed[in.Key] = top.add(windowed[in.Key], in)
		if got := windowed[in.Key]; !slices.Equal(got, want) {
			t.Fatalf("seed %d: record %d (%v): add made %v, want %v", seed, i, in, got, want)
		}
		if len(out.got) == len(snapshots) { // no Ranking: in did not enter it
			if slices.Contains(want, in) {
				t.Fatalf("seed %d: record %d (%v) ranks in %v but emitted no Ranking", seed, i, in, want)
			}
			continue
		}
		got := out.got[len(out.got)-1]
		prev := emitted[in.Key]
		switch {
		case !slices.Equal(got.Top, want):
			t.Fatalf("seed %d: record %d (%v): Ranking %v, want %v", seed, i, in, got.Top, want)
		case got.From >= len(got.Top) || got.Top[got.From] != in || !slices.Equal(got.Top[:got.From], prev[:got.From]):
			t.Fatalf("seed %d: record %d (%v): From %d in %v after %v", seed, i, in, got.From, got.Top, prev)
		case cap(got.Top) != len(got.Top):
			t.Fatalf("seed %d: record %d: Top of %d records has room for %d", seed, i, len(got.Top), cap(got.Top))
		}
		emitted[in.Key] = got.Top
		snapshots = append(snapshots, slices.Clone(got.Top))
	}
	for i, r := range out.got {
		if !slices.Equal(r.Top, snapshots[i]) {
			t.Fatalf("seed %d: Ranking %d changed after it was emitted: %v, was %v", seed, i, r.Top, snapshots[i])
		}
	}
}
