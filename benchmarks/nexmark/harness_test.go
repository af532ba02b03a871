package nexmark

import (
	"context"
	"encoding/binary"
	"iter"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/runtime"
)

// TestResultSinkKeepsLastPerKey checks that the results sink of an upsert
// query holds one result per key and checkpoint interval, the last written
// in it, rather than the whole stream: its costs count in the engine's
// time (keeping every write until the commit was a fifth of q19's CPU
// time). The committed table holds the last row of each key.
func TestResultSinkKeepsLastPerKey(t *testing.T) {
	store := &resultStore[Q18Result]{hash: hashBid, upsert: q18Key, clock: NewEmitClock(), pre: map[preKey]*resultBatch[Q18Result]{}}
	sink := store.newSink()
	ctx := context.Background()
	if err := sink.Open(ctx, runtime.TaskInfo{}, nil); err != nil {
		t.Fatal(err)
	}
	const keys, writes = 10, 1000
	for id := uint64(1); id <= 2; id++ {
		for i := range writes {
			r := Bid{Bidder: int64(i % keys), Auction: 7, Price: int64(id)*writes + int64(i)}
			if err := sink.Write(ctx, Traced[Q18Result]{Result: r, Origin: -1}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := sink.PreCommit(ctx, id); err != nil {
			t.Fatal(err)
		}
		if held := store.tables[0].vals.kept(); held != keys*int(id) {
			t.Fatalf("checkpoint %d: the table holds %d results, want %d (one per key and interval)", id, held, keys*int(id))
		}
		if err := sink.Commit(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	rows := 0
	store.eachRow(func(r Q18Result) {
		rows++
		if want := 2*writes + (writes - keys) + r.Bidder; r.Price != want {
			t.Errorf("key %v: price %d, want %d (the last written)", q18Key(r), r.Price, want)
		}
	})
	if rows != keys {
		t.Fatalf("the table has %d rows, want %d (one per key)", rows, keys)
	}
}

// TestUpsertTableMatchesModel writes random upsert streams, from several
// subtasks, through the results sink, flat and grouped, with checkpoints
// pre-committed and committed late, out of order between subtasks, and
// restores that drop what was pre-committed after the restored checkpoint;
// at every step the committed table must equal a model (a map of the last
// committed row per key). Groups are reused across checkpoints, so that
// commits both move groups and fold rows into groups already committed.
func TestUpsertTableMatchesModel(t *testing.T) {
	seed := testseed.Seed(t)
	for _, grouped := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(seed, 19))
		ctx := context.Background()
		store := &resultStore[Q19Result]{hash: hashQ19, upsert: q19Key, grouped: grouped, clock: NewEmitClock(), pre: map[preKey]*resultBatch[Q19Result]{}}
		const subtasks = 3
		type pending struct {
			id   uint64
			rows map[upsertKey]Q19Result
		}
		model := map[upsertKey]Q19Result{}
		sinks := make([]runtime.Sink[Traced[Q19Result]], subtasks)
		cur := make([]map[upsertKey]Q19Result, subtasks)
		pend := make([][]pending, subtasks)
		committed := make([]uint64, subtasks) // last committed checkpoint
		open := func(st int, restored []byte) {
			sinks[st] = store.newSink()
			if err := sinks[st].Open(ctx, runtime.TaskInfo{Subtask: st, Parallelism: subtasks}, restored); err != nil {
				t.Fatal(err)
			}
			cur[st] = map[upsertKey]Q19Result{}
		}
		for st := range subtasks {
			open(st, nil)
		}
		id := uint64(0)
		price := int64(0)
		for step := range 3000 {
			st := rng.IntN(subtasks)
			switch op := rng.IntN(100); {
			case op < 80: // a run of rows of one group, as a ranking's
				auction := int64(st + subtasks*rng.IntN(40)) // a subtask's own keys
				for rank := int64(1 + rng.IntN(10)); rank <= 10 && rng.IntN(4) > 0; rank++ {
					price++
					r := Q19Result{Rank: rank, Bid: Bid{Auction: auction, Price: price}}
					if err := sinks[st].Write(ctx, Traced[Q19Result]{Result: r, Origin: -1}); err != nil {
						t.Fatal(err)
					}
					cur[st][q19Key(r)] = r
				}
			case op < 90:
				id++
				if _, err := sinks[st].PreCommit(ctx, id); err != nil {
					t.Fatal(err)
				}
				pend[st] = append(pend[st], pending{id, cur[st]})
				cur[st] = map[upsertKey]Q19Result{}
			case op < 97:
				if len(pend[st]) == 0 {
					continue
				}
				k := rng.IntN(len(pend[st]))
				upTo := pend[st][k].id
				if err := sinks[st].Commit(ctx, upTo); err != nil {
					t.Fatal(err)
				}
				for _, p := range pend[st][:k+1] {
					maps.Copy(model, p.rows)
				}
				pend[st] = pend[st][k+1:]
				committed[st] = upTo
			default: // a restore from the subtask's last committed checkpoint or a later one
				var restored []byte
				if len(pend[st]) > 0 || committed[st] > 0 {
					k := rng.IntN(len(pend[st]) + 1) // k pending ones survive
					upTo := committed[st]
					if k > 0 {
						upTo = pend[st][k-1].id
					}
					for _, p := range pend[st][:k] {
						maps.Copy(model, p.rows)
					}
					pend[st] = nil
					committed[st] = upTo
					restored = binary.BigEndian.AppendUint64(nil, upTo)
				}
				open(st, restored)
			}
			got := map[upsertKey]Q19Result{}
			store.mu.Lock()
			store.eachRow(func(r Q19Result) {
				if _, dup := got[q19Key(r)]; dup {
					t.Errorf("grouped %v, step %d: key %v twice in the table", grouped, step, q19Key(r))
				}
				got[q19Key(r)] = r
			})
			store.mu.Unlock()
			if !maps.Equal(got, model) {
				t.Fatalf("grouped %v, step %d: the table holds %d rows, the model %d, or their rows differ", grouped, step, len(got), len(model))
			}
		}
	}
}

// TestResultBatchKeepsInChunks checks that kept results are never copied
// as more arrive, and come back in order.
func TestResultBatchKeepsInChunks(t *testing.T) {
	var b, later resultBatch[int64]
	b.keep(0)
	first := &b.vals[0][0]
	for i := int64(1); i < 3*keepChunk; i++ {
		b.keep(i)
	}
	for i := int64(3 * keepChunk); i < 4*keepChunk+1; i++ {
		later.keep(i)
	}
	b.add(&later)
	if &b.vals[0][0] != first {
		t.Fatal("the first result moved: kept results were copied")
	}
	for i, v := range slices.Concat(b.vals...) {
		if v != int64(i) {
			t.Fatalf("result %d is %d", i, v)
		}
	}
}

// TestUpsertTableKeepsPendingRows writes a key in two checkpoint intervals
// and commits only the first: the committed row must be the first
// interval's, not the one written after its pre-commit; a restore then
// drops the second, and the next write starts a row of its own.
func TestUpsertTableKeepsPendingRows(t *testing.T) {
	tab := newUpsertTable[Bid]()
	k := upsertKey{1, 2}
	row := func(price int64) Bid { return Bid{Bidder: 1, Auction: 2, Price: price} }
	committed := func() (out []int64) {
		tab.eachRow(func(b Bid) { out = append(out, b.Price) })
		return out
	}
	tab.set(k, row(1))
	tab.set(k, row(2)) // same interval: replaces row 1
	tab.preCommit(1)
	tab.set(k, row(3)) // next interval: must not replace row 2
	tab.preCommit(2)
	tab.set(k, row(4)) // not pre-committed
	if got := committed(); len(got) != 0 {
		t.Fatalf("before any commit the table holds %v", got)
	}
	tab.commit(1)
	if got := committed(); !slices.Equal(got, []int64{2}) {
		t.Fatalf("after commit 1 the table holds %v, want [2]", got)
	}
	tab.discard() // a restore from checkpoint 1: 3 and 4 are dropped
	tab.commit(2)
	if got := committed(); !slices.Equal(got, []int64{2}) {
		t.Fatalf("a commit after the restore made %v committed, want [2]", got)
	}
	tab.set(k, row(5))
	tab.preCommit(3)
	tab.commit(3)
	if got := committed(); !slices.Equal(got, []int64{5}) {
		t.Fatalf("after commit 3 the table holds %v, want [5]", got)
	}
}

// TestQ10SinkWritesWithoutAllocating checks that q10's file sink formats a
// result, and finds its partition, without allocating: they were a string
// per line and per partition name, and most of q10's time in the engine.
func TestQ10SinkWritesWithoutAllocating(t *testing.T) {
	ctx := context.Background()
	var q query[Q10Result]
	for _, x := range Queries {
		if x.Name() == "q10" {
			q = x.(query[Q10Result])
		}
	}
	root := t.TempDir()
	sink, err := partitionedFileSink(root, q.files.partition, func(dst []byte, r Q10Result) []byte { return append(q.files.line(dst, r), '\n') })()
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Open(ctx, runtime.TaskInfo{Subtask: 0, Parallelism: 1}, nil); err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	var minutes q10Minutes
	r := minutes.of(&Bid{Auction: 1, Bidder: 2, Price: 3, DateTime: 1_000, Extra: "extra"})
	if err := sink.Write(ctx, r); err != nil { // opens the partition's sink
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		r.Price++
		if err := sink.Write(ctx, r); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("%.2f allocations per q10 result written, want 0", allocs)
	}
}

// TestLineQuotesAsGo checks that result lines quote strings exactly as
// strconv.Quote, fast path included.
func TestLineQuotesAsGo(t *testing.T) {
	const seed = 14
	rng := rand.New(rand.NewPCG(seed, seed))
	alphabet := []rune{'a', 'Z', '0', ' ', '~', '"', '\\', '\n', '\x7f', 'é', '\x00'}
	for i := range 2000 {
		var b strings.Builder
		for range rng.IntN(8) {
			// Mostly printable ASCII, as the generator's strings.
			if rng.IntN(4) > 0 {
				b.WriteByte(byte(' ' + rng.IntN('~'-' '+1)))
			} else {
				b.WriteRune(alphabet[rng.IntN(len(alphabet))])
			}
		}
		s := b.String()
		if got, want := string(line(nil).str("k", s)), " k="+strconv.Quote(s); got != want {
			t.Fatalf("seed %d, string %d %q: line %s, want %s", seed, i, s, got, want)
		}
	}
}

// q19Rows is the upsert stream q19's engine writes to its sink over the
// first n events: the rows of every ranking change, in order.
func q19Rows(n int64) []Q19Result {
	g := MustNewGenerator(Config{Seed: 1, NumEvents: n})
	top := map[int64][]Bid{}
	var rows []Q19Result
	for e := range g.Events(0, g.NumEvents()) {
		if e.Kind != KindBid {
			continue
		}
		l, i := q19Rank(top, e.Bid)
		if i < 0 {
			continue
		}
		for j := i; j < len(l); j++ {
			rows = append(rows, Q19Result{int64(j + 1), l[j]})
		}
	}
	return rows
}

// BenchmarkResultSinkUpsert is the cost of the results sink for q19's
// upsert stream (1M events' worth of rows, a checkpoint every 100,000
// rows), which counts in the engine's time: with a map entry per row
// (flat) and with the rows grouped by auction (grouped, as q19 runs).
func BenchmarkResultSinkUpsert(b *testing.B) {
	rows := q19Rows(1 << 20)
	for _, grouped := range []bool{false, true} {
		b.Run(map[bool]string{false: "flat", true: "grouped"}[grouped], func(b *testing.B) {
			benchSinkRows(b, rows, 100_000, func() *resultStore[Q19Result] {
				return &resultStore[Q19Result]{hash: hashQ19, upsert: q19Key, grouped: grouped, clock: NewEmitClock(), pre: map[preKey]*resultBatch[Q19Result]{}}
			})
		})
	}
}

// TestEmitClockForRemembersEveryBlock checks that a clock sized for a job
// remembers the emission of every block of its events, with no more than
// twice the slots they need (the 16 MiB of a full clock were a fixed cost
// of every engine run), and at most the full clock's.
func TestEmitClockForRemembersEveryBlock(t *testing.T) {
	for _, events := range []int64{1, emitBlock - 1, emitBlock, emitBlock + 1, 1000, 2_000_000, 200_000_000} {
		c := emitClockFor(events)
		blocks := (events + emitBlock - 1) / emitBlock
		if want := min(max(1, 2*blocks), maxEmitSlots); int64(len(c.slots)) > want || int64(len(c.slots)) < min(blocks, maxEmitSlots) {
			t.Errorf("events %d: %d slots, want %d to %d", events, len(c.slots), min(blocks, maxEmitSlots), want)
		}
		if blocks > maxEmitSlots {
			continue
		}
		for n := int64(0); n < events; n += emitBlock {
			c.record(n)
		}
		for n := int64(0); n < events; n += emitBlock {
			if _, ok := c.Since(n); !ok {
				t.Fatalf("events %d: block of event %d not remembered", events, n)
			}
		}
	}
}

// q18Rows is the upsert stream q18's engine writes to its sink over the
// first n events: every bid that becomes its (bidder, auction)'s last.
func q18Rows(n int64) []Q18Result {
	g := MustNewGenerator(Config{Seed: 1, NumEvents: n})
	last := map[upsertKey]Bid{}
	var rows []Q18Result
	for e := range g.Events(0, g.NumEvents()) {
		if e.Kind != KindBid {
			continue
		}
		k := q18Key(e.Bid)
		if cur, ok := last[k]; ok && !LaterBid(&e.Bid, &cur) {
			continue
		}
		last[k] = e.Bid
		rows = append(rows, e.Bid)
	}
	return rows
}

// BenchmarkResultSinkQ18 is the cost of the results sink for q18's upsert
// stream (2M events' worth of rows, about 0.6M keys, a checkpoint every
// 400,000 rows, about a second of it at one core), which counts in the
// engine's time: a row per write, kept per key until the commit folds it
// into the committed table.
func BenchmarkResultSinkQ18(b *testing.B) {
	benchSinkRows(b, q18Rows(2_000_000), 400_000, func() *resultStore[Q18Result] {
		return &resultStore[Q18Result]{hash: hashBid, upsert: q18Key, clock: NewEmitClock(), pre: map[preKey]*resultBatch[Q18Result]{}}
	})
}

// benchSinkRows writes rows through the sink of a new store b.N times,
// with a checkpoint (pre-commit and commit) every `every` rows and after
// the last, and reports the CPU time per row.
func benchSinkRows[R any](b *testing.B, rows []R, every int, newStore func() *resultStore[R]) {
	ctx := context.Background()
	cpu0 := cpuTime()
	for range b.N {
		sink := newStore().newSink()
		if err := sink.Open(ctx, runtime.TaskInfo{}, nil); err != nil {
			b.Fatal(err)
		}
		id := uint64(0)
		for i, r := range rows {
			sink.Write(ctx, Traced[R]{Result: r, Origin: -1})
			if i%every == every-1 || i == len(rows)-1 {
				id++
				sink.PreCommit(ctx, id)
				sink.Commit(ctx, id)
			}
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*len(rows)), "cpu-ns/row")
}

// len and all serve the tests.
func (x *rowIndex) len() int { return x.n }

// all yields each key and its integer.
func (x *rowIndex) all() iter.Seq2[upsertKey, int32] {
	return func(yield func(upsertKey, int32) bool) {
		for _, s := range x.slots {
			if s.place != 0 && !yield(s.k, s.place-1) {
				return
			}
		}
	}
}

// TestRowIndexMatchesMap checks the sink's index of upsert rows against a
// map through many growths, with keys that share their first or second
// part (an auction's bidders, a bidder's auctions).
func TestRowIndexMatchesMap(t *testing.T) {
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, seed))
	x, model := newRowIndex(0), map[upsertKey]int32{}
	for i := range int32(100_000) {
		k := upsertKey{rng.Int64N(300), rng.Int64N(1000)}
		got, ok := x.place(k, i)
		want, had := model[k]
		if !had {
			want = i
			model[k] = i
		}
		if got != want || ok != had {
			t.Fatalf("seed %d, step %d, key %v: place %d, %v; want %d, %v", seed, i, k, got, ok, want, had)
		}
	}
	if x.len() != len(model) {
		t.Fatalf("seed %d: %d keys, want %d", seed, x.len(), len(model))
	}
	n := 0
	for k, p := range x.all() {
		if n++; model[k] != p {
			t.Fatalf("seed %d: key %v at %d, want %d", seed, k, p, model[k])
		}
	}
	if n != len(model) {
		t.Fatalf("seed %d: all yields %d keys, want %d", seed, n, len(model))
	}
}
