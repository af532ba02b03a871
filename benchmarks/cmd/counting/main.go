// Command counting measures the core runtime: generator → Map → KeyBy →
// running count per key in Pebble-backed keyed state → discard sink, with
// checkpoints, against a hand-written loop doing the same counting with a Go
// map and no framework. With --s3 it runs the job with checkpoints in a
// local directory and on a development S3 server instead, side by side, and
// times the restore of each run's last checkpoint into an empty local
// directory (s3.go). With --restore it fills the keyed state with every key
// and times restores of it from a local directory and from the S3 server, at
// the same and at other parallelisms (restore.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	goruntime "runtime"
	"slices"
	"time"

	"github.com/weirstream/weir/benchmarks"
	"github.com/weirstream/weir/connectors/discard"
	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
)

type count struct {
	key uint64
	n   int64
}

// keyOf spreads sequence numbers over keys in a scrambled order, so that
// consecutive records hit different keys as real traffic does.
func keyOf(seq, keys uint64) uint64 { return (seq * 0x9E3779B97F4A7C15 >> 20) % keys }

func main() {
	records := flag.Uint64("records", 60_000_000, "records per run (long enough for Pebble compactions to reach a steady state)")
	keys := flag.Uint64("keys", 1_000_000, "distinct keys")
	cores := flag.Int("cores", 1, "GOMAXPROCS")
	interval := flag.Duration("checkpoint-interval", time.Second, "checkpoint interval")
	dir := flag.String("dir", "", "checkpoint directory (default: a temporary directory)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the engine run to this file")
	s3 := flag.Bool("s3", false, "compare checkpoints in a local directory with checkpoints on a development S3 server (throughput, checkpoint duration and bytes, restore time) instead of the engine with a hand-written loop")
	restore := flag.Bool("restore", false, "time restores of a checkpoint holding every key, from a local directory and from a development S3 server, at the same and at other parallelisms, instead of the engine with a hand-written loop")
	parallelism := flag.Int("parallelism", 2, "with --restore: parallelism of the job that fills the state, and of the restores at the same parallelism")
	rescaleTo := flag.String("rescale-to", "3,1", "with --restore: the other parallelisms to restore at, comma-separated")
	reps := flag.Int("reps", 5, "with --restore: restores per case (the median is printed)")
	flag.Parse()
	goruntime.GOMAXPROCS(*cores)
	var err error
	switch {
	case *s3:
		err = compareS3(*records, *keys, *interval)
	case *restore:
		err = compareRestores(restoreBench{keys: *keys, parallelism: *parallelism, rescaleTo: *rescaleTo, reps: *reps, cpuProfile: *cpuProfile})
	}
	if *s3 || *restore {
		if err != nil {
			fmt.Fprintln(os.Stderr, "counting:", err)
			os.Exit(1)
		}
		return
	}

	// The machine is shared: measure the loop before and after the engine
	// and keep the faster, which makes the ratio conservative.
	loopRate := handLoop(*records, *keys)
	stopProfile, err := benchmarks.StartCPUProfile(*cpuProfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "counting:", err)
		os.Exit(1)
	}
	res, err := engine(*records, *keys, *interval, *dir)
	stopProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "counting:", err)
		os.Exit(1)
	}
	loopRate = max(loopRate, handLoop(*records, *keys))
	fmt.Printf("machine: %s/%s, %d CPUs, GOMAXPROCS=%d; %d records over %d keys\n",
		goruntime.GOOS, goruntime.GOARCH, goruntime.NumCPU(), *cores, *records, *keys)
	fmt.Printf("%-34s %14s\n", "", "records/s")
	fmt.Printf("%-34s %14.0f\n", "hand-written loop (Go map)", loopRate)
	fmt.Printf("%-34s %14.0f\n", "weir (Pebble state, checkpoints)", res.rate)
	fmt.Printf("engine / loop: %.2f   (target >= 0.50)\n", res.rate/loopRate)
	fmt.Printf("engine records/s: %.2fM   (target >= 3M on one core)\n", res.rate/1e6)
	fmt.Printf("checkpoints: %d, sync pause p50 %v p99 %v max %v (target p99 < 10ms)\n",
		len(res.pauses), pct(res.pauses, 50), pct(res.pauses, 99), pct(res.pauses, 100))
	fmt.Printf("checkpoint duration p50 %v p99 %v; bytes written per checkpoint p50 %d\n",
		pct(res.durations, 50), pct(res.durations, 99), pctInt(res.bytes, 50))
	fmt.Printf("heap allocations per record: %.4f\n", res.allocsPerRecord)
}

