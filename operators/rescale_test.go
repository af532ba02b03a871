package operators

import (
	"encoding/binary"
	"fmt"
	"maps"
	"testing"

	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// TestWindowRedistributeTakesSmallestWatermark checks the operator state
// of a window restored with another parallelism: the smallest watermark
// any old subtask acted on, so that no window is taken for fired.
func TestWindowRedistributeTakesSmallestWatermark(t *testing.T) {
	enc := func(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }
	op := &fixedWindowOp[string, int64, int64, string]{}
	got, err := op.Redistribute(runtime.TaskInfo{Operator: "w", Subtask: 1, Parallelism: 2}, [][]byte{enc(5000), nil, enc(4999)})
	if err != nil {
		t.Fatal(err)
	}
	if want := enc(4999); string(got) != string(want) {
		t.Fatalf("got %x, want %x", got, want)
	}
	if _, err := op.Redistribute(runtime.TaskInfo{Operator: "w", Parallelism: 1}, [][]byte{{1, 2}}); err == nil {
		t.Fatal("a corrupt state was redistributed")
	}
}

// TestPreAggregateRedistributeKeepsEveryPartial checks that the open panes
// of pre-aggregation, restored with parallelism 2 → 3 → 1 → 2, keep every
// partial aggregate exactly once: per pane and key, the sum over all
// subtasks stays what it was.
func TestPreAggregateRedistributeKeepsEveryPartial(t *testing.T) {
	newOp := func() *localWindowOp[string, int64, int64] {
		return &localWindowOp[string, int64, int64]{cfg: localConfig{size: 100, slide: 100, pane: 100}, keys: state.String, accs: state.Int64,
			panes: map[int64]*localPane[string, int64]{}, firstEnd: runtime.MaxWatermark}
	}
	type paneKey struct {
		pane int64
		key  string
	}
	sums := func(states [][]byte) (map[paneKey]int64, int64) {
		out := map[paneKey]int64{}
		fired := runtime.MaxWatermark
		for _, b := range states {
			op := newOp()
			if err := op.restore(b); err != nil {
				t.Fatal(err)
			}
			fired = min(fired, op.fired)
			for start, p := range op.panes {
				for i, k := range p.keys {
					out[paneKey{start, k}] += p.accs[i]
				}
			}
		}
		return out, fired
	}
	// Two old subtasks with overlapping panes and keys.
	var states [][]byte
	for sub := range 2 {
		op := newOp()
		op.fired = int64(99 + sub)
		for pane := range int64(3) {
			p := op.pane(100 * (pane + 1))
			for k := range 4 {
				p.index[fmt.Sprint("k", k)] = len(p.keys)
				p.keys, p.accs = append(p.keys, fmt.Sprint("k", k)), append(p.accs, int64(10*sub+k))
			}
		}
		b, err := op.Snapshot(0)
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, b)
	}
	want, _ := sums(states)
	for _, par := range []int{3, 1, 2} {
		var next [][]byte
		for sub := range par {
			b, err := newOp().Redistribute(runtime.TaskInfo{Operator: "w.local", Subtask: sub, Parallelism: par}, states)
			if err != nil {
				t.Fatal(err)
			}
			if b != nil {
				next = append(next, b)
			}
		}
		got, fired := sums(next)
		if !maps.Equal(got, want) {
			t.Fatalf("parallelism %d: partial sums %v, want %v", par, got, want)
		}
		if fired != 99 {
			t.Fatalf("parallelism %d: watermark acted on %d, want 99", par, fired)
		}
		states = next
	}
}
