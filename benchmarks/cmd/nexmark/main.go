// Command nexmark runs the Nexmark queries q0–q22 as weir jobs
// with exactly-once checkpoints (Pebble state, every second by default) over
// the deterministic Nexmark generator, runs the single-threaded reference
// implementation of each query over the same events in the same process,
// checks that the engine's output equals the reference's, and reports
// throughput, latency and checkpoint costs next to the reference and to
// Flink 1.13's and Feldera's published per-core numbers.
//
//	go run ./benchmarks/cmd/nexmark                       # all queries (--queries all), 2M events each, one core
//	go run ./benchmarks/cmd/nexmark --full                # 100M events per query
//	go run ./benchmarks/cmd/nexmark --queries q5,q7 --events 10000000 --cpuprofile q5.prof
//
// What is measured, per query:
//
//   - events/s: events the source emitted divided by the wall time of the
//     whole job (start, restore check, processing, the final checkpoint and
//     its commit). Per core divides by --cores, which sets GOMAXPROCS and the
//     parallelism of every operator.
//   - latency: from the source emitting an event to the sink receiving a
//     result traced to it. The source records the emission time of the first
//     event of every block of 128 event numbers (a lock-free ring); a result
//     carries the number of the event it came from or, if the watermark fired
//     it, of the newest event the firing operator had seen; the sink samples
//     once per block. The sample is the wall time since the block began, so
//     it can be up to one block's emission time (tens of µs) too long. It is
//     the time to reach the sink, not to be committed (commits follow the
//     checkpoints).
//   - checkpoints: the number completed (the final one included) and the
//     99th percentile of their duration, from trigger to durable manifest.
//   - reference events/s: the QnReference function over the same events,
//     generated on the fly as for the engine (generation is included on both
//     sides, and so is what each does with its results: the reference hashes
//     them, and keeps them for an exact comparison, as the engine's sink does
//     as it writes). References of the stateless queries q0–q2 run over
//     segments of 1M events to bound their memory.
//   - CPU seconds: the process's user+system CPU time during each run, and
//     ratio_to_reference_cpu = reference CPU / engine CPU, which is steadier
//     than the wall-time ratio on a shared machine (the reference's CPU time
//     includes hashing its results, as its wall time does; the engine's
//     includes all its goroutines: checkpoints, Pebble compactions, the
//     sink).
//   - page faults: the process's page faults (minor and major) during each
//     side's timed run: memory the side had to take from the operating
//     system (with --warmup, mostly memory Pebble allocates outside the Go
//     heap).
//   - output_matches_reference: the engine's committed results equal the
//     reference's as a multiset: line for line up to --exact-limit events,
//     above that by count and a 64-bit multiset hash (sum of result hashes).
//
// Both sides are measured the same way. Before each timed run the heap
// is settled (garbage collected, and every free page returned to the
// operating system) and, with --warmup (the default), the same side runs
// once untimed, so that the timed run finds the free heap its own run
// left, as a long-running job does, holding none of the other side's
// results. Without the settling a side's speed depended on what ran
// before it: one that inherits a heap of free pages skips the page faults
// of one that does not, which for the reference loops of q18-q20, whose
// maps grow to hundreds of MB, was as much CPU time as the loop itself
// (q18: 1.25 s warm, 2.0 s cold). Without the warm-up both sides pay for
// faulting their memory in, as a fresh process does, which at 2M events is
// half the CPU time of the fastest queries (q0's engine: 0.57 s warm,
// 1.04 s cold) and measures start-up rather than throughput. --repeat N
// measures each side N times, alternately, and reports the median CPU time of each (events/s and the
// other figures are those of the median run).
//
// Results go to --out as results.json, results.csv and results.svg. Any
// output mismatch makes the command exit 1 after writing them.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/benchmarks"
	"github.com/weirstream/weir/benchmarks/nexmark"
	"github.com/weirstream/weir/runtime"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// options are the command-line settings.
type options struct {
	queries    []nexmark.Query
	events     int64
	cores      int
	out        string
	interval   time.Duration
	dir        string
	rate       float64
	seed       uint64
	oooGroup   int64
	exactLimit int64
	cpuProfile string
	progress   bool
	watermarks bool
	logLevel   slog.Level
	repeat     int
	warmup     bool
}

