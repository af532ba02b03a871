// Command windows measures the event-time window operators: generator →
// KeyBy → a keyed window count → discard sink, with Pebble-backed state,
// event-time timers and checkpoints, for a tumbling window (10 s) and a
// sliding window (10 s every 2 s), against a hand-written Go implementation
// of the same windows measured in the same run.
//
// Event time advances with the sequence number over --span, so windows open
// and fire all through the run, and every key has a window open at any time.
package main

import (
	"container/heap"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	goruntime "runtime"
	"time"

	"github.com/weirstream/weir/benchmarks"
	"github.com/weirstream/weir/connectors/discard"
	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
)

type event struct {
	key uint64
	ts  int64 // ms
}

type result struct {
	key   uint64
	start int64
	n     int64
}

// config is one benchmark run's input.
type config struct {
	records, keys uint64
	span          int64 // ms of event time the records cover
	size, slide   int64 // ms
}

const base = 1_700_000_000_000

// eventAt spreads sequence numbers over keys in a scrambled order, so that
// consecutive records hit different keys as real traffic does; event time
// grows with the sequence number.
func (c config) eventAt(seq uint64) event {
	return event{key: (seq * 0x9E3779B97F4A7C15 >> 20) % c.keys, ts: base + int64(seq*uint64(c.span)/c.records)}
}

func main() {
	records := flag.Uint64("records", 10_000_000, "records per run (enough for ten tumbling windows and several checkpoints)")
	keys := flag.Uint64("keys", 1_000_000, "distinct keys")
	span := flag.Duration("span", 100*time.Second, "event time covered by the records (default: one record per key and 10 s window)")
	cores := flag.Int("cores", 1, "GOMAXPROCS")
	interval := flag.Duration("checkpoint-interval", time.Second, "checkpoint interval")
	only := flag.String("only", "", "run only this window kind (tumbling or sliding)")
	cacheBytes := flag.Int64("state-cache-bytes", 0, "runtime.Config.StateCacheBytes (0: the default)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (engine and loops) to this file")
	flag.Parse()
	goruntime.GOMAXPROCS(*cores)

	stopProfile, err := benchmarks.StartCPUProfile(*cpuProfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "windows:", err)
		os.Exit(1)
	}
	defer stopProfile()
	fmt.Printf("machine: %s/%s, %d CPUs, GOMAXPROCS=%d; %d records over %d keys, %v of event time, checkpoints every %v\n",
		goruntime.GOOS, goruntime.GOARCH, goruntime.NumCPU(), *cores, *records, *keys, *span, *interval)
	fmt.Printf("%-22s %14s %14s %8s %12s %12s\n", "window", "weir rec/s", "Go loop rec/s", "ratio", "windows", "allocs/rec")
	for _, kind := range []struct {
		name        string
		size, slide time.Duration
	}{{"tumbling", 10 * time.Second, 10 * time.Second}, {"sliding", 10 * time.Second, 2 * time.Second}} {
		if *only != "" && *only != kind.name {
			continue
		}
		c := config{records: *records, keys: *keys, span: span.Milliseconds(), size: kind.size.Milliseconds(), slide: kind.slide.Milliseconds()}
		// The machine is shared: measure the loop before and after the
		// engine and keep the faster, which makes the ratio conservative.
		loopRate, want := handLoop(c)
		res, err := engine(c, *interval, *cacheBytes)
		if err != nil {
			fmt.Fprintln(os.Stderr, "windows:", err)
			os.Exit(1)
		}
		r2, _ := handLoop(c)
		loopRate = max(loopRate, r2)
		if res.sums != want {
			fmt.Fprintf(os.Stderr, "windows: %s: engine emitted %d windows counting %d, the loop %d counting %d\n",
				kind.name, res.sums.windows, res.sums.counted, want.windows, want.counted)
			os.Exit(1)
		}
		fmt.Printf("%-22s %14.0f %14.0f %8.2f %12d %12.4f\n", fmt.Sprintf("%s %v/%v", kind.name, kind.size, kind.slide), res.rate, loopRate, res.rate/loopRate, want.windows, res.allocs)
	}
	fmt.Println("target: weir/loop >= 0.50")
}