var sinkHole int64

// handLoop is the speed limit: the same work without a framework.
func handLoop(records, keys uint64) float64 {
	counts := make(map[uint64]int64)
	start := time.Now()
	var sum int64
	for seq := uint64(0); seq < records; seq++ {
		k := keyOf(seq, keys)
		counts[k]++
		sum += counts[k]
	}
	sinkHole = sum
	return float64(records) / time.Since(start).Seconds()
}

type result struct {
	rate            float64
	allocsPerRecord float64
	pauses          []time.Duration
	durations       []time.Duration
	bytes           []int64
}

func engine(records, keys uint64, interval time.Duration, dir string) (result, error) {
	var res result
	if dir == "" {
		d, err := os.MkdirTemp("", "weir-counting-*")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	var dropped discard.Counter
	p, err := pipeline(records, keys, &dropped, nil)
	if err != nil {
		return res, err
	}
	cfg := runtime.Config{
		CheckpointDir:      dir,
		CheckpointInterval: interval,
		CheckpointTimeout:  max(2*time.Minute, interval),
		Logger:             slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Events: runtime.EventListener{CheckpointCompleted: func(info runtime.CheckpointInfo) {
			res.pauses = append(res.pauses, info.MaxSyncPause)
			res.durations = append(res.durations, info.Duration)
			res.bytes = append(res.bytes, info.BytesWritten)
		}},
	}
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	start := time.Now()
	if err := runtime.Run(context.Background(), p, cfg); err != nil {
		return res, err
	}
	res.rate = float64(records) / time.Since(start).Seconds()
	goruntime.ReadMemStats(&after)
	res.allocsPerRecord = float64(after.Mallocs-before.Mallocs) / float64(records)
	if got := uint64(dropped.Count()); got != records {
		return res, fmt.Errorf("sink saw %d records, want %d", got, records)
	}
	return res, nil
}

// pipeline builds the counting job: records sequence numbers, counted over
// keys (0: unbounded), into a discard sink that counts them in dropped. If onCount is not
// nil, it sees every running count as it is emitted (the throughput runs
// pass nil, so that they pay nothing for it).
func pipeline(records, keys uint64, dropped *discard.Counter, onCount func(count)) (*runtime.Pipeline, error) {
	seqSource, err := generator.NewSource(generator.SourceConfig[uint64]{Record: func(seq uint64) uint64 { return seq }, Count: records})
	if err != nil {
		return nil, err
	}
	discardSink, err := discard.NewSink(discard.SinkConfig[count]{Counter: dropped})
	if err != nil {
		return nil, err
	}
	p := runtime.NewPipeline("counting")
	seqs := runtime.From(p, "generator", seqSource)
	ks := operators.Map(seqs, func(seq uint64) uint64 { return keyOf(seq, keys) })
	result := func(k uint64, acc int64) count { return count{k, acc} }
	if onCount != nil {
		result = func(k uint64, acc int64) count { onCount(count{k, acc}); return count{k, acc} }
	}
	counts := operators.Aggregate(operators.KeyBy(ks, func(k uint64) uint64 { return k }), "count",
		operators.AggregateFunc[uint64, uint64, int64, count]{
			Add:    func(acc int64, _ uint64, _ bool) int64 { return acc + 1 },
			Result: result,
		}, nil)
	runtime.To(counts, "discard", discardSink)
	return p, nil
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, (len(s)*p+99)/100-1+boolToInt(p == 0))]
}

func pctInt(xs []int64, p int) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
