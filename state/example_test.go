package state_test

import (
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/weirstream/weir/internal/statebackend"
	"github.com/weirstream/weir/state"
)

// A List buffers a key's records; a Value with a TTL forgets a key a while
// after its last write. (Operators get their Scope from their context, and
// the runtime sets the key of each record; here exampleScope stands in.)
func ExampleNewList() {
	scope, setKey, done := exampleScope()
	defer done()
	orders, err := state.NewList(scope, "orders", state.Int64)
	if err != nil {
		panic(err)
	}
	lastSeen, err := state.NewValue(scope, "last-seen", state.Int64, state.WithTTL(time.Hour, state.OnCreateAndWrite))
	if err != nil {
		panic(err)
	}

	setKey("alice")
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

// exampleScope returns a scope over string keys in a temporary backend,
// the function that sets its current key, and the function that removes
// the backend.
func exampleScope() (*state.Scope[string], func(string), func()) {
	dir, err := os.MkdirTemp("", "state-example")
	if err != nil {
		panic(err)
	}
	b, err := statebackend.Open(statebackend.Config{Dir: dir})
	if err != nil {
		panic(err)
	}
	scope, err := statebackend.NewScope(b, statebackend.String)
	if err != nil {
		panic(err)
	}
	done := func() {
		b.Close()
		os.RemoveAll(dir)
	}
	return (*state.Scope[string])(scope), scope.SetKey, done
}
