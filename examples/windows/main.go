// Command windows is weir's event-time example: page views with timestamps
// that arrive out of order, some delivered twice and a few very late, are
// deduplicated, counted per page in tumbling windows (with allowed lateness,
// late views going to their own output) and grouped per user into sessions.
//
//	go run ./examples/windows
//	cat data/windows/counts/*     # page  window-start  views
//	cat data/windows/sessions/*   # user  session  views
//	cat data/windows/late/*       # window  view  user  page  time: views too late
//
// The views are generated (a pure function of their sequence number), so a
// second run restores the final checkpoint of the first and has nothing left
// to do; rm -rf data/windows starts over.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/weirstream/weir/connectors/file"
	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// View is a page view.
type View struct {
	ID   uint64 // unique per view; a redelivery repeats it
	User string
	Page string
	TS   int64 // event time, ms since the epoch
}

const (
	start    = 1_767_225_600_000 // 2026-01-01T00:00:00Z
	disorder = 2 * time.Second   // how far out of order views arrive
)

func mix(x uint64) uint64 {
	x ^= x >> 31
	x *= 0x9E3779B97F4A7C15
	return x ^ x>>29
}

// viewAt is the n-th view delivered: one view every 50 ms of event time,
// jittered by up to disorder; every 20th delivery repeats the previous view,
// and every 500th is a view from 30 s earlier (too late for its window).
func viewAt(n uint64) View {
	i := n
	if n%20 == 19 {
		i = n - 1
	}
	v := View{
		ID:   i,
		User: fmt.Sprintf("user-%02d", mix(i)%25),
		Page: fmt.Sprintf("/page/%d", mix(i^0xfeed)%8),
		TS:   start + int64(i)*50 - int64(mix(i^0xbeef)%uint64(disorder.Milliseconds())),
	}
	if n%500 == 250 { // NB: not a repeat (n%20 == 19), which dedup would drop
		v.TS -= 30_000
	}
	return v
}

func viewTime(v View) int64 { return v.TS }

func main() {
	p, cfg, code := setup(os.Args[1:], os.Stderr)
	if p == nil {
		os.Exit(code)
	}
	runtime.Main(p, cfg)
}

// setup parses the flags and builds the pipeline; without a pipeline, it
// returns the exit status.
func setup(args []string, stderr io.Writer) (*runtime.Pipeline, runtime.Config, int) {
	fs := flag.NewFlagSet("windows", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("output", "data/windows", "directory for the committed output (counts/, sessions/, late/)")
	views := fs.Uint64("views", 20000, "page views to generate")
	flags := runtime.RegisterFlags(fs, runtime.Config{CheckpointDir: "data/windows/checkpoints"})
	if err := fs.Parse(args); err != nil {
		return nil, runtime.Config{}, 2
	}
	p, err := pipeline(*out, *views)
	if err != nil {
		fmt.Fprintln(stderr, "windows:", err)
		return nil, runtime.Config{}, 2
	}
	fmt.Fprintf(stderr, "windows: the output goes to %s\n", filepath.Join(*out, "{counts,sessions,late}", "*"))
	return p, flags.Config(), 0
}

func pipeline(out string, count uint64) (*runtime.Pipeline, error) {
	sinks := map[string]runtime.SinkFactory[string]{}
	for _, name := range []string{"counts", "sessions", "late"} {
		s, err := file.NewSink(file.LinesTo(filepath.Join(out, name)))
		if err != nil {
			return nil, err
		}
		sinks[name] = s
	}

	newViews, err := generator.NewSource(generator.SourceConfig[View]{Record: viewAt, Count: count, ChunkSize: 100})
	if err != nil {
		return nil, err
	}

	p := runtime.NewPipeline("windows")
	// The views carry their event time from here on: the windows and the
	// dedup below read it.
	views := runtime.From(p, "views", newViews,
		runtime.WithWatermarks(runtime.BoundedOutOfOrderness(viewTime, disorder)))
	// At-least-once delivery repeats views: drop the repeats.
	unique := operators.Dedup(views, "dedup", func(v View) uint64 { return v.ID }, time.Minute, operators.DedupEventTime())

	// Views per page and 10 s window. A view up to 5 s behind the window's
	// end still counts (the window's count is emitted again, updated);
	// later ones go to the late output.
	byPage := operators.Window(operators.KeyBy(unique, func(v View) string { return v.Page }), "page-counts",
		operators.Tumbling(10*time.Second)).AllowedLateness(5 * time.Second)
	counts, late := operators.WindowAggregate(byPage, operators.WindowAggregateFunc[string, View, int64, string]{
		Add: func(n int64, _ View, _ bool) int64 { return n + 1 },
		Result: func(page string, w operators.TimeWindow, n int64) string {
			return fmt.Sprintf("%s\t%s\t%d", page, time.UnixMilli(w.Start).UTC().Format(time.TimeOnly), n)
		},
	}, state.Int64)

	// Sessions per user: a user's views less than 3 s apart.
	sessions, lateForSessions := operators.WindowProcess(
		operators.Window(operators.KeyBy(unique, func(v View) string { return v.User }), "user-sessions", operators.Session(3*time.Second)),
		func(ctx *operators.WindowContext[string], vs []View, out runtime.Collector[string]) error {
			w := ctx.Window()
			out.Collect(fmt.Sprintf("%s\t%s+%v\t%d", ctx.Key(), time.UnixMilli(w.Start).UTC().Format(time.TimeOnly), time.Duration(w.End-w.Start)*time.Millisecond, len(vs)))
			return nil
		}, state.JSON[View]())

	runtime.To(counts, "counts", sinks["counts"])
	runtime.To(sessions, "sessions", sinks["sessions"])
	lateLine := func(window string) func(View) string {
		return func(v View) string {
			return fmt.Sprintf("%s\t%d\t%s\t%s\t%s", window, v.ID, v.User, v.Page, time.UnixMilli(v.TS).UTC().Format(time.TimeOnly))
		}
	}
	runtime.To(runtime.Merge(operators.Map(late, lateLine("page-counts")), "late-views", operators.Map(lateForSessions, lateLine("user-sessions"))),
		"late", sinks["late"])
	return p, p.Err()
}
