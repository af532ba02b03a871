package weirtest_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/testbin"
	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/weirtest"
)

const wordcount = "github.com/weirstream/weir/examples/wordcount"

// writeText writes files of random words for wordcount and returns their
// glob.
func writeText(t *testing.T, seed uint64, files, lines int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	for f := range files {
		var b bytes.Buffer
		for range lines {
			for w := range 12 {
				if w > 0 {
					b.WriteByte(' ')
				}
				fmt.Fprintf(&b, "w%x", rng.IntN(3000))
			}
			b.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("in-%d.txt", f)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "*.txt")
}

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Remove()
	os.Exit(code)
}

// prebuilt makes job run wordcount built once per test process (with fault
// points), instead of the kit building Package for each Check:
// TestWordcountSurvivesKillsAndPauses covers the kit's build.
func prebuilt(t *testing.T, job weirtest.Job) weirtest.Job {
	job.Package, job.Binary = "", testbin.Build(t, wordcount, "-tags", "weirfault")
	return job
}

func wordcountJob(input string, extra ...string) weirtest.Job {
	return weirtest.Job{
		Package: wordcount,
		Args: append([]string{"--input", input, "--output", "{dir}/out", "--checkpoint-dir", "{dir}/ckpt",
			"--checkpoint-interval", "{interval}", "--parallelism", "2"}, extra...),
		Output: weirtest.Files{Dir: "{dir}/out"},
	}
}

// TestWordcountSurvivesKillsAndPauses runs the exactly-once wordcount
// example under random kills, pauses and a protocol crash: the outputs must
// be equal, and every planned kill and pause must have landed.
func TestWordcountSurvivesKillsAndPauses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a job binary many times")
	}
	seed := testseed.Seed(t)
	job := wordcountJob(writeText(t, seed, 4, 60000))
	job.Seed, job.Kills, job.Pauses = seed, 3, 3
	job.ProtocolCrashes = []string{"after-manifest:2"}
	r := weirtest.Test(t, job)
	if r.Kills != 4 || r.ProtocolCrashes != 1 || r.Pauses != 3 || r.Starts != 5 {
		t.Fatalf("want 4 kills (1 at a protocol point), 3 pauses and 5 starts: %v", r)
	}
	if r.CleanRecords != 4*60000*12 {
		t.Fatalf("clean run committed %d records, want %d", r.CleanRecords, 4*60000*12)
	}
}

// TestCatchesDuplicates proves the kit can fail: wordcount with its
// at-least-once sink, crashed after the sinks flushed a checkpoint that
// never completes, writes that epoch twice.
func TestCatchesDuplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a job binary")
	}
	seed := testseed.Seed(t)
	job := prebuilt(t, wordcountJob(writeText(t, seed, 2, 60000), "--at-least-once"))
	job.Seed, job.WorkDir = seed, t.TempDir()
	job.ProtocolCrashes = []string{"before-manifest:2"}
	r, err := weirtest.Check(t.Context(), job)
	if !errors.Is(err, weirtest.ErrOutputsDiffer) {
		t.Fatalf("want ErrOutputsDiffer, got %v", err)
	}
	if want := fmt.Sprintf("seed %d", seed); !strings.Contains(err.Error(), want) {
		t.Errorf("the error does not name the seed (%q): %v", want, err)
	}
	if r.Duplicates == 0 || r.Lost != 0 || r.Different != 0 || len(r.Examples) == 0 {
		t.Fatalf("want duplicates only, with examples: %v", r)
	}
	for _, d := range r.Examples {
		if d.Crashed <= d.Clean {
			t.Errorf("example %q: %d in the crashed run, %d in the clean one: not a duplicate", d.Record, d.Crashed, d.Clean)
		}
	}
	t.Logf("caught: %v", r)
}

// s3WordcountJob is wordcount checkpointing to the kit's development S3
// server, each start with a fresh empty --local-dir.
func s3WordcountJob(input string, extra ...string) weirtest.Job {
	job := wordcountJob(input, append(extra, "--local-dir", "{start}")...)
	job.Args[slices.Index(job.Args, "{dir}/ckpt")] = "{s3}"
	return job
}

// TestWordcountWithS3SurvivesKills runs wordcount with its checkpoints in
// object storage under random SIGKILLs; every start has a fresh, empty
// --local-dir, so every restart recovers from the S3 server alone, as a job
// moved to a new machine does.
func TestWordcountWithS3SurvivesKills(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a job binary many times")
	}
	seed := testseed.Seed(t)
	job := prebuilt(t, s3WordcountJob(writeText(t, seed, 4, 60000)))
	job.Seed, job.Kills, job.WorkDir = seed, 4, t.TempDir()
	r := weirtest.Test(t, job)
	if r.Kills != 4 || r.Starts != 5 {
		t.Fatalf("want 4 kills and 5 starts: %v", r)
	}
	// Each start had its own local directory: none restored from another's.
	locals, err := filepath.Glob(filepath.Join(r.Crashed.Dir, "start-*"))
	if err != nil || len(locals) != r.Starts {
		t.Fatalf("crashed run: %d local directories %v (%v), want one per start (%d)", len(locals), locals, err, r.Starts)
	}
}

