package file

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/runtime"
)

// lineTime is the timestamp of the test lines "<ms> …".
func lineTime(line string) int64 {
	ts, err := strconv.ParseInt(strings.Fields(line)[0], 10, 64)
	if err != nil {
		panic(err)
	}
	return ts
}

// lateLines reads src to the end as the runtime drives a source with a
// Monotonic-per-file strategy of out-of-orderness d: after every Read the
// watermark becomes the largest timestamp emitted - d - 1, and a line
// whose timestamp is at or below the watermark of the Reads before it is
// late: an event-time window downstream drops it.
func lateLines(t *testing.T, src runtime.Source[string], info runtime.TaskInfo, d int64) (late, all []string) {
	t.Helper()
	ctx := context.Background()
	if err := src.Open(ctx, info, nil); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	wm, maxTS := runtime.MinWatermark, runtime.MinWatermark
	out := runtime.CollectorFunc[string](func(line string) {
		ts := lineTime(line)
		if ts <= wm {
			late = append(late, line)
		}
		maxTS = max(maxTS, ts)
		all = append(all, line)
	})
	for {
		err := src.Read(ctx, out)
		if errors.Is(err, runtime.ErrEndOfInput) {
			return late, all
		}
		if err != nil {
			t.Fatal(err)
		}
		if maxTS != runtime.MinWatermark {
			wm = max(wm, maxTS-d-1)
		}
	}
}

// Two files with interleaved time ranges read by one subtask: read one
// after the other, the second file's lines all came after the first's
// latest and were late. With Timestamp the subtask merges them by time and
// none is.
func TestTimestampKeepsFilesOnTime(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	var sa, sb strings.Builder
	for i := range 100 {
		fmt.Fprintf(&sa, "%d a%d\n", 2*i, i)
		fmt.Fprintf(&sb, "%d b%d\n", 2*i+1, i)
	}
	writeFile(t, a, sa.String())
	writeFile(t, b, sb.String())
	in, err := newFiles(SourceConfig{Paths: []string{a, b}, MaxLinesPerRead: 3, Timestamp: lineTime})
	if err != nil {
		t.Fatal(err)
	}
	late, all := lateLines(t, in.newSource(), single(), 0)
	if len(late) > 0 {
		t.Errorf("%d of %d lines late: %q…", len(late), len(all), late[:min(len(late), 5)])
	}
	if len(all) != 200 {
		t.Errorf("%d lines, want 200", len(all))
	}
}

// mergedFiles writes nfiles files of random lines "<ms> f<i>-l<j>" whose
// timestamps in each file are out of order by at most d, returning the
// pattern that matches them.
func mergedFiles(t *testing.T, rng *rand.Rand, dir string, nfiles int, d int64) string {
	t.Helper()
	for i := range nfiles {
		var sb strings.Builder
		base := rng.Int64N(1000)
		for j := range rng.IntN(40) {
			base += rng.Int64N(20)
			fmt.Fprintf(&sb, "%d f%d-l%d", base-rng.Int64N(d+1), i, j)
			if j%5 == 2 {
				sb.WriteString(" " + strings.Repeat("x", 30)) // longer than a 16-byte buffer
			}
			sb.WriteString("\n")
		}
		writeFile(t, filepath.Join(dir, fmt.Sprintf("in-%02d.log", i)), sb.String())
	}
	return filepath.Join(dir, "*.log")
}

// Random files out of order by at most d each, any parallelism: no line is
// late, and a snapshot at any point restores to exactly the rest of an
// uninterrupted read.
func TestTimestampRandomRestore(t *testing.T) {
	s := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(s, s))
	const d = 15
	pattern := mergedFiles(t, rng, t.TempDir(), 6, d)
	for _, par := range []int{1, 2, 4} {
		for sub := range par {
			info := runtime.TaskInfo{Subtask: sub, Parallelism: par}
			in, err := newFiles(SourceConfig{Paths: []string{pattern}, MaxLinesPerRead: 1 + rng.IntN(5), BufferSize: 16, Timestamp: lineTime})
			if err != nil {
				t.Fatal(err)
			}
			late, want := lateLines(t, in.newSource(), info, d)
			if len(late) > 0 {
				t.Fatalf("parallelism %d subtask %d (seed %d): late lines %q", par, sub, s, late)
			}
			for split := 0; ; split++ {
				got, snap, ended := readThenSnapshot(t, in.newSource(), info, split)
				got = append(got, readAll(t, in.newSource(), info, snap)...)
				if !slices.Equal(got, want) {
					t.Fatalf("parallelism %d subtask %d split after %d reads (seed %d):\ngot  %q\nwant %q", par, sub, split, s, got, want)
				}
				if ended {
					break
				}
			}
		}
	}
}

