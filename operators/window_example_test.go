package operators_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// Counting clicks per user in tumbling windows of 10 s of event time, with
// out-of-order timestamps; the click at 2 s arriving after the watermark
// passed 12 s is too late for its window and comes out of the late stream.
func ExampleWindowAggregate() {
	type click struct {
		User string
		TS   int64 // ms
	}
	clicks := []click{{"ann", 1000}, {"bob", 4000}, {"ann", 9000}, {"ann", 12000}, {"bob", 25000}, {"ann", 2000}}
	dir, _ := os.MkdirTemp("", "weir-example-*")
	defer os.RemoveAll(dir)

	newClicks, err := generator.NewSource(generator.SourceConfig[click]{
		Record: func(i uint64) click { return clicks[i] }, Count: uint64(len(clicks)), ChunkSize: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	p := runtime.NewPipeline("clicks")
	src := runtime.From(p, "clicks", newClicks,
		runtime.WithWatermarks(runtime.BoundedOutOfOrderness(func(c click) int64 { return c.TS }, time.Second)))
	counts, late := operators.WindowAggregate(
		operators.Window(operators.KeyBy(src, func(c click) string { return c.User }), "per-user", operators.Tumbling(10*time.Second)),
		operators.WindowAggregateFunc[string, click, int64, string]{
			Add:    func(n int64, _ click, _ bool) int64 { return n + 1 },
			Result: func(user string, w operators.TimeWindow, n int64) string { return fmt.Sprintf("%s %v: %d", user, w, n) },
		}, state.Int64)
	out := newOutput[string]()
	runtime.To(runtime.Merge(counts, "with-late", operators.Map(late, func(c click) string { return fmt.Sprintf("late: %s at %d", c.User, c.TS) })),
		"out", newMemSink(out))
	if err := runtime.Run(context.Background(), p, runtime.Config{CheckpointDir: dir, Logger: quiet}); err != nil {
		fmt.Println(err)
	}
	lines := out.records()
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// ann [0,10000): 2
	// ann [10000,20000): 1
	// bob [0,10000): 1
	// bob [20000,30000): 1
	// late: ann at 2000
}
