package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/testbin"
	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/weirtest"
)

// The crash tests run wordcount as a child process through the crash-test
// kit (weirtest): once uninterrupted, and once killed with SIGKILL at random
// moments and at chosen points of the checkpoint protocol, restarted with
// the same flags each time; the committed outputs must be equal.

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Remove()
	os.Exit(code)
}

// buildWordcount builds the example once per test process, with the fault
// points the protocol crashes arm.
func buildWordcount(t *testing.T) string {
	t.Helper()
	return testbin.Build(t, ".", "-tags", "weirfault")
}

// writeInput writes files of random text and returns their glob and the
// number of times each word occurs. WEIR_CRASH_INPUT_SCALE, a factor in
// (0, 1], shrinks the files: a smaller input stands in for a faster machine,
// to check that no test depends on the speed of the job.
func writeInput(t *testing.T, rng *rand.Rand, files, linesPerFile int) (string, map[string]int) {
	t.Helper()
	linesPerFile = max(1, int(float64(linesPerFile)*inputScale(t)))
	dir := t.TempDir()
	vocab := make([]string, 3000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("w%x", rng.Uint32()%0xfffff)
	}
	// NB: counted by index, not in a map by word: the map took 40% of the
	// writing's CPU time under -race (0.8 of 1.9 s for 10.8M words).
	byIndex := make([]int, len(vocab))
	for f := range files {
		var b bytes.Buffer
		for range linesPerFile {
			for w := range 12 {
				// Skewed: low indexes are much more frequent.
				i := int(float64(len(vocab)) * rng.Float64() * rng.Float64())
				byIndex[i]++
				if w > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(vocab[i])
			}
			b.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("in-%02d.txt", f)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	counts := map[string]int{}
	for i, n := range byIndex {
		if n > 0 {
			counts[vocab[i]] += n // NB: two indexes may draw the same word
		}
	}
	return filepath.Join(dir, "*.txt"), counts
}

func inputScale(t *testing.T) float64 {
	s := os.Getenv("WEIR_CRASH_INPUT_SCALE")
	if s == "" {
		return 1
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f > 0 && f <= 1) {
		t.Fatalf("WEIR_CRASH_INPUT_SCALE=%q: want a factor in (0, 1]", s)
	}
	t.Logf("input scaled by %v (WEIR_CRASH_INPUT_SCALE)", f)
	return f
}

// job is one wordcount job: its flags stay the same across restarts.
type job struct {
	bin, input, output, checkpoints string
	interval                        time.Duration // --checkpoint-interval
}

func newJob(t *testing.T, bin, input string) *job {
	dir := t.TempDir()
	return &job{bin: bin, input: input, output: filepath.Join(dir, "out"), checkpoints: filepath.Join(dir, "ckpt"),
		interval: 150 * time.Millisecond}
}

func (j *job) command(env ...string) *exec.Cmd {
	args := []string{"--input", j.input, "--output", j.output, "--checkpoint-dir", j.checkpoints,
		"--checkpoint-interval", j.interval.String(), "--parallelism", "2"}
	cmd := exec.Command(j.bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// runToEnd runs the job until it exits, which must be cleanly, and returns
// how long that took.
func (j *job) runToEnd(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	if out, err := j.command().CombinedOutput(); err != nil {
		t.Fatalf("wordcount failed: %v\n%s", err, tail(out))
	}
	return time.Since(start)
}

func tail(out []byte) []byte {
	if len(out) > 4000 {
		return out[len(out)-4000:]
	}
	return out
}

// outputCheck holds what the committed output must be: an uninterrupted run
// writes, for every word w, the lines "w\t1" … "w\t<count of w>" exactly
// once each (in some order). Checking against that characterization is the
// same as comparing multisets with an uninterrupted run's output, without
// holding millions of lines in memory.
type outputCheck struct {
	dups, lost, malformed int
	example               string
}

func checkOutput(t *testing.T, dir string, counts map[string]int) outputCheck {
	t.Helper()
	seen := make(map[string][]bool, len(counts))
	for w, c := range counts {
		seen[w] = make([]bool, c+1)
	}
	var res outputCheck
	// NB: through the kit's reader of committed files (dot files are
	// staging), which splits lines faster under -race than a bufio.Scanner;
	// the record's bytes are converted to strings only on a failure.
	err := weirtest.Files{Dir: dir}.Read(t.Context(), weirtest.Run{}, func(line []byte) {
		word, n, _ := bytes.Cut(line, []byte{'\t'})
		c, err := strconv.Atoi(string(n))
		marks := seen[string(word)]
		switch {
		case err != nil || c < 1 || c >= len(marks):
			res.malformed++
			res.example = string(line)
		case marks[c]:
			res.dups++
			res.example = string(line)
		default:
			marks[c] = true
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for w, marks := range seen {
		for c := 1; c < len(marks); c++ {
			if !marks[c] {
				res.lost++
				if res.example == "" {
					res.example = fmt.Sprintf("%s\t%d", w, c)
				}
			}
		}
	}
	return res
}

func (r outputCheck) exact() bool { return r.dups == 0 && r.lost == 0 && r.malformed == 0 }

func (r outputCheck) String() string {
	return fmt.Sprintf("%d duplicate, %d lost, %d malformed lines (for example %q)", r.dups, r.lost, r.malformed, r.example)
}

// crashJob is the kit's job for wordcount on input: the same flags as
// newJob's, with the kit's directories and checkpoint interval.
func crashJob(t *testing.T, bin, input string, extra ...string) weirtest.Job {
	return weirtest.Job{
		Binary: bin,
		Args: append([]string{"--input", input, "--output", "{dir}/out", "--checkpoint-dir", "{dir}/ckpt",
			"--checkpoint-interval", "{interval}", "--parallelism", "2"}, extra...),
		Output:  weirtest.Files{Dir: "{dir}/out"},
		WorkDir: t.TempDir(),
		Logf:    t.Logf,
	}
}

// TestCrashRecoveryIsExactlyOnce crashes wordcount at three points of the
// checkpoint protocol (while a checkpoint is being written, and between the
// sinks' pre-commit and their commit) and kills it at five random moments.
// The kit paces the crashes by the uninterrupted run's working time W, from
// its first checkpoint to its exit (checkpoint interval W/80, kill delays
// below W/40 after each start's first checkpoint, for eight crashes), so
// that a faster machine cannot finish the job before they land.
func TestCrashRecoveryIsExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: several seconds")
	}
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	input, counts := writeInput(t, rng, 6, 150000)
	job := crashJob(t, buildWordcount(t), input)
	job.Seed, job.Kills = seed, 5
	job.ProtocolCrashes = []string{"before-manifest:2", "after-manifest:2", "after-snapshot:3"}
	r := weirtest.Test(t, job)
	if r.Kills != 8 {
		t.Fatalf("%d crashes landed, want 8: %v", r.Kills, r)
	}
	if res := checkOutput(t, filepath.Join(r.Clean.Dir, "out"), counts); !res.exact() {
		t.Fatalf("uninterrupted run: %v", res)
	}
	if res := checkOutput(t, filepath.Join(r.Crashed.Dir, "out"), counts); !res.exact() {
		t.Fatalf("after %d crashes: %v", r.Kills, res)
	}
}

// TestCrashCheckerCatchesDuplicates proves the checks above can fail: with
// the sink writing at least once, a crash before a checkpoint completes
// makes the replayed records appear twice, and both the kit and checkOutput
// must see them.
func TestCrashCheckerCatchesDuplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: several seconds")
	}
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 3))
	input, counts := writeInput(t, rng, 2, 100000)
	// NB: the kit's interval (R/10 for one crash) puts the second
	// checkpoint well before the end of the input, whatever the speed of
	// the machine, so the crash there leaves an epoch to replay.
	job := crashJob(t, buildWordcount(t), input, "--at-least-once")
	job.Seed = seed
	job.ProtocolCrashes = []string{"before-manifest:2"}
	r, err := weirtest.Check(t.Context(), job)
	if !errors.Is(err, weirtest.ErrOutputsDiffer) || r.Duplicates == 0 {
		t.Fatalf("at-least-once output after a crash: the kit found no duplicates: %v", err)
	}
	if r.Lost != 0 || r.Different != 0 {
		t.Fatalf("at-least-once output after a crash: %v", r)
	}
	res := checkOutput(t, filepath.Join(r.Crashed.Dir, "out"), counts)
	if res.dups == 0 {
		t.Fatalf("at-least-once output after a crash has no duplicates: the checker cannot catch them (%v)", res)
	}
	if res.lost != 0 || res.malformed != 0 {
		t.Fatalf("at-least-once output: %v", res)
	}
	t.Logf("checker found %v; kit: %v", res, r)
}

// TestRescaleUnderCrashes kills wordcount twice at random moments and once
// between a checkpoint and the sinks' commit of it, and restarts it each
// time with another parallelism: 2, then 3, 1 and 2. Every restore
// redistributes the file source's positions (seven files, so subtasks hold
// several, part read), the counts by key group and the sinks' pending
// files; the committed output must equal the uninterrupted run's at
// parallelism 2.
func TestRescaleUnderCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: several seconds")
	}
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 4))
	input, counts := writeInput(t, rng, 7, 40000)
	job := crashJob(t, buildWordcount(t), input)
	job.Args[slices.Index(job.Args, "--parallelism")+1] = "{parallelism}"
	job.Parallelisms = []int{2, 3, 1, 2}
	job.Seed, job.Kills = seed, 2
	job.ProtocolCrashes = []string{"after-manifest:2"}
	r := weirtest.Test(t, job)
	if r.Kills != 3 || !slices.Equal(r.Parallelisms, job.Parallelisms) {
		t.Fatalf("want 3 crashes and starts at parallelism %v: %v", job.Parallelisms, r)
	}
	if res := checkOutput(t, filepath.Join(r.Crashed.Dir, "out"), counts); !res.exact() {
		t.Fatalf("after %d crashes and rescales %v: %v", r.Kills, r.Parallelisms, res)
	}
}
