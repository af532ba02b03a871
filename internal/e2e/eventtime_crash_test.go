package e2e

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/fault"
)

// TestEventTimeCrashes runs the event-time job (eventtimejob: deduplication,
// a tumbling-window count and an interval join over out-of-order input) as a
// child process, crashes it at points of the checkpoint protocol and kills it
// with SIGKILL at random moments, restarting it each time, and checks that
// the committed output equals an uninterrupted run's as a multiset. Windows
// are open and join buffers full at every moment of the run, so every crash
// leaves event-time timers pending: their firings after recovery are part of
// the compared output.
func TestEventTimeCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a job binary many times")
	}
	rng := rand.New(rand.NewPCG(testSeed(t), 0x3e7))
	bin := eventTimeBinary(t)
	const events = 40000

	ref := eventTimeJob{bin: bin, dir: t.TempDir()}
	ref.runToEnd(t)
	want := committedLines(t, ref.output())
	checkEventTimeOutput(t, want, events)

	j := eventTimeJob{bin: bin, dir: t.TempDir()}
	for _, point := range []string{"before-manifest:2", "after-manifest:2", "after-snapshot:3"} {
		c := j.start(t, fault.EnvVar+"="+point)
		if _, killed, err := c.Wait(time.Minute); err != nil || !killed {
			t.Fatalf("crash at %s: want death by SIGKILL, got killed=%v err=%v\n%s", point, killed, err, c.Log())
		}
	}
	kills := 0
	for kills < 5 {
		c := j.start(t)
		select {
		case <-c.Checkpoints(): // this run made progress
		case <-c.Exited():
			t.Fatalf("the job exited before its first checkpoint after %d kills\n%s", kills, c.Log())
		}
		// The moment of the kill is the random variable under test.
		timer := time.NewTimer(time.Duration(rng.IntN(300)) * time.Millisecond)
		select {
		case <-timer.C:
			c.Kill()
		case <-c.Exited():
		}
		code, killed, err := c.Wait(time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if !killed {
			if code != 0 {
				t.Fatalf("job failed with exit code %d\n%s", code, c.Log())
			}
			t.Fatalf("the job finished after only %d kills: make it run longer", kills)
		}
		kills++
	}
	j.runToEnd(t)
	got := committedLines(t, j.output())
	if !slices.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("after %d kills the committed output differs from an uninterrupted run's: %d lines, want %d; first difference at sorted line %d: got %q, want %q",
			kills, len(got), len(want), i, etAt(got, i), etAt(want, i))
	}
	t.Logf("%d crashes at protocol points, %d random kills: %d output lines as in the uninterrupted run", 3, kills, len(got))
}

var (
	etOnce sync.Once
	etBin  string
	etErr  error
)

func eventTimeBinary(t *testing.T) string {
	t.Helper()
	etOnce.Do(func() {
		etBin = filepath.Join(binDir, "eventtimejob")
		out, err := exec.Command("go", "build", "-o", etBin, "github.com/weirstream/weir/internal/e2e/eventtimejob").CombinedOutput()
		if err != nil {
			etErr = fmt.Errorf("go build eventtimejob: %v\n%s", err, out)
		}
	})
	if etErr != nil {
		t.Fatal(etErr)
	}
	return etBin
}

// eventTimeJob is one job: the same flags for every (re)start.
type eventTimeJob struct{ bin, dir string }

func (j eventTimeJob) output() string { return filepath.Join(j.dir, "out") }

func (j eventTimeJob) start(t *testing.T, env ...string) *Child {
	return StartChild(t, j.bin, env, "--output", j.output(), "--checkpoint-dir", filepath.Join(j.dir, "ckpt"),
		"--parallelism", "2", "--checkpoint-interval", "100ms")
}

func (j eventTimeJob) runToEnd(t *testing.T) {
	t.Helper()
	c := j.start(t)
	code, killed, err := c.Wait(2 * time.Minute)
	if err != nil || killed || code != 0 {
		t.Fatalf("job: exit code %d, killed %v, %v\n%s", code, killed, err, c.Log())
	}
}

// committedLines returns the committed lines of the file sink in dir, sorted.
func committedLines(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || e.IsDir() {
			continue // staging: not committed
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(lines)
	return lines
}

// checkEventTimeOutput checks the uninterrupted run against what the input
// implies, so that the comparison is not against a broken reference: every
// distinct click counted in exactly one window, joins present, nothing late.
func checkEventTimeOutput(t *testing.T, lines []string, events uint64) {
	t.Helper()
	var clicks, sum, joins uint64
	for _, l := range lines {
		f := strings.Fields(l)
		switch f[0] {
		case "W":
			n, _ := strconv.ParseUint(f[3], 10, 64)
			s, _ := strconv.ParseUint(f[4], 10, 64)
			clicks, sum = clicks+n, sum+s
		case "J":
			joins++
		default:
			t.Fatalf("unexpected output line %q", l)
		}
	}
	var wantClicks, wantSum uint64
	for i := range events {
		if i%10 != 9 { // position 9 of 10 redelivers an earlier click
			wantClicks, wantSum = wantClicks+1, wantSum+i
		}
	}
	if clicks != wantClicks || sum != wantSum {
		t.Fatalf("uninterrupted run: windows counted %d clicks (seq sum %d), want %d (%d)", clicks, sum, wantClicks, wantSum)
	}
	if joins < events/4 {
		t.Fatalf("uninterrupted run: only %d joined pairs", joins)
	}
}

func etAt(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<none>"
}