// TestS3CatchesDuplicates proves the test above can fail: with the
// at-least-once sink, a crash after the sinks flushed a checkpoint that
// never completed in S3 writes that epoch twice, and the kit sees it.
func TestS3CatchesDuplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a job binary")
	}
	seed := testseed.Seed(t)
	job := prebuilt(t, s3WordcountJob(writeText(t, seed, 2, 60000), "--at-least-once"))
	job.Seed, job.WorkDir = seed, t.TempDir()
	job.ProtocolCrashes = []string{"before-manifest:2"}
	r, err := weirtest.Check(t.Context(), job)
	if !errors.Is(err, weirtest.ErrOutputsDiffer) || r.Duplicates == 0 || r.Lost != 0 {
		t.Fatalf("at-least-once with S3 checkpoints after a crash: want duplicates only, got %v (%v)", err, r)
	}
	t.Logf("caught: %v", r)
}

// script writes a shell script standing in for a job binary and returns
// its path. It is called with the run's directory.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "job.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nset -e\ndir=$1\nmkdir -p $dir/out\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkpointLine is what the runtime logs when a checkpoint completes.
const checkpointLine = `echo 'level=INFO msg="checkpoint completed" checkpoint=1'`

// faultAck is what a job binary built with the tag weirfault writes at
// start-up when the kit asks (internal/fault).
const faultAck = `if [ -n "$WEIR_FAULT_CHECK" ]; then echo 'weir: fault points compiled in' >&2; fi
`

// TestCatchesLossAndDifference runs a broken job whose last start commits
// fewer records, and a record the clean run never wrote: the report must
// count them.
func TestCatchesLossAndDifference(t *testing.T) {
	// NB: the first crashed start marks itself started before its
	// checkpoint line, after which the kill may come at once.
	bin := script(t, `
case $dir in
*clean-*) seq 1 100 > $dir/out/part; `+checkpointLine+` ;;
*) if [ -e $dir/started ]; then seq 1 95 > $dir/out/part; echo 101 >> $dir/out/part; `+checkpointLine+`; exit 0; fi
   touch $dir/started; `+checkpointLine+`; exec sleep 60 ;;
esac
`)
	job := weirtest.Job{Binary: bin, Args: []string{"{dir}"}, Output: weirtest.Files{Dir: "{dir}/out"},
		Kills: 1, Seed: testseed.Seed(t), Logf: t.Logf,
		WorkDir: filepath.Join(t.TempDir(), "not", "yet")} // Check creates it
	r, err := weirtest.Check(t.Context(), job)
	if !errors.Is(err, weirtest.ErrOutputsDiffer) {
		t.Fatalf("want ErrOutputsDiffer, got %v", err)
	}
	if r.Lost != 5 || r.Different != 1 || r.Duplicates != 0 || r.Kills != 1 {
		t.Fatalf("want 5 lost, 1 different, 0 duplicates after 1 kill: %v", r)
	}
}

// TestTooShort checks that a job that finishes before the planned kills
// fails the test rather than passing with fewer kills. The stand-in job's
// clean run lasts a second, so a kill comes up to 1s/15 after a start's
// first checkpoint; its crashed starts exit right after theirs.
func TestTooShort(t *testing.T) {
	// NB: only the clean run logs a checkpoint. The kit kills a start
	// only after its first checkpoint, so the crashed runs' starts all
	// finish before their kills whatever the machine's speed; a crashed
	// run that logged one would race its exit against the kill delays,
	// which shrink with each retry (to ~9 ms on the third), and a loaded
	// machine could let all three kills land.
	bin := script(t, faultAck+`
seq 1 10 > $dir/out/part
case $dir in *clean-*) `+checkpointLine+`; sleep 1 ;; esac
`)
	job := weirtest.Job{Binary: bin, Args: []string{"{dir}"}, Output: weirtest.Files{Dir: "{dir}/out"},
		Kills: 3, Seed: 1, WorkDir: t.TempDir(), Logf: t.Logf}
	r, err := weirtest.Check(t.Context(), job)
	if !errors.Is(err, weirtest.ErrTooShort) || !strings.Contains(err.Error(), "after 0 of 3 kills") {
		t.Fatalf("want ErrTooShort after 0 of 3 kills, got %v", err)
	}
	t.Log(err)
	// The finished crashed run's output is compared all the same.
	if r.CleanRecords != 10 || r.CrashedRecords != 10 || !r.OK() {
		t.Fatalf("outputs not compared: %v", r)
	}
	// A protocol crash at a point the job never passes that often is too
	// short as well, not a failure of the job.
	job.Kills, job.ProtocolCrashes = 0, []string{"before-manifest:99"}
	if _, err := weirtest.Check(t.Context(), job); !errors.Is(err, weirtest.ErrTooShort) || !strings.Contains(err.Error(), "after 0 of 1 kills (0 at protocol points)") {
		t.Fatalf("want ErrTooShort after 0 of 1 kills, got %v", err)
	}
}

