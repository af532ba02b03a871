package operators

import (
	"testing"

	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// TestSessionExtendsInPlace checks that a record that extends a session
// allocates nothing: the key's sessions change in place (measured on
// Nexmark q11, a copy of them per record was a fifth of the operator).
func TestSessionExtendsInPlace(t *testing.T) {
	h, env := newHarness(t, func(r rec) string { return r.Key }, recTime)
	h.op = openWindow(t, h, env, windowConfig{kind: sessionWindows, gap: 1 << 40}, contents[string, rec, int64, string]{
		add:   func(acc int64, r rec, _ bool) int64 { return acc + r.V },
		merge: func(a, b int64) int64 { return a + b },
		emit:  func(*WindowContext[string], int64, runtime.Collector[string]) error { return nil },
		codec: state.Int64,
	})
	r := rec{Key: "k", TS: 1, V: 1}
	h.process(r) // opens the session
	allocs := testing.AllocsPerRun(1000, func() {
		r.TS++
		h.process(r)
	})
	if allocs > 0.01 {
		t.Fatalf("%.2f allocations per record that extends a session, want 0", allocs)
	}
	if n := h.stateSize("k"); n != 1 {
		t.Fatalf("%d sessions, want 1", n)
	}
}
