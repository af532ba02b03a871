package statebackend

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

// TestListAppendWritesOnlyTheAppended checks that a checkpoint after an Add
// to a long list writes the appended element alone, as a merge operand,
// and that Pebble's concatenation of the operands restores the list.
func TestListAppendWritesOnlyTheAppended(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(Config{Dir: filepath.Join(dir, "live"), CacheBytes: MinCacheBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, _ := NewScope(b, String)
	l, err := NewList(s, "events", Int64)
	if err != nil {
		t.Fatal(err)
	}
	s.SetKey("k")
	var want []int64
	for i := range int64(1000) {
		l.Add(i)
		want = append(want, i)
	}
	checkpointNow(t, b, 1, filepath.Join(dir, "chk-1")) // full: a Set
	// Another key, so that the next snapshot is a delta.
	for i := range 10 {
		s.SetKey(fmt.Sprint("other", i))
		l.Add(1)
	}
	checkpointNow(t, b, 2, filepath.Join(dir, "chk-2"))

	s.SetKey("k")
	l.AddAll([]int64{1000, 1001})
	want = append(want, 1000, 1001)
	if err := b.Freeze(3, filepath.Join(dir, "chk-3")); err != nil {
		t.Fatal(err)
	}
	if b.full {
		t.Fatal("snapshot 3 is full; the test needs a delta")
	}
	b.tables[0].drainSome(1 << 20)
	if n := len(b.delta.recs); n != 1 {
		t.Fatalf("delta of checkpoint 3 has %d records, want 1", n)
	}
	if r := b.delta.recs[0]; !r.merge || r.vlen != 2*9 {
		t.Fatalf("delta record: merge %v, %d value bytes; want a merge of 2 elements (18 bytes)", r.merge, r.vlen)
	}
	if !b.Drain(0) {
		t.Fatal("Drain(0) did not finish")
	}
	res := <-b.Results()
	if res.Err != nil {
		t.Fatal(res.Err)
	}

	copyCheckpoint(t, res.Dir, filepath.Join(dir, "restored"))
	r, err := Open(Config{Dir: filepath.Join(dir, "restored"), CacheBytes: MinCacheBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rs, _ := NewScope(r, String)
	rl, err := NewList(rs, "events", Int64)
	if err != nil {
		t.Fatal(err)
	}
	rs.SetKey("k")
	if got := slices.Collect(rl.All()); !slices.Equal(got, want) {
		t.Fatalf("restored list has %d elements %v…, want %d", len(got), got[:min(5, len(got))], len(want))
	}
}

// TestListUpdateCopies checks that Update keeps a copy: an Add after it must
// not write into the caller's array.
func TestListUpdateCopies(t *testing.T) {
	b, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, _ := NewScope(b, String)
	l, _ := NewList(s, "l", Int64)
	s.SetKey("k")
	buf := []int64{1, 2, 3, 4}
	l.Update(buf[:2])
	l.Add(9)
	if buf[2] != 3 {
		t.Fatalf("Add after Update(buf[:2]) wrote %d into buf[2]", buf[2])
	}
	if got := slices.Collect(l.All()); !slices.Equal(got, []int64{1, 2, 9}) {
		t.Fatalf("list = %v, want [1 2 9]", got)
	}
	l.Update(nil)
	if n := l.Len(); n != 0 {
		t.Fatalf("Len after Update(nil) = %d", n)
	}
}
