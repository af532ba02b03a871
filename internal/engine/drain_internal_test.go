package engine

import (
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/internal/statebackend"
)

// TestDrainWarmsRestoredState checks that a task loads its restored keyed
// state into the cache between records (openBackend sets
// statebackend.Config.WarmLater, so that a restore does not wait for it):
// while state is not loaded the task has work to drain, and drain loads
// it a budget at a time.
func TestDrainWarmsRestoredState(t *testing.T) {
	const keys, budget = 1000, 64
	dir := t.TempDir()
	b, err := statebackend.Open(statebackend.Config{Dir: filepath.Join(dir, "live")})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := statebackend.NewScope[uint64](b, nil)
	v, err := statebackend.NewValue(s, "count", statebackend.Int64)
	if err != nil {
		t.Fatal(err)
	}
	for k := range uint64(keys) {
		s.SetKey(k)
		v.Put(int64(k))
	}
	chk := filepath.Join(dir, "chk-1")
	if err := b.Freeze(1, chk); err != nil {
		t.Fatal(err)
	}
	b.Drain(0)
	if res := <-b.Results(); res.Err != nil {
		t.Fatal(res.Err)
	}
	b.Close()

	r, err := statebackend.Open(statebackend.Config{Dir: chk, WarmLater: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rs, _ := statebackend.NewScope[uint64](r, nil)
	if _, err := statebackend.NewValue(rs, "count", statebackend.Int64); err != nil {
		t.Fatal(err)
	}
	tk := &task{members: []*member{{}, {backend: r}}}
	for calls := 0; tk.draining(); calls++ {
		if calls > keys/budget+1 {
			t.Fatalf("%d drain(%d) calls left %d of %d restored entries cached", calls, budget, r.Entries(), keys)
		}
		tk.drain(budget)
	}
	if r.Warming() || r.Entries() != keys {
		t.Fatalf("nothing left to drain with %d of %d restored entries cached (warming %v)", r.Entries(), keys, r.Warming())
	}
}