// readThenSnapshot opens src afresh, Reads reads times (fewer if it ends)
// and returns what it emitted and its snapshot.
func readThenSnapshot(t *testing.T, src runtime.Source[string], info runtime.TaskInfo, reads int) (got []string, snap []byte, ended bool) {
	t.Helper()
	ctx := context.Background()
	if err := src.Open(ctx, info, nil); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := runtime.CollectorFunc[string](func(s string) { got = append(got, s) })
	for range reads {
		if err := src.Read(ctx, out); errors.Is(err, runtime.ErrEndOfInput) {
			ended = true
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return got, snap, ended
}

// Switching Timestamp on between restarts resumes from the sequential
// position; switching it off resumes each file from its offset, one after
// the other.
func TestTimestampSwitchedBetweenRestarts(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	writeFile(t, a, "1 a\n3 a\n5 a\n")
	writeFile(t, b, "2 b\n4 b\n")
	seq, _ := newFiles(SourceConfig{Paths: []string{a, b}, MaxLinesPerRead: 2})
	merge, _ := newFiles(SourceConfig{Paths: []string{a, b}, MaxLinesPerRead: 2, Timestamp: lineTime})

	// Sequential, then merged: the rest of a merged with b.
	got, snap, _ := readThenSnapshot(t, seq.newSource(), single(), 1)
	got = append(got, readAll(t, merge.newSource(), single(), snap)...)
	if want := []string{"1 a", "3 a", "2 b", "4 b", "5 a"}; !slices.Equal(got, want) {
		t.Errorf("sequential then merged: %q, want %q", got, want)
	}
	// Merged with both files started, then sequential: the rest of a, then
	// the rest of b.
	got, snap, _ = readThenSnapshot(t, merge.newSource(), single(), 1)
	got = append(got, readAll(t, seq.newSource(), single(), snap)...)
	if want := []string{"1 a", "2 b", "3 a", "5 a", "4 b"}; !slices.Equal(got, want) {
		t.Errorf("merged then sequential: %q, want %q", got, want)
	}
	// And on to a merge again from a snapshot of that sequential source
	// with both files part read.
	got, snap, _ = readThenSnapshot(t, merge.newSource(), single(), 1)
	seqSrc := seq.newSource()
	if err := seqSrc.Open(context.Background(), single(), snap); err != nil {
		t.Fatal(err)
	}
	got = append(got, readN(t, seqSrc, 2)...)
	snap, _ = seqSrc.Snapshot()
	seqSrc.Close()
	got = append(got, readAll(t, merge.newSource(), single(), snap)...)
	if want := []string{"1 a", "2 b", "3 a", "5 a", "4 b"}; !slices.Equal(got, want) {
		t.Errorf("merged, sequential, merged: %q, want %q", got, want)
	}
	// Merged before any line, then sequential: from the start.
	_, snap, _ = readThenSnapshot(t, merge.newSource(), single(), 0)
	if got := readAll(t, seq.newSource(), single(), snap); len(got) != 5 {
		t.Errorf("merged at the start then sequential: %q, want all 5 lines", got)
	}
}

// A merging source checks every file's fingerprint on a restore, like the
// sequential one.
func TestTimestampRestoreDetectsChangedFile(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	writeFile(t, a, "1 a\n3 a\n")
	writeFile(t, b, "2 b\n4 b\n")
	in, _ := newFiles(SourceConfig{Paths: []string{a, b}, MaxLinesPerRead: 1, Timestamp: lineTime})
	_, snap, _ := readThenSnapshot(t, in.newSource(), single(), 1)
	writeFile(t, b, "2 b\n5 b\n")
	err := in.newSource().Open(context.Background(), single(), snap)
	if !errors.Is(err, ErrSnapshotMismatch) || !strings.Contains(err.Error(), b) {
		t.Fatalf("err = %v, want ErrSnapshotMismatch naming %s", err, b)
	}
}
