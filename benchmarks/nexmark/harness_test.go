package nexmark

import (
	"context"
	"slices"
	"testing"

	"github.com/weirstream/weir/runtime"
)

// TestResultSinkKeepsLastPerKey checks that the results sink of an upsert
// query holds one result per key, the last in commit order, rather than the
// whole stream: its costs count in the engine's time.
func TestResultSinkKeepsLastPerKey(t *testing.T) {
	store := &resultStore[Q19Result]{hash: hashQ19, upsert: q19Key, clock: NewEmitClock(), pre: map[preKey]*resultBatch[Q19Result]{}}
	sink := store.newSink()
	ctx := context.Background()
	if err := sink.Open(ctx, runtime.TaskInfo{}, nil); err != nil {
		t.Fatal(err)
	}
	const keys, writes = 10, 1000
	for id := uint64(1); id <= 2; id++ {
		for i := range writes {
			r := Q19Result{Rank: int64(i % keys), Bid: Bid{Auction: 7, Price: int64(id)*writes + int64(i)}}
			if err := sink.Write(ctx, Traced[Q19Result]{Result: r, Origin: -1}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := sink.PreCommit(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := sink.Commit(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	held := len(store.done.table)
	for _, c := range store.done.vals {
		held += len(c)
	}
	if held != keys {
		t.Fatalf("the store holds %d results, want %d (one per key)", held, keys)
	}
	for k, r := range store.done.table {
		if want := 2*writes + (writes - keys) + k[1]; r.Price != want {
			t.Errorf("key %v: price %d, want %d (the last written)", k, r.Price, want)
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
	b.add(&later, nil)
	if &b.vals[0][0] != first {
		t.Fatal("the first result moved: kept results were copied")
	}
	for i, v := range slices.Concat(b.vals...) {
		if v != int64(i) {
			t.Fatalf("result %d is %d", i, v)
		}
	}
}
