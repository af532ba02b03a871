package operators_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// ranked orders tevs best first: by value, then time, then key (a total
// order on distinct events).
func ranked(a, b tev) int {
	return cmp.Or(cmp.Compare(b.V, a.V), cmp.Compare(a.TS, b.TS), cmp.Compare(a.Key, b.Key))
}

// later orders tevs by time, then value.
func later(a, b tev) bool { return a.TS > b.TS || a.TS == b.TS && a.V > b.V }

// upserts are the tables upsertJob's sinks commit.
type upserts struct {
	top, last, lastAtCheckpoints *output[string]
	// relayed is KeepLast again behind KeepLastAtCheckpoints: at
	// parallelism 1 the two are chained, and what the first emits at a
	// barrier must reach the second's state before its snapshot.
	relayed *output[string]
}

func newUpserts() upserts {
	return upserts{newOutput[string](), newOutput[string](), newOutput[string](), newOutput[string]()}
}

// upsertJob runs TopNPerKey (top 3) and KeepLast, with and without
// KeepLastAtCheckpoints, over evs and folds their upsert streams, as rows
// "key/rank=event" and "key=event", into tables.
func upsertJob(p *runtime.Pipeline, src runtime.SourceFactory[uint64], evs []tev, out upserts) {
	s := operators.Map(runtime.From(p, "src", src), func(i uint64) tev { return evs[i] })
	keyed := operators.KeyBy(s, func(e tev) int64 { return e.Key })
	rankings := operators.TopNPerKey(keyed, "top", operators.TopN[tev]{N: 3, Compare: ranked}, state.JSON[tev]())
	rows := operators.FlatMap(rankings, func(r operators.Ranking[int64, tev], out runtime.Collector[string]) {
		for i := r.From; i < len(r.Top); i++ {
			out.Collect(fmt.Sprintf("%d/%d=%v", r.Key, i+1, r.Top[i]))
		}
	})
	runtime.To(rows, "top-sink", newMemSink(out.top))
	row := func(e tev) string { return fmt.Sprintf("%d=%v", e.Key, e) }
	latest := operators.KeepLast(keyed, "last", later, state.JSON[tev]())
	runtime.To(operators.Map(latest, row), "last-sink", newMemSink(out.last))
	batched := operators.KeepLast(keyed, "last-at-checkpoints", later, state.JSON[tev](), operators.KeepLastAtCheckpoints())
	runtime.To(operators.Map(batched, row), "last-at-checkpoints-sink", newMemSink(out.lastAtCheckpoints))
	relayed := operators.KeepLast(operators.KeyBy(batched, func(e tev) int64 { return e.Key }), "relayed", later, state.JSON[tev]())
	runtime.To(operators.Map(relayed, row), "relayed-sink", newMemSink(out.relayed))
}

// check compares the folded tables with the reference's, and checks that
// KeepLastAtCheckpoints committed each key at most once a checkpoint, and
// that what it emitted at a barrier reached the KeepLast behind it in the
// same checkpoint.
func (u upserts) check(t *testing.T, wantTop, wantLast []string) {
	t.Helper()
	check(t, "top 3", fold(u.top.records()), wantTop)
	check(t, "last", fold(u.last.records()), wantLast)
	check(t, "last at checkpoints", fold(u.lastAtCheckpoints.records()), wantLast)
	check(t, "relayed", fold(u.relayed.records()), wantLast)
	relayed := u.relayed.commits()
	for id, batch := range u.lastAtCheckpoints.commits() {
		seen := map[string]bool{}
		for _, r := range batch {
			k, _, _ := strings.Cut(r, "=")
			if seen[k] {
				t.Fatalf("KeepLastAtCheckpoints committed key %s twice in checkpoint %d: %q", k, id, batch)
			}
			seen[k] = true
		}
		check(t, fmt.Sprintf("relayed in checkpoint %d", id), relayed[id], batch)
	}
}

// fold returns the final table of an upsert stream of "key=value" rows.
func fold(rows []string) []string {
	table := map[string]string{}
	for _, r := range rows {
		k, _, _ := strings.Cut(r, "=")
		table[k] = r
	}
	var out []string
	for _, r := range table {
		out = append(out, r)
	}
	return out
}

func upsertWant(evs []tev) (top, last []string) {
	byKey := map[int64][]tev{}
	for _, e := range evs {
		byKey[e.Key] = append(byKey[e.Key], e)
	}
	for k, es := range byKey {
		slices.SortFunc(es, ranked)
		for i, e := range es[:min(3, len(es))] {
			top = append(top, fmt.Sprintf("%d/%d=%v", k, i+1, e))
		}
		l := es[0]
		for _, e := range es[1:] {
			if later(e, l) {
				l = e
			}
		}
		last = append(last, fmt.Sprintf("%d=%v", k, l))
	}
	return top, last
}

func randomEvents(rng *rand.Rand, n, keys int) []tev {
	evs := make([]tev, n)
	for i := range evs {
		evs[i] = tev{Key: rng.Int64N(int64(keys)), TS: rng.Int64N(int64(n)), V: rng.Int64N(50)}
	}
	return evs
}

