package kafka

import (
	"testing"

	"github.com/weirstream/weir/runtime"
)

// TestSourceRedistribute checks that after a change of parallelism (2 → 3
// → 1 → 2) every partition is resumed by exactly one subtask, the one that
// owns it, at the offset (and end) the old states held.
func TestSourceRedistribute(t *testing.T) {
	want := sourceState{next: map[topicPartition]int64{}, end: map[topicPartition]int64{}, bounded: true}
	for _, topic := range []string{"orders", "payments"} {
		for p := range int32(7) {
			tp := topicPartition{topic, p}
			want.next[tp], want.end[tp] = int64(100*p+3), int64(1000*p)
		}
	}
	// The states of a run at parallelism 2.
	var states [][]byte
	for sub := range 2 {
		st := sourceState{next: map[topicPartition]int64{}, end: map[topicPartition]int64{}, bounded: true}
		for tp, off := range want.next {
			if owner(tp, 2) == sub {
				st.next[tp], st.end[tp] = off, want.end[tp]
			}
		}
		states = append(states, sourceEncodeState(st))
	}
	for _, par := range []int{3, 1, 2} {
		seen := map[topicPartition]int{}
		var next [][]byte
		for sub := range par {
			b, err := (&source[[]byte]{}).Redistribute(runtime.TaskInfo{Subtask: sub, Parallelism: par}, states)
			if err != nil {
				t.Fatal(err)
			}
			st, err := sourceDecodeState(b)
			if err != nil {
				t.Fatal(err)
			}
			if !st.bounded {
				t.Fatalf("parallelism %d, subtask %d: lost the bounded flag", par, sub)
			}
			for tp, off := range st.next {
				seen[tp]++
				if owner(tp, par) != sub {
					t.Errorf("parallelism %d: subtask %d got %s, which subtask %d owns", par, sub, tp, owner(tp, par))
				}
				if off != want.next[tp] || st.end[tp] != want.end[tp] {
					t.Errorf("parallelism %d: %s at %d (end %d), want %d (end %d)", par, tp, off, st.end[tp], want.next[tp], want.end[tp])
				}
			}
			next = append(next, b)
		}
		for tp := range want.next {
			if seen[tp] != 1 {
				t.Errorf("parallelism %d: %s resumed by %d subtasks, want 1", par, tp, seen[tp])
			}
		}
		states = next
	}
}

// TestSourceRedistributeRefusesLegacy checks that a state assigned by the
// version-1 rule, which depends on the parallelism, is not rescaled.
func TestSourceRedistributeRefusesLegacy(t *testing.T) {
	st := sourceState{next: map[topicPartition]int64{{"t", 0}: 1}, legacy: map[string]int32{"t": 1}}
	_, err := (&source[[]byte]{}).Redistribute(runtime.TaskInfo{Subtask: 0, Parallelism: 2}, [][]byte{sourceEncodeState(st)})
	if err == nil {
		t.Fatal("a version-1 assignment was rescaled")
	}
}