// TestRefusesBinaryWithoutFaultPoints checks that protocol crashes asked of
// a binary built without the tag weirfault fail the test with ErrBadJob
// instead of letting it run without ever crashing: the stand-in job logs a
// checkpoint without acknowledging fault points, and would otherwise run a
// minute.
func TestRefusesBinaryWithoutFaultPoints(t *testing.T) {
	bin := script(t, checkpointLine+`
seq 1 10 > $dir/out/part
exec sleep 60
`)
	job := weirtest.Job{Binary: bin, Args: []string{"{dir}"}, Output: weirtest.Files{Dir: "{dir}/out"},
		ProtocolCrashes: []string{"before-manifest:2"}, Seed: 1, WorkDir: t.TempDir(), Logf: t.Logf}
	_, err := weirtest.Check(t.Context(), job)
	if !errors.Is(err, weirtest.ErrBadJob) || !strings.Contains(err.Error(), "-tags weirfault") {
		t.Fatalf("want ErrBadJob naming -tags weirfault, got %v", err)
	}
}

func TestBadJob(t *testing.T) {
	out := weirtest.Files{Dir: "{dir}/out"}
	for _, c := range []struct {
		job  weirtest.Job
		want string
	}{
		{weirtest.Job{Output: out, Kills: 1, Args: []string{"{dir}"}}, "neither Binary nor Package"},
		{weirtest.Job{Binary: "x", Kills: 1, Args: []string{"{dir}"}}, "no Output"},
		{weirtest.Job{Binary: "x", Output: out, Args: []string{"{dir}"}}, "no Kills"},
		{weirtest.Job{Binary: "x", Output: out, Kills: -1, Args: []string{"{dir}"}}, "must not be negative"},
		{weirtest.Job{Binary: "x", Output: out, Kills: 1, Args: []string{"--checkpoint-dir", "ckpt"}}, "neither {dir} nor {run}"},
		{weirtest.Job{Binary: "x", Output: out, ProtocolCrashes: []string{"before-manifest"}, Args: []string{"{run}"}}, `"before-manifest": want point:n`},
		{weirtest.Job{Binary: "x", Output: out, ProtocolCrashes: []string{"before-manifest:0"}, Args: []string{"{run}"}}, "want point:n"},
		{weirtest.Job{Binary: "x", Output: out, Kills: 1, Args: []string{"{dir}", "--parallelism", "{parallelism}"}}, "Parallelisms is empty"},
		{weirtest.Job{Binary: "x", Output: out, Kills: 1, Args: []string{"{dir}"}, Parallelisms: []int{2, 3}}, "no job flag holds {parallelism}"},
		{weirtest.Job{Binary: "x", Output: out, Kills: 1, Args: []string{"{dir}", "{parallelism}"}, Parallelisms: []int{2, 0}}, "parallelism 0 < 1"},
	} {
		_, err := weirtest.Check(t.Context(), c.job)
		if !errors.Is(err, weirtest.ErrBadJob) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want ErrBadJob saying %q", c.job, err, c.want)
		}
	}
}

func TestExpand(t *testing.T) {
	r := weirtest.Run{Name: "clean-1", Dir: "/tmp/w/clean-1"}
	if got := r.Expand("{dir}/out,{run}-topic"); got != "/tmp/w/clean-1/out,clean-1-topic" {
		t.Fatal(got)
	}
}

// TestParallelismSchedule checks that {parallelism} follows
// Job.Parallelisms: the clean run gets the first, start k of the crashed
// run the k-th, around the schedule. The stand-in job records what it was
// given, and exits 0 at its fifth start.
func TestParallelismSchedule(t *testing.T) {
	bin := script(t, `echo $2 >> $dir/parallelism
seq 1 10 > $dir/out/part
`+checkpointLine+`
case $dir in *clean-*) exit 0 ;; esac
if [ $(wc -l < $dir/parallelism) -ge 5 ]; then exit 0; fi
exec sleep 60
`)
	job := weirtest.Job{Binary: bin, Args: []string{"{dir}", "{parallelism}"}, Output: weirtest.Files{Dir: "{dir}/out"},
		Parallelisms: []int{2, 3, 1}, Kills: 4, Seed: testseed.Seed(t), WorkDir: t.TempDir(), Logf: t.Logf}
	r, err := weirtest.Check(t.Context(), job)
	if err != nil {
		t.Fatal(err)
	}
	given := func(run weirtest.Run) string {
		b, err := os.ReadFile(filepath.Join(run.Dir, "parallelism"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", " ")
	}
	if got := given(r.Clean); got != "2" {
		t.Errorf("clean run given parallelism %q, want 2", got)
	}
	if got := given(r.Crashed); got != "2 3 1 2 3" {
		t.Errorf("crashed run's starts given parallelisms %q, want 2 3 1 2 3", got)
	}
	if want := []int{2, 3, 1, 2, 3}; !slices.Equal(r.Parallelisms, want) || !strings.Contains(r.String(), "parallelism of the crashed starts: [2 3 1 2 3]") {
		t.Errorf("report: Parallelisms %v, want %v; %v", r.Parallelisms, want, r)
	}
}
