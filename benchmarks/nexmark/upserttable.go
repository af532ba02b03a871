package nexmark

import "math/bits"

// upsertTable is one subtask's table of a flat upsert stream (q18): the
// committed row of each key, and the rows written since, which a commit
// makes the committed ones. A key's rows all come from one subtask (its
// upsert stream's order is that subtask's), so the subtasks' tables are
// disjoint and the sink's table is their union.
//
// Each key has one entry, found once per write: the write and the commit
// of a row are one lookup, where a table of pending rows folded into the
// committed table at each commit was two. (q18 writes about 1.8M rows of
// 0.6M keys over 2M events; folding was a tenth of its engine's CPU
// profile.) A commit walks the list of the rows written in its checkpoint
// and marks each one committed in its key's entry, found by its index.
//
// Values are never overwritten while their checkpoint is pending: a key
// written in two checkpoints' intervals has a row for each, and rows that
// a later commit replaced stay in vals, so a table holds at most one row
// per key and checkpoint interval.
type upsertTable[R any] struct {
	index *rowIndex     // key → index in keys
	keys  []upsertEntry // one per key
	vals  resultBatch[R]
	// interval counts the pre-commits, so that a key's entry says whether
	// its latest row is of the current checkpoint interval.
	interval uint32
	cur      []writtenRow // rows written in the current interval
	pending  []preCommittedRows
}

// upsertEntry is a key's rows: 1 + the place in vals of its committed row
// and of its latest one (0: none), and the interval that wrote the latest;
// a write replaces the latest row only in that interval.
type upsertEntry struct {
	committed, latest int32
	interval          uint32
}

// writtenRow is a row written in a checkpoint interval: its key's index in
// keys and its place in vals.
type writtenRow struct{ key, place int32 }

type preCommittedRows struct {
	checkpoint uint64
	rows       []writtenRow
}

func newUpsertTable[R any]() *upsertTable[R] {
	return &upsertTable[R]{index: newRowIndex(0), interval: 1}
}

// set makes r the latest row of key k.
func (t *upsertTable[R]) set(k upsertKey, r R) {
	i, ok := t.index.place(k, int32(len(t.keys)))
	if !ok {
		t.keys = append(t.keys, upsertEntry{})
	}
	e := &t.keys[i]
	if e.latest != 0 && e.interval == t.interval {
		t.vals.setAt(e.latest-1, r)
		return
	}
	place := int32(t.vals.kept())
	t.vals.keep(r)
	e.latest, e.interval = place+1, t.interval
	t.cur = append(t.cur, writtenRow{i, place})
}

// preCommit closes the current interval as checkpoint id's.
func (t *upsertTable[R]) preCommit(id uint64) {
	t.pending = append(t.pending, preCommittedRows{id, t.cur})
	t.cur = make([]writtenRow, 0, len(t.cur))
	t.interval++
}

// commit makes the rows pre-committed at or before checkpoint id the
// committed ones.
func (t *upsertTable[R]) commit(id uint64) {
	n := 0
	for ; n < len(t.pending) && t.pending[n].checkpoint <= id; n++ {
		for _, w := range t.pending[n].rows {
			t.keys[w.key].committed = w.place + 1
		}
	}
	t.pending = t.pending[n:]
}

// discard drops every row not committed: a restart goes on from the
// committed table. A new interval makes every key's latest row stale.
func (t *upsertTable[R]) discard() {
	t.pending, t.cur = nil, t.cur[:0]
	t.interval++
}

// eachRow calls f with each committed row.
func (t *upsertTable[R]) eachRow(f func(R)) {
	for _, e := range t.keys {
		if e.committed != 0 {
			f(t.vals.at(e.committed - 1))
		}
	}
}

// rowIndex maps the keys of an upsert stream to small integers. It is open
// addressing with linear probing over one array of slots, each key beside
// its integer: a lookup in a table of a few hundred thousand keys costs one
// cache miss, where a Go map costs two (its control word, then the slot).
// BenchmarkResultSinkQ18 gives the cost per row of q18's sink.
type rowIndex struct {
	slots []rowSlot
	n     int
	shift uint // 64 - log2(len(slots)): a key's home is its hash >> shift
}

// rowSlot is a key and 1 + its integer; 0 marks a free slot.
type rowSlot struct {
	k     upsertKey
	place int32
}

// newRowIndex returns an index with room for n keys before it grows.
func newRowIndex(n int) *rowIndex {
	size := 8
	for 4*n > 3*size {
		size *= 2
	}
	return &rowIndex{slots: make([]rowSlot, size), shift: uint(64 - bits.TrailingZeros(uint(size)))}
}

func (x *rowIndex) home(k upsertKey) int {
	return int(mix64(uint64(k[0])*0x9E3779B97F4A7C15^uint64(k[1])) >> x.shift)
}

// place returns the integer of k and true if k has one, else makes next
// its integer and returns next, false.
func (x *rowIndex) place(k upsertKey, next int32) (int32, bool) {
	mask := len(x.slots) - 1
	i := x.home(k)
	for ; x.slots[i].place != 0; i = (i + 1) & mask {
		if x.slots[i].k == k {
			return x.slots[i].place - 1, true
		}
	}
	if 4*(x.n+1) > 3*len(x.slots) {
		x.grow()
		return x.place(k, next)
	}
	x.slots[i] = rowSlot{k, next + 1}
	x.n++
	return next, false
}

func (x *rowIndex) grow() {
	old := x.slots
	*x = *newRowIndex(2 * len(old) * 3 / 4)
	mask := len(x.slots) - 1
	for _, s := range old {
		if s.place == 0 {
			continue
		}
		i := x.home(s.k)
		for x.slots[i].place != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = s
		x.n++
	}
}