func parse(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("nexmark", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	queries := fs.String("queries", "all", "comma-separated queries to run, or all (q0-q22)")
	fs.Int64Var(&o.events, "events", 2_000_000, "events per query")
	full := fs.Bool("full", false, "run 100M events per query (overrides --events)")
	fs.IntVar(&o.cores, "cores", 1, "GOMAXPROCS, also the parallelism of every operator")
	fs.StringVar(&o.out, "out", "results/nexmark", "directory for results.json, results.csv and results.svg")
	fs.DurationVar(&o.interval, "checkpoint-interval", time.Second, "checkpoint interval")
	fs.StringVar(&o.dir, "checkpoint-dir", "", "directory under which each query gets a fresh checkpoint directory (default: a temporary directory, removed afterwards)")
	fs.Float64Var(&o.rate, "rate", 0, "source rate limit in events/s over all subtasks; 0 means as fast as possible")
	fs.Uint64Var(&o.seed, "seed", 1, "generator seed")
	fs.Int64Var(&o.oooGroup, "out-of-order-group", 1, "generator out-of-order group size; above 1 the watermark is bounded by the generator's out-of-orderness")
	fs.Int64Var(&o.exactLimit, "exact-limit", 2_000_000, "compare outputs line by line up to this many events, by count and multiset hash above")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of each engine run to this file (one file per query, named FILE-qN.EXT, when several run)")
	fs.BoolVar(&o.progress, "progress", true, "show a progress line on stderr")
	fs.BoolVar(&o.watermarks, "watermarks", false, "give the source event time and watermarks also for q0-q3, which do not use them")
	fs.IntVar(&o.repeat, "repeat", 1, "measure each query's reference loop and engine job this many times, alternately, and report the median CPU time of each")
	fs.BoolVar(&o.warmup, "warmup", true, "before each timed run of a side, run that side once untimed, so that it is measured on the heap its own run left, as a long-running job is, rather than on memory it must fault in first")
	o.logLevel = slog.LevelWarn
	fs.TextVar(&o.logLevel, "log-level", slog.LevelWarn, "log level of the jobs: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *full {
		o.events = 100_000_000
	}
	if o.events <= 0 {
		return nil, fmt.Errorf("--events %d: must be positive", o.events)
	}
	if o.repeat < 1 {
		return nil, fmt.Errorf("--repeat %d: must be at least 1", o.repeat)
	}
	if o.cores < 1 {
		return nil, fmt.Errorf("--cores %d: must be at least 1", o.cores)
	}
	if strings.TrimSpace(*queries) == "all" {
		o.queries = nexmark.Queries
	} else {
		for _, name := range strings.Split(*queries, ",") {
			name = strings.TrimSpace(name)
			q := nexmark.QueryByName(name)
			if q == nil {
				return nil, fmt.Errorf("--queries: unknown query %q (have q0 to q22, or all)", name)
			}
			o.queries = append(o.queries, q)
		}
	}
	return &o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "nexmark:", err)
		}
		return 2
	}
	prev := goruntime.GOMAXPROCS(o.cores)
	defer goruntime.GOMAXPROCS(prev)

	dir := o.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "weir-nexmark-*")
		if err != nil {
			fmt.Fprintln(stderr, "nexmark:", err)
			return 1
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(stderr, "nexmark:", err)
		return 1
	}
	machine := machineInfo(o.cores)
	fmt.Fprintf(stdout, "nexmark: %d events per query, %s; checkpoints every %v\n", o.events, machine, o.interval)
	var results []Result
	failed := false
	for _, q := range o.queries {
		r, err := runQuery(q, o, dir, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "\nnexmark: %s: %v\n", q.Name(), err)
			failed = true
			continue
		}
		r.Machine = machine
		results = append(results, r)
		if !r.OutputMatchesReference {
			failed = true
		}
	}
	printTable(stdout, results)
	if len(results) > 0 {
		if err := writeResults(o.out, results); err != nil {
			fmt.Fprintln(stderr, "nexmark:", err)
			return 1
		}
		fmt.Fprintf(stdout, "results: %s\n", strings.Join(resultFiles(o.out), ", "))
	}
	if failed {
		fmt.Fprintln(stderr, "nexmark: FAILED: an output differs from its reference or a query failed")
		return 1
	}
	return 0
}

