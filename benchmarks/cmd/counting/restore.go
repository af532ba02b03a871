package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/benchmarks"
	"github.com/weirstream/weir/checkpoint"
	"github.com/weirstream/weir/connectors/discard"
	"github.com/weirstream/weir/runtime"
)

// restoreBench is what --restore measures: keys distinct keys, filled by a
// job at parallelism, restored at that parallelism and at each of rescaleTo
// (comma-separated), reps times each.
type restoreBench struct {
	keys        uint64
	parallelism int
	rescaleTo   string
	reps        int
	cpuProfile  string // of the restores
}

// restoreCase is one row of the table: restores from a location at a
// parallelism.
type restoreCase struct {
	from        string // "local" or "s3"
	parallelism int
	started     []time.Duration
	first       []time.Duration
}

// compareRestores fills the keyed state of the counting job with every key,
// once into a local checkpoint directory and once onto a development S3
// server, then times restores of each: from the start of the job to its
// Started event (checkpoint verified or downloaded, keyed state restored and
// rescaled, operators open) and to the first count it emits, which reads a
// restored key. The cases run round-robin, so that a change of the machine's
// load during the run falls on all of them alike; it prints the median of
// each.
func compareRestores(b restoreBench) error {
	targets, err := restoreParallelisms(b)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "weir-counting-restore-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	stopS3, err := startS3(work)
	if err != nil {
		return err
	}
	defer stopS3()
	load := loadAvg()
	locations := map[string]string{"local": filepath.Join(work, "local"), "s3": "s3://weir-bench/restore"}
	fills := map[string]checkpoint.Info{}
	var records [2]int64
	for i, from := range []string{"local", "s3"} {
		if records[i], err = fill(locations[from], b.keys, b.parallelism); err != nil {
			return fmt.Errorf("fill %s: %w", from, err)
		}
		if fills[from], err = newestCheckpoint(locations[from]); err != nil {
			return fmt.Errorf("fill %s: %w", from, err)
		}
	}
	var cases []*restoreCase
	for _, from := range []string{"local", "s3"} {
		for _, p := range targets {
			cases = append(cases, &restoreCase{from: from, parallelism: p})
		}
	}
	stopProfile, err := benchmarks.StartCPUProfile(b.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	for rep := range b.reps {
		for _, c := range cases {
			t, err := restoreCaseOnce(c, locations[c.from], fills[c.from], b.keys, work)
			if err != nil {
				return fmt.Errorf("restore from %s at parallelism %d (repetition %d): %w", c.from, c.parallelism, rep+1, err)
			}
			c.started = append(c.started, t.started)
			c.first = append(c.first, t.first)
		}
	}
	stopProfile()
	fmt.Printf("machine: %s, %s/%s, %d CPUs, GOMAXPROCS=%d; load average %s before, %s after\n",
		benchmarks.CPUModel(), goruntime.GOOS, goruntime.GOARCH, goruntime.NumCPU(), goruntime.GOMAXPROCS(0), load, loadAvg())
	fmt.Printf("state: %d keys, filled at parallelism %d (%d and %d records); checkpoint: %s in %d files local, %s in %d files on S3\n",
		b.keys, b.parallelism, records[0], records[1], mb(fills["local"].Size), fills["local"].Files, mb(fills["s3"].Size), fills["s3"].Files)
	fmt.Printf("%d restores per case, median (min-max); local restores from a fresh hard-linked copy of the checkpoint, S3 restores into an empty --local-dir\n", b.reps)
	fmt.Printf("%-16s %-12s %26s %26s\n", "restore from", "parallelism", "to Started", "to the first count")
	for _, c := range cases {
		fmt.Printf("%-16s %-12s %26s %26s\n", map[string]string{"local": "local directory", "s3": "s3 (dev server)"}[c.from],
			fmt.Sprintf("%d -> %d", b.parallelism, c.parallelism), spread(c.started), spread(c.first))
	}
	return nil
}

// restoreParallelisms returns the parallelisms to restore at: the fill's,
// then those of b.rescaleTo.
func restoreParallelisms(b restoreBench) ([]int, error) {
	if b.parallelism < 1 || b.reps < 1 {
		return nil, fmt.Errorf("--parallelism %d and --reps %d must be at least 1", b.parallelism, b.reps)
	}
	out := []int{b.parallelism}
	for f := range strings.SplitSeq(b.rescaleTo, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil || p < 1 {
			return nil, fmt.Errorf("--rescale-to %q: %q is not a parallelism (a positive integer)", b.rescaleTo, f)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// fill runs the counting job on an unbounded input at parallelism until
// it has counted every one of keys, then stops it as SIGTERM does: its
// final checkpoint holds every key, and its input has not ended, so a
// restored job goes on counting. It returns the records counted.
func fill(location string, keys uint64, parallelism int) (int64, error) {
	seen := make([]bool, keys) // each key is counted by one subtask
	var counted, covered atomic.Int64
	stop := make(chan struct{})
	onCount := func(c count) {
		counted.Add(1)
		if !seen[c.key] {
			seen[c.key] = true
			if covered.Add(1) == int64(keys) {
				close(stop)
			}
		}
	}
	var dropped discard.Counter
	p, err := pipeline(0, keys, &dropped, onCount)
	if err != nil {
		return 0, err
	}
	cfg := runtime.Config{
		CheckpointDir: location,
		Parallelism:   parallelism,
		Stop:          stop,
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if err := runtime.Run(context.Background(), p, cfg); err != nil {
		return 0, err
	}
	if covered.Load() != int64(keys) {
		return 0, fmt.Errorf("the job stopped after counting %d of %d keys", covered.Load(), keys)
	}
	return counted.Load(), nil
}

// newestCheckpoint returns the newest complete checkpoint of location.
func newestCheckpoint(location string) (checkpoint.Info, error) {
	infos, err := checkpoint.List(context.Background(), location)
	if err != nil {
		return checkpoint.Info{}, err
	}
	var newest checkpoint.Info
	for _, in := range infos {
		if in.Kind == checkpoint.KindCheckpoint && in.ID > newest.ID {
			newest = in
		}
	}
	if newest.ID == 0 {
		return newest, fmt.Errorf("%s holds no complete checkpoint", location)
	}
	return newest, nil
}

// restoreCaseOnce times one restore of c. A local one restores from a
// hard-linked copy of the filled checkpoint, so that every repetition starts
// from the same directory (the checkpoint alone, no live state); an S3 one
// into an empty local directory, as on a new machine.
func restoreCaseOnce(c *restoreCase, location string, fill checkpoint.Info, keys uint64, work string) (restoreTimes, error) {
	scratch, err := os.MkdirTemp(work, "restore-*")
	if err != nil {
		return restoreTimes{}, err
	}
	defer os.RemoveAll(scratch)
	r := restoreRun{location: location, keys: keys, parallelism: c.parallelism, want: fill.ID, untilCount: true}
	if c.from == "local" {
		r.location = scratch
		if err := linkTree(filepath.Join(location, fill.Dir), filepath.Join(scratch, fill.Dir)); err != nil {
			return restoreTimes{}, err
		}
	} else {
		r.localDir = scratch
	}
	return r.run()
}

// restoreRun is a restore of the counting job, timed.
type restoreRun struct {
	location      string // checkpoint location: a directory or s3://
	localDir      string // for s3://: the local directory (empty, as on a new machine)
	records, keys uint64 // of the job that wrote the checkpoint (records 0: unbounded)
	parallelism   int
	want          uint64 // the checkpoint it must restore; 0: any
	// untilCount runs the job until its first count, which must be of a
	// key in the checkpoint; else until it has started.
	untilCount bool
}

// restoreTimes are the times from the start of a restore to the job's
// Started event and to its first count.
type restoreTimes struct{ started, first time.Duration }

// run starts the counting job from the newest checkpoint of r.location and
// cancels it once it has started or at its first count: it ends without a
// checkpoint of its own (the interval is long), so the location stays as it
// was.
func (r restoreRun) run() (restoreTimes, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var t restoreTimes
	var from uint64
	var counted atomic.Bool
	var wrongCount error
	var start time.Time
	onCount := func(c count) {
		if !counted.CompareAndSwap(false, true) {
			return
		}
		t.first = time.Since(start)
		// The first count of a subtask is the first of its key in this run,
		// and the checkpoint counted every key.
		if c.n < 2 {
			wrongCount = fmt.Errorf("the first count of key %d after the restore is %d: its count in the checkpoint was lost", c.key, c.n)
		}
		cancel()
	}
	var dropped discard.Counter
	p, err := pipeline(r.records, r.keys, &dropped, onCount)
	if err != nil {
		return t, err
	}
	cfg := runtime.Config{
		CheckpointDir:      r.location,
		LocalDir:           r.localDir,
		Parallelism:        r.parallelism,
		CheckpointInterval: time.Hour,
		CheckpointTimeout:  time.Hour,
		// Above errors: the job ends by the cancellation, which it logs as
		// one; Run returns any other.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 1})),
		Events: runtime.EventListener{Started: func(info runtime.StartInfo) {
			t.started, from = time.Since(start), info.RestoredFrom
			if !r.untilCount {
				cancel()
			}
		}},
	}
	if !strings.HasPrefix(r.location, "s3://") {
		cfg.LocalDir = "" // a local directory restores in place
	}
	start = time.Now()
	err = runtime.Run(ctx, p, cfg)
	switch {
	case err != nil && !errors.Is(err, context.Canceled):
		return t, err
	case from == 0:
		return t, fmt.Errorf("the job started afresh instead of restoring from %s", r.location)
	case r.want != 0 && from != r.want:
		return t, fmt.Errorf("the job restored checkpoint %d of %s, want %d", from, r.location, r.want)
	case r.untilCount && !counted.Load():
		return t, fmt.Errorf("the restored job from %s ended without counting a record", r.location)
	}
	return t, wrongCount
}

// linkTree makes dst a copy of the directory src whose files are hard links.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		return os.Link(path, filepath.Join(dst, rel))
	})
}

// spread formats the median of ds with its range.
func spread(ds []time.Duration) string {
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("%v (%v-%v)", r(pct(ds, 50)), r(slices.Min(ds)), r(slices.Max(ds)))
}

// mb formats a byte count in MB.
func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
