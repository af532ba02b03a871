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

func testSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WEIR_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (rerun with WEIR_TEST_SEED=%d)", seed, seed)
	return seed
}

// writeInput writes files of random text and returns their glob and the
// number of times each word occurs.
func writeInput(t *testing.T, rng *rand.Rand, files, linesPerFile int) (string, map[string]int) {
	t.Helper()
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

// job is one wordcount job: its flags stay the same across restarts.
type job struct {
	bin, input, output, checkpoints string
	atLeastOnce                     bool
}

func newJob(t *testing.T, bin, input string) *job {
	dir := t.TempDir()
	return &job{bin: bin, input: input, output: filepath.Join(dir, "out"), checkpoints: filepath.Join(dir, "ckpt")}
}

func (j *job) command(env ...string) *exec.Cmd {
	args := []string{"--input", j.input, "--output", j.output, "--checkpoint-dir", j.checkpoints,
		"--checkpoint-interval", "150ms", "--parallelism", "2"}
	if j.atLeastOnce {
		args = append(args, "--at-least-once")
	}
	cmd := exec.Command(j.bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// runToEnd runs the job until it exits, which must be cleanly.
func (j *job) runToEnd(t *testing.T) {
	t.Helper()
	if out, err := j.command().CombinedOutput(); err != nil {
		t.Fatalf("wordcount failed: %v\n%s", err, tail(out))
	}
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
// delay. It reports false if the job finished before it could be killed.
func (j *job) killRandomly(t *testing.T, rng *rand.Rand) bool {
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
		// The moment of the crash is the random variable under test.
		time.Sleep(time.Duration(rng.IntN(250)) * time.Millisecond)
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
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	bin := buildWordcount(t)
	input, counts := writeInput(t, rng, 6, 150000)

	reference := newJob(t, bin, input)
	reference.runToEnd(t)
	if res := checkOutput(t, reference.output, counts); !res.exact() {
		t.Fatalf("uninterrupted run: %v", res)
	}

	j := newJob(t, bin, input)
	// Crashes at chosen points of the protocol: while a checkpoint is being
	// written, and between the sinks' pre-commit and their commit.
	j.crashAt(t, "before-manifest:2")
	j.crashAt(t, "after-manifest:2")
	j.crashAt(t, "after-snapshot:3")
	// Then SIGKILL at random moments, at least five times.
	random := 0
	for range 8 {
		if random == 5 {
			break
		}
		if !j.killRandomly(t, rng) {
			break // the job finished first
		}
		random++
	}
	if random < 5 {
		t.Fatalf("only %d random kills: the input is too small to crash the job often enough", random)
	}
	kills := 3 + random
	j.runToEnd(t)

	if res := checkOutput(t, j.output, counts); !res.exact() {
		t.Fatalf("after %d crashes: %v", kills, res)
	}
	t.Logf("%d crashes; committed output identical to an uninterrupted run's", kills)
}

// TestCrashCheckerCatchesDuplicates proves the check above can fail: with the
// sink writing at least once, a crash before a checkpoint completes makes
// the replayed records appear twice.
func TestCrashCheckerCatchesDuplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: several seconds")
	}
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 3))
	bin := buildWordcount(t)
	input, counts := writeInput(t, rng, 2, 100000)

	j := newJob(t, bin, input)
	j.atLeastOnce = true
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
