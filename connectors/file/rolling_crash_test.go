package file_test

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir/connectors/file"
	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/internal/fault"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/weirtest"
)

// rollingJobEnv makes the test binary run rollingJob instead of the tests:
// the crash test's job binary is the test binary itself, so that it needs no
// build of its own.
const rollingJobEnv = "WEIR_FILE_TEST_ROLLING_JOB"

// rollingRecords is the input of rollingJob, emitted at rollingRate records
// a second: about two seconds of work, long enough for the kills to land
// (the kit paces them by it) and short for the test.
const (
	rollingRecords = 20000
	rollingRate    = 10000
)

func TestMain(m *testing.M) {
	if os.Getenv(rollingJobEnv) != "" {
		rollingJob(os.Args[1:])
		return
	}
	os.Exit(m.Run())
}

// rollingJob is a job binary: a generator of the lines "record <seq>" into a
// rolling file sink (--output) whose part files hold some 150 lines each, so
// that an in-progress file spans checkpoints, with the runtime's flags.
func rollingJob(args []string) {
	fs := flag.NewFlagSet("rolling-job", flag.ExitOnError)
	output := fs.String("output", "", "output directory")
	flags := runtime.RegisterFlags(fs, runtime.Config{})
	_ = fs.Parse(args) // ExitOnError
	src, err := generator.NewSource(generator.SourceConfig[string]{
		Count: rollingRecords, RatePerSecond: rollingRate, ChunkSize: 50,
		Record: rollingLine,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	sink, err := file.NewSink(file.SinkConfig[string]{Dir: *output, Format: file.StringLine, MaxFileSize: 2048})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	p := runtime.NewPipeline("rolling-file-sink")
	runtime.To(runtime.From(p, "gen", src), "out", sink)
	runtime.Main(p, flags.Config())
}

func rollingLine(seq uint64) string { return fmt.Sprintf("record %06d", seq) }

// TestRollingSinkRescaleUnderCrashes kills the job of a rolling file sink
// at random moments (and, in a binary with fault points, between a
// checkpoint's manifest and the sinks' commit of it) and restarts it each
// time with another parallelism: 2, 3, 1 (and 2). Each restore hands the
// old subtasks' in-progress files to the new subtasks, which seal and
// commit them; the committed output must hold every line once, as the
// uninterrupted run's at parallelism 2 does.
func TestRollingSinkRescaleUnderCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: several seconds")
	}
	job := weirtest.Job{
		Binary: os.Args[0],
		Env:    []string{rollingJobEnv + "=1"},
		Args: []string{"--output", "{dir}/out", "--checkpoint-dir", "{dir}/ckpt", "--checkpoint-interval", "{interval}",
			"--parallelism", "{parallelism}", "--metrics-addr", "", "--restart-attempts", "0"},
		Parallelisms: []int{2, 3, 1},
		Output:       weirtest.Files{Dir: "{dir}/out"},
		Kills:        2,
	}
	if fault.Enabled { // go test -tags weirfault, as make test runs it
		job.ProtocolCrashes = []string{"after-manifest:2"}
	}
	r := weirtest.Test(t, job)
	if want := 2 + len(job.ProtocolCrashes); r.Kills != want || len(r.Parallelisms) != want+1 || !slices.Equal(r.Parallelisms[:3], job.Parallelisms) {
		t.Fatalf("want %d crashes and starts at parallelism 2, 3, 1: %v", want, r)
	}
	for _, run := range []weirtest.Run{r.Clean, r.Crashed} {
		if err := checkEveryLineOnce(filepath.Join(run.Dir, "out")); err != nil {
			t.Errorf("run %s: %v", run.Name, err)
		}
	}
}

// checkEveryLineOnce checks that the committed files in dir hold every line
// of rollingJob's input once, and nothing else.
func checkEveryLineOnce(dir string) error {
	seen := map[string]int{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue // staging
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			seen[sc.Text()]++
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return err
		}
	}
	var bad []string
	for seq := range uint64(rollingRecords) {
		if n := seen[rollingLine(seq)]; n != 1 {
			bad = append(bad, fmt.Sprintf("%q %d times", rollingLine(seq), n))
		}
		delete(seen, rollingLine(seq))
	}
	for l, n := range seen {
		bad = append(bad, fmt.Sprintf("unexpected %q %d times", l, n))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d lines wrong, as %s", len(bad), strings.Join(bad[:min(len(bad), 5)], ", "))
	}
	return nil
}