// TestTopNPerKeyAndKeepLast checks that the upsert streams of TopNPerKey
// and KeepLast (with and without KeepLastAtCheckpoints) fold into the top 3
// and the latest event per key, whatever the arrival order (parallelism 3
// interleaves the source's subtasks).
func TestTopNPerKeyAndKeepLast(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 3))
	evs := randomEvents(rng, 5000, 40)
	wantTop, wantLast := upsertWant(evs)
	for _, par := range []int{1, 3} {
		t.Run(fmt.Sprintf("parallelism=%d", par), func(t *testing.T) {
			out := newUpserts()
			p := runtime.NewPipeline("upserts")
			upsertJob(p, must(generator.NewSource(generator.SourceConfig[uint64]{Record: func(i uint64) uint64 { return i }, Count: uint64(len(evs)), ChunkSize: 7})), evs, out)
			if err := runtime.Run(context.Background(), p, testConfig(t, par)); err != nil {
				t.Fatal(err)
			}
			out.check(t, wantTop, wantLast)
			if n := len(out.top.records()); n >= len(evs) {
				t.Errorf("TopNPerKey emitted %d rows for %d events: it should skip records that do not rank", n, len(evs))
			}
		})
	}
}

// TestUpsertOperatorsRestart stops or crashes the job in the middle of its
// input and restarts it from its checkpoint: the folded tables must be
// those of one uninterrupted run.
func TestUpsertOperatorsRestart(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 4))
	const n = 3000
	evs := randomEvents(rng, n, 25)
	wantTop, wantLast := upsertWant(evs)
	for _, par := range []int{1, 2} {
		for _, mode := range []string{"stop", "crash"} {
			t.Run(fmt.Sprintf("parallelism=%d/%s", par, mode), func(t *testing.T) {
				dir := t.TempDir()
				out := newUpserts()
				rj := restartJob{name: "upserts-restart", par: par, n: n, build: func(p *runtime.Pipeline, src runtime.SourceFactory[uint64], _ *output[string]) {
					upsertJob(p, src, evs, out)
				}}
				rj.interrupt(t, dir, out.top, n/2, mode)
				rj.resume(t, dir, out.top)
				out.check(t, wantTop, wantLast)
			})
		}
	}
}

// TestLookupJoin joins with a table as an inner and a left outer join, and
// checks that a table that cannot be loaded stops the job with an error
// naming the operator.
func TestLookupJoin(t *testing.T) {
	table := map[uint64]string{}
	for k := uint64(0); k < 10; k += 2 {
		table[k] = fmt.Sprintf("row%d", k)
	}
	var wantInner, wantLeft []string
	for v := uint64(0); v < 100; v++ {
		row, ok := table[v%10]
		if ok {
			wantInner = append(wantInner, fmt.Sprintf("%d:%s", v, row))
		} else {
			row = "none"
		}
		wantLeft = append(wantLeft, fmt.Sprintf("%d:%s", v, row))
	}
	load := func() (map[uint64]string, error) { return table, nil }
	key := func(v uint64) uint64 { return v % 10 }
	for _, par := range []int{1, 3} {
		t.Run(fmt.Sprintf("parallelism=%d", par), func(t *testing.T) {
			inner, left := newOutput[string](), newOutput[string]()
			p := runtime.NewPipeline("lookup")
			s := runtime.From(p, "src", numbers(100))
			runtime.To(operators.LookupJoin(s, "inner", load, key, func(v uint64, row string, found bool, out runtime.Collector[string]) {
				if found {
					out.Collect(fmt.Sprintf("%d:%s", v, row))
				}
			}), "inner-sink", newMemSink(inner))
			runtime.To(operators.LookupJoin(s, "left", load, key, func(v uint64, row string, found bool, out runtime.Collector[string]) {
				if !found {
					row = "none"
				}
				out.Collect(fmt.Sprintf("%d:%s", v, row))
			}), "left-sink", newMemSink(left))
			if err := runtime.Run(context.Background(), p, testConfig(t, par)); err != nil {
				t.Fatal(err)
			}
			check(t, "inner", inner.records(), wantInner)
			check(t, "left", left.records(), wantLeft)
		})
	}
	p := runtime.NewPipeline("lookup-fails")
	errMissing := errors.New("side input missing")
	joined := operators.LookupJoin(runtime.From(p, "src", numbers(10)), "dims", func() (map[uint64]string, error) { return nil, errMissing }, key,
		func(uint64, string, bool, runtime.Collector[string]) {})
	runtime.To(joined, "sink", newMemSink(newOutput[string]()))
	err := runtime.Run(context.Background(), p, testConfig(t, 1))
	if !errors.Is(err, errMissing) || !strings.Contains(err.Error(), `"dims"`) {
		t.Fatalf("error %v, want one wrapping %v and naming the operator", err, errMissing)
	}
}
