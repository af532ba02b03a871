// Command eventtimejob is the job binary of the event-time crash test
// (internal/e2e/eventtime_crash_test.go): generated clicks and views with
// out-of-order timestamps, redelivered clicks removed by event-time
// deduplication, a tumbling-window count per user, and an interval join of
// clicks with views, all written through the exactly-once file sink.
//
// Output lines:
//
//	W <user> <window start> <clicks> <sum of click seqs>   per user and 1 s window
//	J <user> <click seq> <view seq>                          view within 30 ms after a click
//	L <user> <ts> <seq>                                      a late click (none expected)
//
// The input is a pure function of the flags, and the watermark strategy's
// bound covers all disorder, so no record is ever late: the output is the
// same (as a multiset) however often the job is killed and restarted.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/weirstream/weir/connectors/file"
	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// Event is a click or a view.
type Event struct {
	User int64
	TS   int64 // ms
	Seq  uint64
}

const (
	users    = 40
	disorder = 200 // ms; the watermark strategy allows exactly this
	base     = 1_700_000_000_000
)

func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	return x ^ x>>33
}

// ClickAt is click i: one per ms, jittered by up to disorder. Every 10th
// position redelivers the click three positions earlier (same seq and time).
func ClickAt(i uint64) Event {
	if i%10 == 9 {
		i -= 3
	}
	return Event{User: int64(mix(i) % users), TS: base + int64(i) - int64(mix(i^0xabc)%disorder), Seq: i}
}

// ViewAt is view i.
func ViewAt(i uint64) Event {
	return Event{User: int64(mix(i^0x5eed) % users), TS: base + int64(i) - int64(mix(i^0xdef)%disorder), Seq: i}
}

func eventTime(e Event) int64 { return e.TS }

func main() {
	output := flag.String("output", "", "output directory (required)")
	count := flag.Uint64("events", 40000, "clicks and views to generate, each")
	rate := flag.Float64("rate", 12000, "records per second per input (0: unlimited)")
	flags := runtime.RegisterFlags(flag.CommandLine, runtime.Config{})
	flag.Parse()
	if *output == "" {
		fmt.Fprintln(os.Stderr, "eventtimejob: --output is required")
		os.Exit(2)
	}
	sink, err := file.NewSink(file.LinesTo(*output))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	strategy := runtime.BoundedOutOfOrderness(eventTime, disorder*time.Millisecond)
	clickSource, err := generator.NewSource(generator.SourceConfig[Event]{Record: ClickAt, Count: *count, RatePerSecond: *rate, ChunkSize: 64})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	viewSource, err := generator.NewSource(generator.SourceConfig[Event]{Record: ViewAt, Count: *count, RatePerSecond: *rate, ChunkSize: 64})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}

	p := runtime.NewPipeline("eventtime")
	rawClicks := runtime.From(p, "clicks", clickSource, runtime.WithWatermarks(strategy))
	views := runtime.From(p, "views", viewSource, runtime.WithWatermarks(strategy))
	clicks := operators.Dedup(rawClicks, "dedup", func(e Event) uint64 { return e.Seq }, time.Second, operators.DedupEventTime())

	type agg struct{ N, Sum uint64 }
	windows, late := operators.WindowAggregate(
		operators.Window(operators.KeyBy(clicks, func(e Event) int64 { return e.User }), "clicks-per-second", operators.Tumbling(time.Second)),
		operators.WindowAggregateFunc[int64, Event, agg, string]{
			Add: func(a agg, e Event, _ bool) agg { return agg{a.N + 1, a.Sum + e.Seq} },
			Result: func(user int64, w operators.TimeWindow, a agg) string {
				return fmt.Sprintf("W %d %d %d %d", user, w.Start, a.N, a.Sum)
			},
		}, state.JSON[agg]())
	joined := operators.IntervalJoin(clicks, views, "click-views",
		operators.JoinOn[int64, Event, Event]{
			LeftKey: func(e Event) int64 { return e.User }, RightKey: func(e Event) int64 { return e.User },
			LeftCodec: state.JSON[Event](), RightCodec: state.JSON[Event](),
		}, 0, 30*time.Millisecond,
		func(user int64, c, v Event) string { return fmt.Sprintf("J %d %d %d", user, c.Seq, v.Seq) })
	lateLines := operators.Map(late, func(e Event) string { return fmt.Sprintf("L %d %d %d", e.User, e.TS, e.Seq) })
	runtime.To(runtime.Merge(windows, "results", joined, lateLines), "output", sink)
	runtime.Main(p, flags.Config())
}
