package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/weirstream/weir/benchmarks"
	"github.com/weirstream/weir/internal/s3dev"
)

// s3Target is the throughput with S3 checkpoints the issue asks for, as a
// fraction of the throughput with local ones.
const s3Target = 0.80

// compareS3 runs the counting job twice in one process, with checkpoints in
// a local directory and on a development S3 server (gofakes3 on loopback,
// objects in a temporary directory), and prints throughput, checkpoint
// duration and bytes per checkpoint side by side; then it restores each
// run's last checkpoint (the state of every key) into a fresh local
// directory and prints the restore times.
func compareS3(records, keys uint64, interval time.Duration) error {
	work, err := os.MkdirTemp("", "weir-counting-s3-*")
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
	locations := []struct{ name, dir string }{
		{"local", filepath.Join(work, "local")},
		{"s3 (dev server)", "s3://weir-bench/counting"},
	}
	var runs [2]result
	var restores [2]time.Duration
	for i, l := range locations {
		if runs[i], err = engine(records, keys, interval, l.dir); err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
		if restores[i], err = restoreTime(records, keys, l.dir, work); err != nil {
			return fmt.Errorf("%s: restore: %w", l.name, err)
		}
	}
	fmt.Printf("machine: %s, %s/%s, %d CPUs, GOMAXPROCS=%d; load average %s before, %s after\n",
		benchmarks.CPUModel(), goruntime.GOOS, goruntime.GOARCH, goruntime.NumCPU(), goruntime.GOMAXPROCS(0), load, loadAvg())
	fmt.Printf("%d records over %d keys, checkpoints every %v\n", records, keys, interval)
	fmt.Printf("%-16s %12s %11s %14s %14s %16s %14s\n", "checkpoints in", "records/s", "checkpoints", "duration p50", "duration p99", "bytes/ckpt p50", "restore")
	for i, l := range locations {
		r := runs[i]
		fmt.Printf("%-16s %12.0f %11d %14v %14v %16d %14v\n", l.name, r.rate, len(r.durations),
			pct(r.durations, 50).Round(time.Millisecond), pct(r.durations, 99).Round(time.Millisecond), pctInt(r.bytes, 50), restores[i].Round(time.Millisecond))
	}
	fmt.Printf("s3 / local throughput: %.2f   (target >= %.2f)\n", runs[1].rate/runs[0].rate, s3Target)
	return nil
}

// startS3 starts a development S3 server (gofakes3 on loopback, objects
// under work) and points the AWS environment of this process at it.
func startS3(work string) (stop func(), err error) {
	srv, err := s3dev.Start(s3dev.Config{Addr: "127.0.0.1:0", DataDir: filepath.Join(work, "s3"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	for _, kv := range srv.Env() {
		name, value, _ := strings.Cut(kv, "=")
		os.Setenv(name, value)
	}
	return func() { srv.Close() }, nil
}

// restoreTime restores the counting job from the last checkpoint in dir,
// with a fresh local directory, and returns the time until it has restored
// (the runtime's Started event).
func restoreTime(records, keys uint64, dir, work string) (time.Duration, error) {
	local, err := os.MkdirTemp(work, "restore-*") // empty, as on a new machine
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(local)
	// The job ended its input before its last checkpoint: restored, it
	// would count nothing.
	t, err := restoreRun{location: dir, localDir: local, records: records, keys: keys, parallelism: 1}.run()
	return t.started, err
}

// loadAvg returns the 1, 5 and 15 minute load averages, for the machine line.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}
