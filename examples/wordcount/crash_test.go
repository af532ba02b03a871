package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/fault"
	"github.com/weirstream/weir/internal/testseed"
)

// The crash tests run wordcount as a child process, kill it with SIGKILL at
// random moments and at chosen points of the checkpoint protocol, restart it
// with the same flags each time, and compare the committed output with what
// an uninterrupted run writes.

func buildWordcount(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wordcount")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
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
	counts := map[string]int{}
	for f := range files {
		var b bytes.Buffer
		for range linesPerFile {
			for w := range 12 {
				// Skewed: low indexes are much more frequent.
				word := vocab[int(float64(len(vocab))*rng.Float64()*rng.Float64())]
				counts[word]++
				if w > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(word)
			}
			b.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("in-%02d.txt", f)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
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

// minInterval is the shortest checkpoint interval the tests use: about the
// time a checkpoint takes to write, so shorter ones would mostly find the
// previous checkpoint still in flight and skip the tick.
const minInterval = 10 * time.Millisecond

// job is one wordcount job: its flags stay the same across restarts.
type job struct {
	bin, input, output, checkpoints string
	interval                        time.Duration // --checkpoint-interval
	atLeastOnce                     bool
}

func newJob(t *testing.T, bin, input string) *job {
	dir := t.TempDir()
	return &job{bin: bin, input: input, output: filepath.Join(dir, "out"), checkpoints: filepath.Join(dir, "ckpt"),
		interval: 150 * time.Millisecond}
}

func (j *job) command(env ...string) *exec.Cmd {
	args := []string{"--input", j.input, "--output", j.output, "--checkpoint-dir", j.checkpoints,
		"--checkpoint-interval", j.interval.String(), "--parallelism", "2"}
	if j.atLeastOnce {
		args = append(args, "--at-least-once")
	}
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

// crashAt runs the job with a crash armed at a point of the checkpoint
// protocol and checks that it died there.
func (j *job) crashAt(t *testing.T, point string) {
	t.Helper()
	out, err := j.command(fault.EnvVar + "=" + point).CombinedOutput()
	if !killed(err) {
		t.Fatalf("crash at %s: want death by SIGKILL, got %v\n%s", point, err, tail(out))
	}
	if !bytes.Contains(out, []byte("injected crash")) {
		t.Fatalf("crash at %s: the child did not report the injected crash\n%s", point, tail(out))
	}
}

// killRandomly starts the job, waits until it has completed a checkpoint in
// this run (so that every run makes progress), then kills it after a random
// delay shorter than maxDelay. It reports false if the job finished before
// it could be killed.
func (j *job) killRandomly(t *testing.T, rng *rand.Rand, maxDelay time.Duration) bool {
	t.Helper()
	cmd := j.command()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	progressed := make(chan struct{})
	var log bytes.Buffer
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			log.Write(sc.Bytes())
			log.WriteByte('\n')
			if !signalled && strings.Contains(sc.Text(), "checkpoint completed") {
				signalled = true
				close(progressed)
			}
		}
	}()
	exited := make(chan error, 1)
	select {
	case <-progressed:
		// The moment of the crash is the random variable under test. A
		// fraction of maxDelay: a seed gives the same moments relative to
		// the job's speed on any machine.
		time.Sleep(time.Duration(rng.Float64() * float64(maxDelay)))
		cmd.Process.Signal(syscall.SIGKILL)
	case <-scanDone:
	}
	<-scanDone
	go func() { exited <- cmd.Wait() }()
	err = <-exited
	if err == nil {
		return false
	}
	if !killed(err) {
		t.Fatalf("wordcount failed: %v\n%s", err, tail(log.Bytes()))
	}
	return true
}

func killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
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
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // staging: not committed
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			word, n, _ := strings.Cut(sc.Text(), "\t")
			c, err := strconv.Atoi(n)
			marks := seen[word]
			switch {
			case err != nil || c < 1 || c >= len(marks):
				res.malformed++
				res.example = sc.Text()
			case marks[c]:
				res.dups++
				res.example = sc.Text()
			default:
				marks[c] = true
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
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

func TestCrashRecoveryIsExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: several seconds")
	}
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	bin := buildWordcount(t)
	input, counts := writeInput(t, rng, 6, 150000)

	reference := newJob(t, bin, input)
	r := reference.runToEnd(t)
	if res := checkOutput(t, reference.output, counts); !res.exact() {
		t.Fatalf("uninterrupted run: %v", res)
	}

	j := newJob(t, bin, input)
	pace := paceFor(r)
	j.interval = pace.interval
	t.Logf("uninterrupted run took %v: %v", r.Round(time.Millisecond), pace)
	// Crashes at chosen points of the protocol: while a checkpoint is being
	// written, and between the sinks' pre-commit and their commit.
	j.crashAt(t, "before-manifest:2")
	j.crashAt(t, "after-manifest:2")
	j.crashAt(t, "after-snapshot:3")
	// Then SIGKILL at random moments, at least five times.
	random := 0
	for random < 5 && j.killRandomly(t, rng, pace.maxKillDelay) {
		random++
	}
	if random < 5 {
		t.Fatalf("only %d random kills: the job finished first (%v)", random, pace)
	}
	kills := 3 + random
	last := j.runToEnd(t)

	if res := checkOutput(t, j.output, counts); !res.exact() {
		t.Fatalf("after %d crashes: %v", kills, res)
	}
	t.Logf("%d crashes; committed output identical to an uninterrupted run's; the run after them took %v",
		kills, last.Round(time.Millisecond))
}

// crashPace is the timing of the crashing runs.
type crashPace struct{ interval, maxKillDelay time.Duration }

// paceFor scales the crashing runs' timing to r, the duration of an
// uninterrupted run, so that the job cannot run out of input before the
// kills are done however fast the machine is. A killed run keeps only what
// it read before its last completed barrier: about interval + kill delay of
// processing, at most 3/80 of r; a crash at a protocol point keeps at most
// two intervals and the writing of a checkpoint. The eight crashes use up
// at most about a quarter of r, so the input outlasts them even when the
// fixed costs of a run (start, restore, writing a checkpoint) are a good
// part of r.
func paceFor(r time.Duration) crashPace {
	return crashPace{interval: max(r/80, minInterval), maxKillDelay: r / 40}
}

func (p crashPace) String() string {
	return fmt.Sprintf("checkpoint interval %v, kill delay < %v", p.interval.Round(time.Millisecond), p.maxKillDelay.Round(time.Millisecond))
}

// TestCrashCheckerCatchesDuplicates proves the check above can fail: with the
// sink writing at least once, a crash before a checkpoint completes makes
// the replayed records appear twice.
func TestCrashCheckerCatchesDuplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: several seconds")
	}
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 3))
	bin := buildWordcount(t)
	input, counts := writeInput(t, rng, 2, 100000)

	j := newJob(t, bin, input)
	j.atLeastOnce = true
	// The first checkpoint must come before the end of the input, or the
	// crash at the second finds nothing to replay: as early as the tests
	// checkpoint, whatever the speed of the machine.
	j.interval = minInterval
	j.crashAt(t, "before-manifest:2")
	j.runToEnd(t)
	res := checkOutput(t, j.output, counts)
	if res.dups == 0 {
		t.Fatalf("at-least-once output after a crash has no duplicates: the checker cannot catch them (%v)", res)
	}
	if res.lost != 0 || res.malformed != 0 {
		t.Fatalf("at-least-once output: %v", res)
	}
	t.Logf("checker found %v", res)
}
