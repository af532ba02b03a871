package file

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/runtime"
)

// rescaled opens subtask i of p restored from the states of the old
// subtasks, as the runtime does after a change of parallelism.
func rescaled(t *testing.T, in *files, i, p int, old [][]byte) runtime.Source[string] {
	t.Helper()
	src := in.newSource()
	info := runtime.TaskInfo{Subtask: i, Parallelism: p}
	share, err := src.(runtime.Rescalable).Redistribute(info, old)
	if err != nil {
		t.Fatalf("redistribute into subtask %d of %d: %v", i, p, err)
	}
	if err := src.Open(context.Background(), info, share); err != nil {
		t.Fatalf("open subtask %d of %d with its share: %v", i, p, err)
	}
	return src
}

// readSome calls Read up to reads times, until the end of the input.
func readSome(t *testing.T, src runtime.Source[string], reads int) (got []string, ended bool) {
	t.Helper()
	out := runtime.CollectorFunc[string](func(s string) { got = append(got, s) })
	for range reads {
		if err := src.Read(context.Background(), out); errors.Is(err, runtime.ErrEndOfInput) {
			return got, true
		} else if err != nil {
			t.Fatal(err)
		}
	}
	return got, false
}

// rescaleStages runs a source through restores at parallelism 2 → 3 → 1 → 2
// as a job that crashes does: each subtask Reads a random number of times,
// is checkpointed, Reads on (lines the restore replays, so dropped), and
// the next stage starts from the checkpoint. Before each stage, between(stage)
// may change the input. The last stage Reads until each subtask has
// emitted nothing for `quiet` Reads (or the input ended); it returns every
// line emitted before a checkpoint, in order of stage and subtask.
func rescaleStages(t *testing.T, rng *rand.Rand, in *files, between func(stage int), quiet int) []string {
	t.Helper()
	var emitted []string
	var states [][]byte
	for stage, p := range []int{2, 3, 1, 2} {
		between(stage)
		next := make([][]byte, p)
		for i := range p {
			var src runtime.Source[string]
			if stage == 0 {
				src = in.newSource()
				if err := src.Open(context.Background(), runtime.TaskInfo{Subtask: i, Parallelism: p}, nil); err != nil {
					t.Fatal(err)
				}
			} else {
				src = rescaled(t, in, i, p, states)
			}
			if stage == 3 {
				for idle := 0; idle < quiet; idle++ {
					got, ended := readSome(t, src, 1)
					if ended {
						break
					}
					if len(got) > 0 {
						idle = -1
					}
					emitted = append(emitted, got...)
				}
				src.Close()
				continue
			}
			before, _ := readSome(t, src, rng.IntN(40))
			snap, err := src.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if stage == 0 && rng.IntN(4) == 0 {
				// No checkpoint covers the subtask yet: nil state, all replayed.
				before, snap = nil, nil
			}
			emitted = append(emitted, before...)
			next[i] = snap
			readSome(t, src, rng.IntN(10)) // after the checkpoint: replayed
			src.Close()
		}
		states = next
	}
	return emitted
}

var lineID = regexp.MustCompile(`f(\d+)-l(\d+)`)

// checkEachOnce checks that emitted holds line 0, 1, … n-1 of every file
// f of lines[f] = n in this order: no line lost, repeated or reordered
// within its file.
func checkEachOnce(t *testing.T, run string, emitted []string, lines map[int]int) {
	t.Helper()
	next := map[int]int{}
	for _, line := range emitted {
		m := lineID.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s: unexpected line %q", run, line)
		}
		f, _ := strconv.Atoi(m[1])
		j, _ := strconv.Atoi(m[2])
		if j != next[f] {
			t.Fatalf("%s: file %d: line %d emitted where line %d was due (%d lines in all): lost or repeated across a rescale",
				run, f, j, next[f], len(emitted))
		}
		next[f]++
	}
	for f, n := range lines {
		if next[f] != n {
			t.Fatalf("%s: file %d: %d of its %d lines emitted", run, f, next[f], n)
		}
	}
}

// linesPerFile counts the lines of the files mergedFiles wrote.
func linesPerFile(t *testing.T, in *files) map[int]int {
	t.Helper()
	n := map[int]int{}
	for _, line := range readAll(t, in.newSource(), single(), nil) {
		f, _ := strconv.Atoi(lineID.FindStringSubmatch(line)[1])
		n[f]++
	}
	return n
}

