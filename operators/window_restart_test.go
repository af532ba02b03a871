package operators_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
)

// TestWindowRestartKeepsFiredWindows stops (or crashes) a job with tumbling
// windows and allowed lateness in the middle of its input, when windows
// that already fired are kept for their lateness, and restarts it from its
// checkpoint: a restored window that fired before the checkpoint must not
// fire again, and the others must fire once. Parallelism 1 puts the window
// operator in its source's task, whose watermark a restore does not set;
// parallelism 2 gives it a task of its own.
func TestWindowRestartKeepsFiredWindows(t *testing.T) {
	const n, keys = 3000, 7
	const step, size = 10, 100 // ms of event time per record, window size
	var want []string
	counts := map[string]int{}
	for v := uint64(0); v < n; v++ {
		start := int64(v) * step / size * size
		counts[fmt.Sprintf("k%d@[%d,%d)", v%keys, start, start+size)]++
	}
	for w, c := range counts {
		want = append(want, fmt.Sprintf("%s=%d", w, c))
	}
	slices.Sort(want)
	for _, par := range []int{1, 2} {
		for _, mode := range []string{"stop", "crash"} {
			t.Run(fmt.Sprintf("parallelism=%d/%s", par, mode), func(t *testing.T) {
				dir := t.TempDir()
				out := newOutput[string]()
				rj := restartJob{name: "windows-restart", par: par, n: n, build: func(p *runtime.Pipeline, src runtime.SourceFactory[uint64], out *output[string]) {
					s := runtime.From(p, "src", src, runtime.WithWatermarks(runtime.Monotonic(func(v uint64) int64 { return int64(v) * step })))
					keyed := operators.KeyBy(s, func(v uint64) string { return fmt.Sprintf("k%d", v%keys) })
					win := operators.Window(keyed, "count", operators.Tumbling(size*time.Millisecond)).
						AllowedLateness(time.Second)
					res, _ := operators.WindowAggregate(win, operators.WindowAggregateFunc[string, uint64, int64, string]{
						Add: func(acc int64, _ uint64, _ bool) int64 { return acc + 1 },
						Result: func(k string, w operators.TimeWindow, acc int64) string {
							return fmt.Sprintf("%s@%v=%d", k, w, acc)
						},
					}, nil)
					runtime.To(res, "sink", newMemSink(out))
				}}
				if out1 := rj.interrupt(t, dir, out, n/2, mode); mode == "stop" && (out1 == 0 || out1 >= len(want)) {
					t.Fatalf("first run committed %d of %d windows: not interrupted in the middle", out1, len(want))
				}
				rj.resume(t, dir, out)
				check(t, "windows", out.records(), want)
			})
		}
	}
}