// sums characterizes the output: windows emitted and records counted in
// them (each record counts once per window it belongs to).
type sums struct{ windows, counted int64 }

var sink result

// handLoop is the speed limit: the same windows without a framework. Open
// windows are counted in one map per window start; when the watermark (the
// largest timestamp so far, minus one: the input is in order) passes a
// window's end, the windows of that start are emitted and dropped.
func handLoop(c config) (float64, sums) {
	var s sums
	open := map[int64]map[uint64]int64{}
	var ends endHeap
	maxTS := int64(-1 << 63)
	fire := func(wm int64) {
		for len(ends) > 0 && ends[0]-1 <= wm {
			end := heap.Pop(&ends).(int64)
			start := end - c.size
			for k, n := range open[start] {
				sink = result{k, start, n}
				s.windows, s.counted = s.windows+1, s.counted+n
			}
			delete(open, start)
		}
	}
	t0 := time.Now()
	for seq := range c.records {
		e := c.eventAt(seq)
		for start := e.ts - e.ts%c.slide; start > e.ts-c.size; start -= c.slide {
			w := open[start]
			if w == nil {
				w = make(map[uint64]int64)
				open[start] = w
				heap.Push(&ends, start+c.size)
			}
			w[e.key]++
		}
		if e.ts > maxTS {
			maxTS = e.ts
			fire(maxTS - 1)
		}
	}
	fire(1<<63 - 1)
	return float64(c.records) / time.Since(t0).Seconds(), s
}

type endHeap []int64

func (h endHeap) Len() int           { return len(h) }
func (h endHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h endHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *endHeap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *endHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type engineResult struct {
	rate   float64
	allocs float64 // heap allocations per record
	sums   sums
}

func engine(c config, interval time.Duration, cacheBytes int64) (engineResult, error) {
	var res engineResult
	dir, err := os.MkdirTemp("", "weir-windows-*")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	eventSource, err := generator.NewSource(generator.SourceConfig[event]{Record: c.eventAt, Count: c.records})
	if err != nil {
		return res, err
	}
	var dropped discard.Counter
	discardSink, err := discard.NewSink(discard.SinkConfig[result]{Counter: &dropped})
	if err != nil {
		return res, err
	}
	p := runtime.NewPipeline("windows")
	events := runtime.From(p, "generator", eventSource,
		runtime.WithWatermarks(runtime.Monotonic(func(e event) int64 { return e.ts })))
	windows := operators.Sliding(time.Duration(c.size)*time.Millisecond, time.Duration(c.slide)*time.Millisecond)
	counts, _ := operators.WindowAggregate(
		operators.Window(operators.KeyBy(events, func(e event) uint64 { return e.key }), "count", windows),
		operators.WindowAggregateFunc[uint64, event, int64, result]{
			Add: func(n int64, _ event, _ bool) int64 { return n + 1 },
			Result: func(k uint64, w operators.TimeWindow, n int64) result {
				res.sums.windows, res.sums.counted = res.sums.windows+1, res.sums.counted+n
				return result{k, w.Start, n}
			},
		}, nil)
	runtime.To(counts, "discard", discardSink)
	cfg := runtime.Config{
		CheckpointDir:      dir,
		CheckpointInterval: interval,
		StateCacheBytes:    cacheBytes,
		Logger:             slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	start := time.Now()
	if err := runtime.Run(context.Background(), p, cfg); err != nil {
		return res, err
	}
	res.rate = float64(c.records) / time.Since(start).Seconds()
	goruntime.ReadMemStats(&after)
	res.allocs = float64(after.Mallocs-before.Mallocs) / float64(c.records)
	return res, nil
}
