package nexmark_test

import (
	"fmt"

	"github.com/weirstream/weir/benchmarks/nexmark"
)

// A generator is a replayable source: the event number is the offset, and
// setting a checkpointed offset replays the same events.
func ExampleGenerator_SetOffset() {
	g := nexmark.MustNewGenerator(nexmark.Config{Seed: 1, NumEvents: 6})
	var e nexmark.Event
	for g.Next(&e) {
		fmt.Println(g.Offset()-1, e.Kind, e.Time())
	}
	g.SetOffset(4) // restore from a checkpoint taken after event 3
	g.Next(&e)
	fmt.Println("replayed:", e.Bid == g.EventAt(4).Bid)
	// Output:
	// 0 person 0
	// 1 auction 0
	// 2 auction 0
	// 3 auction 0
	// 4 bid 0
	// 5 bid 0
	// replayed: true
}