func runQuery(q nexmark.Query, o *options, dir string, stderr io.Writer) (Result, error) {
	r := Result{Query: q.Name(), Events: o.events, Cores: o.cores, Watermarks: o.watermarks || q.UsesEventTime()}
	g, err := nexmark.NewGenerator(nexmark.Config{Seed: o.seed, NumEvents: o.events, OutOfOrderGroupSize: o.oooGroup})
	if err != nil {
		return r, err
	}
	exact := o.events <= o.exactLimit
	r.Comparison = "multiset-hash"
	if exact {
		r.Comparison = "exact"
	}

	// Each side is measured o.repeat times, alternately, each time from a
	// heap prepared the same way (see prepare) that holds none of the
	// other side's results: each side holds only its own while it runs,
	// kept for an exact comparison as the engine's results sink keeps
	// them. The reference's are dropped before the engine runs, and for an
	// exact comparison the reference runs again, untimed, after it.
	// (Before, the engine ran while the reference's results were live, and
	// its garbage collector marked them at every cycle.) The median CPU
	// time of each side is reported, with the run that had it.
	var refs []refRun
	var engines []engineRun
	var first *nexmark.Output
	matched := true
	for i := 0; i < o.repeat && matched; i++ {
		if o.progress {
			fmt.Fprintf(stderr, "\r\033[K%s: reference loop over %d events (run %d of %d)…", q.Name(), o.events, i+1, o.repeat)
		}
		prepare(o.warmup, func() error { q.RunReference(g, exact); return nil })
		cpu0, faults0 := cpuTime(), pageFaults()
		want, elapsed := q.RunReference(g, exact)
		refs = append(refs, refRun{cpu: cpuTime() - cpu0, faults: pageFaults() - faults0, elapsed: elapsed})
		if first == nil {
			first = &nexmark.Output{Count: want.Count, Sum: want.Sum}
		} else if !want.Equal(first) {
			return r, fmt.Errorf("the reference's output changed between runs: %s", nexmark.Diff(want, first, 0))
		}
		want = nil

		profile := ""
		if o.cpuProfile != "" && i == 0 {
			profile = profilePath(o.cpuProfile, q.Name(), len(o.queries) > 1)
		}
		if err := prepare(o.warmup, func() error { _, err := runEngine(q, o, g, dir, exact, "", stderr); return err }); err != nil {
			return r, err
		}
		e, err := runEngine(q, o, g, dir, exact, profile, stderr)
		if err != nil {
			return r, err
		}
		want = first
		if exact {
			want, _ = q.RunReference(g, true)
		}
		if !e.res.Output.Equal(want) {
			fmt.Fprintf(stderr, "\r\033[K%s: OUTPUT MISMATCH: %s\n", q.Name(), nexmark.Diff(e.res.Output, want, 5))
			matched = false
		}
		e.res.Output = nil
		engines = append(engines, e)
	}
	r.OutputMatchesReference = matched
	ref := medianBy(refs, func(x refRun) time.Duration { return x.cpu })
	r.ReferenceCPUSeconds = ref.cpu.Seconds()
	r.ReferencePageFaults = ref.faults
	r.ReferenceEventsPerSecond = float64(o.events) / ref.elapsed.Seconds()
	e := medianBy(engines, func(x engineRun) time.Duration { return x.cpu })
	res, engineCPU := e.res, e.cpu
	r.Results = e.results
	r.ElapsedSeconds = res.Elapsed.Seconds()
	r.EventsPerSecond = float64(o.events) / res.Elapsed.Seconds()
	r.EventsPerSecondPerCore = r.EventsPerSecond / float64(o.cores)
	r.LatencySamples = len(res.Latencies)
	r.LatencyP50Ms = ms(percentile(res.Latencies, 50))
	r.LatencyP99Ms = ms(percentile(res.Latencies, 99))
	r.Checkpoints = len(res.Checkpoints)
	r.CheckpointP99Ms = ms(percentile(res.Checkpoints, 99))
	r.RatioToReference = r.EventsPerSecond / r.ReferenceEventsPerSecond
	r.EngineCPUSeconds = engineCPU.Seconds()
	r.EnginePageFaults = e.faults
	if r.EngineCPUSeconds > 0 && r.ReferenceCPUSeconds > 0 {
		r.RatioToReferenceCPU = r.ReferenceCPUSeconds / r.EngineCPUSeconds
	}
	if f, ok := flinkPerCore[q.Name()]; ok {
		ratio := r.EventsPerSecondPerCore / f
		r.FlinkEventsPerSecondPerCore, r.RatioToFlink = &f, &ratio
	}
	if f, ok := felderaPerCore[q.Name()]; ok {
		ratio := r.EventsPerSecondPerCore / f
		r.FelderaPerCore, r.RatioToFeldera = &f, &ratio
	}
	return r, nil
}