// Restores at parallelism 2 → 3 → 1 → 2 of a list of files, read in
// sequence or merged by Timestamp, each from a checkpoint with files part
// read: every line is emitted once, each file's in order.
func TestSourceRedistribute(t *testing.T) {
	s := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(s, s))
	pattern := mergedFiles(t, rng, t.TempDir(), 7, 15)
	for _, timestamp := range []func(string) int64{nil, lineTime} {
		for round := range 20 {
			in, err := newFiles(SourceConfig{Paths: []string{pattern}, MaxLinesPerRead: 1 + rng.IntN(3), BufferSize: 16, Timestamp: timestamp})
			if err != nil {
				t.Fatal(err)
			}
			emitted := rescaleStages(t, rng, in, func(int) {}, 1)
			checkEachOnce(t, fmt.Sprintf("seed %d, timestamp %v, round %d", s, timestamp != nil, round), emitted, linesPerFile(t, in))
		}
	}
}

// A watching source restored at parallelism 2 → 3 → 1 → 2, with new files
// published before every restore and files part read at each checkpoint,
// reads every line once and no file twice.
func TestWatchSourceRedistribute(t *testing.T) {
	s := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(s, s))
	for round := range 5 {
		dir := t.TempDir()
		lines := map[int]int{}
		publishSome := func(stage int) {
			for range 3 {
				f := len(lines)
				var sb strings.Builder
				n := rng.IntN(15)
				for j := range n {
					fmt.Fprintf(&sb, "f%d-l%d\n", f, j)
				}
				publish(t, dir, fmt.Sprintf("s%d-%02d.log", stage, f), sb.String())
				lines[f] = n
			}
		}
		in, err := newFiles(SourceConfig{Paths: []string{filepath.Join(dir, "*.log")}, MonitorInterval: time.Millisecond, MaxLinesPerRead: 1 + rng.IntN(3), BufferSize: 16})
		if err != nil {
			t.Fatal(err)
		}
		// The last stage reads until every subtask had nothing for 3
		// Reads, each of which scans (MonitorInterval is 1 ms, a Read
		// waits at most that long for it): a file read twice would show.
		emitted := rescaleStages(t, rng, in, publishSome, 3)
		checkEachOnce(t, fmt.Sprintf("seed %d, round %d", s, round), emitted, lines)
	}
}

// A rescale refuses states it cannot redistribute, naming the problem.
func TestRedistributeRefuses(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	writeFile(t, a, "a1\na2\n")
	writeFile(t, b, "b1\n")
	two := mustLines(a, b)
	watch, err := newFiles(SourceConfig{Paths: []string{filepath.Join(dir, "*.log")}, MonitorInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	snapOf := func(in *files, info runtime.TaskInfo) []byte {
		src := in.newSource()
		if err := src.Open(context.Background(), info, nil); err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		snap, err := src.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	of2 := func(i int) runtime.TaskInfo { return runtime.TaskInfo{Subtask: i, Parallelism: 2} }
	bounded := [][]byte{snapOf(two, of2(0)), snapOf(two, of2(1))}
	watching := [][]byte{snapOf(watch, of2(0)), snapOf(watch, of2(1))}
	writeFile(t, filepath.Join(dir, "c.log"), "c1\n")
	three := mustLines(filepath.Join(dir, "*.log"))
	for _, tc := range []struct {
		name string
		in   *files
		old  [][]byte
		want string
	}{
		{"file list grew", three, bounded, "covers 2 files, the pattern now matches 3"},
		{"watch state into a bounded source", two, watching, "MonitorInterval"},
		{"bounded state into a watching source", watch, bounded, "MonitorInterval"},
		{"states out of order", two, [][]byte{bounded[1], bounded[0]}, "subtask 1 of 2"},
		{"watch states out of order", watch, [][]byte{watching[1], watching[0]}, "subtask 1 of 2"},
	} {
		_, err := tc.in.newSource().(runtime.Rescalable).Redistribute(single(), tc.old)
		if !errors.Is(err, ErrSnapshotMismatch) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "old subtask 0 of 2") {
			t.Errorf("%s: err = %v, want ErrSnapshotMismatch naming old subtask 0 of 2 and %q", tc.name, err, tc.want)
		}
	}
}
