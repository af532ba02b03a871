package state_test

import (
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/weirstream/weir/state"
)

// A List buffers a key's records; a Value with a TTL forgets a key a while
// after its last write. (Operators get their Scope from their context; the
// Backend is the runtime's.)
func ExampleNewList() {
	dir, _ := os.MkdirTemp("", "state-example")
	defer os.RemoveAll(dir)
	b, err := state.Open(state.Config{Dir: dir})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	scope, _ := state.NewScope(b, state.String)
	orders, err := state.NewList(scope, "orders", state.Int64)
	if err != nil {
		panic(err)
	}
	lastSeen, err := state.NewValue(scope, "last-seen", state.Int64, state.WithTTL(time.Hour, state.OnCreateAndWrite))
	if err != nil {
		panic(err)
	}

	scope.SetKey("alice")
	orders.Add(120)
	orders.AddAll([]int64{80, 45})
	lastSeen.Put(3)
	fmt.Println(slices.Collect(orders.All()), orders.Len())
	orders.Clear()
	seen, ok := lastSeen.Get()
	fmt.Println(orders.Len(), seen, ok)
	// Output:
	// [120 80 45] 3
	// 0 3 true
}