// refRun and engineRun are one measurement of a query's reference loop and
// of its engine job.
type refRun struct {
	cpu     time.Duration // process CPU time
	faults  int64         // the process's page faults during the run
	elapsed time.Duration // the loop's wall time, result hashing included
}

type engineRun struct {
	res     *nexmark.EngineResult
	results int64
	cpu     time.Duration
	faults  int64
}

// runEngine runs q once as a weir job in a fresh checkpoint directory under
// dir, writing a CPU profile to profile if set.
func runEngine(q nexmark.Query, o *options, g *nexmark.Generator, dir string, exact bool, profile string, stderr io.Writer) (engineRun, error) {
	ckDir, err := os.MkdirTemp(dir, q.Name()+"-*")
	if err != nil {
		return engineRun{}, err
	}
	defer os.RemoveAll(ckDir)
	var emitted atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if o.progress {
			progress(stderr, q.Name(), o.events, &emitted, stop)
		}
	}()
	stopProfile, err := benchmarks.StartCPUProfile(profile)
	if err != nil {
		close(stop)
		<-done
		return engineRun{}, err
	}
	cpu0, faults0 := cpuTime(), pageFaults()
	res, err := q.RunEngine(context.Background(), nexmark.EngineRun{
		Generator: g,
		Config: runtime.Config{
			CheckpointDir:      ckDir,
			CheckpointInterval: o.interval,
			Parallelism:        o.cores,
			Logger:             slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel})),
		},
		RatePerSecond: o.rate,
		KeepLines:     exact,
		Watermarks:    o.watermarks,
		Emitted:       &emitted,
	})
	cpu, faults := cpuTime()-cpu0, pageFaults()-faults0
	stopProfile()
	close(stop)
	<-done
	if err != nil {
		return engineRun{}, err
	}
	return engineRun{res: res, results: res.Output.Count, cpu: cpu, faults: faults}, nil
}

// settle collects the garbage and returns every free page of the heap to
// the operating system, so that what runs next (a side's warm-up, or its
// timed run without one) starts from the same state whatever ran before
// it: as in a fresh process, the memory it allocates is faulted in anew.
// Without it, each side inherited the
// freed heap of the one before: the reference loop of a query run alone
// found a cold heap and the engine after it a warm one, while in a run of
// all queries the reference inherited the previous query's engine heap.
// Faulting in a heap of a few hundred MB costs the reference loops of q18
// to q20 as much as their loop itself (q18: 1.25 s of CPU warm, 2.0 s
// cold, 80K page faults against 23K), which is why their speed varied
// twofold between identical runs.
func settle() { debug.FreeOSMemory() }

// prepare readies the heap for a timed run of one side: settled (see
// settle), then with warmup that side's own run once, untimed, and a
// collection, so that the timed run finds the free heap its own previous
// run left, as a long-running job does, and does not fault its memory in
// from the operating system. Either way both sides start alike.
func prepare(warmup bool, warm func() error) error {
	settle()
	if !warmup {
		return nil
	}
	if err := warm(); err != nil {
		return err
	}
	goruntime.GC()
	return nil
}

// medianBy returns the element of xs (not empty) with the median key, the
// lower of the two middle ones for an even count.
func medianBy[T any](xs []T, key func(T) time.Duration) T {
	s := slices.Clone(xs)
	slices.SortStableFunc(s, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
	return s[(len(s)-1)/2]
}

// profilePath is the CPU profile file of query q: path itself for a single
// query, else path with "-q" inserted before its extension.
func profilePath(path, q string, several bool) string {
	if !several {
		return path
	}
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "-" + q + ext
}

// progress rewrites one status line on w until stop is closed.
func progress(w io.Writer, name string, total int64, emitted *atomic.Int64, stop <-chan struct{}) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	start := time.Now()
	for {
		select {
		case <-stop:
			fmt.Fprintf(w, "\r\033[K")
			return
		case <-t.C:
			n := emitted.Load()
			fmt.Fprintf(w, "\r\033[K%s: engine %5.1f%% (%d/%d events, %.2fM events/s)",
				name, 100*float64(n)/float64(total), n, total, float64(n)/time.Since(start).Seconds()/1e6)
		}
	}
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// machineInfo describes the CPU, from /proc/cpuinfo where available.
func machineInfo(cores int) string {
	return fmt.Sprintf("%s, %d CPUs, GOMAXPROCS=%d", benchmarks.CPUModel(), goruntime.NumCPU(), cores)
}
