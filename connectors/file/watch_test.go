package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/runtime"
)

// readN Reads src until it has emitted n lines in all, failing after a
// minute (the source waits at most maxIdleWait a Read, so this is only a
// bound on a hang, not a timing assumption).
func readN(t *testing.T, src runtime.Source[string], n int) []string {
	t.Helper()
	var got []string
	out := runtime.CollectorFunc[string](func(s string) { got = append(got, s) })
	deadline := time.Now().Add(time.Minute)
	for len(got) < n {
		if err := src.Read(context.Background(), out); err != nil {
			t.Fatalf("read: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %q, want %d lines", got, n)
		}
	}
	if len(got) != n {
		t.Fatalf("got %q, want %d lines", got, n)
	}
	return got
}

// publish writes a file as a producer of a watched directory should: under
// a dot name the pattern does not match, then renamed into place.
func publish(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// A watching source reads the files there at the start, then each new one
// once; lines appended to a file already found are not read; a restore
// resumes with exactly the files and lines not yet emitted.
func TestMonitorNewFiles(t *testing.T) {
	dir := t.TempDir()
	publish(t, dir, "a.log", "a1\na2\n")
	in, err := newFiles(SourceConfig{Paths: []string{filepath.Join(dir, "*.log")}, MonitorInterval: time.Millisecond, MaxLinesPerRead: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src := in.newSource()
	if err := src.Open(ctx, single(), nil); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if got := readN(t, src, 2); !slices.Equal(got, []string{"a1", "a2"}) {
		t.Fatalf("existing file: %q", got)
	}
	afterA, _ := src.Snapshot()

	f, err := os.OpenFile(filepath.Join(dir, "a.log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("a3 appended\n")
	f.Close()
	publish(t, dir, "b.log", "b1\nb2\nb3\n")
	if got := readN(t, src, 1); !slices.Equal(got, []string{"b1"}) {
		t.Fatalf("new file: %q", got)
	}
	midB, _ := src.Snapshot()
	publish(t, dir, "c.log", "c1\n")
	if got := readN(t, src, 3); !slices.Equal(got, []string{"b2", "b3", "c1"}) {
		t.Fatalf("rest: %q (a line appended to a.log must not be read)", got)
	}

	for _, tc := range []struct {
		name string
		snap []byte
		want []string
	}{
		{"after a", afterA, []string{"b1", "b2", "b3", "c1"}},
		{"within b", midB, []string{"b2", "b3", "c1"}},
	} {
		src := in.newSource()
		if err := src.Open(ctx, single(), tc.snap); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, src, len(tc.want)); !slices.Equal(got, tc.want) {
			t.Errorf("restored %s: %q, want %q", tc.name, got, tc.want)
		}
		src.Close()
	}
}

// Every file is read by exactly one subtask.
func TestMonitorPartitioning(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := range 20 {
		publish(t, dir, fmt.Sprintf("f%02d.log", i), fmt.Sprintf("l%d\n", i))
		want = append(want, fmt.Sprintf("l%d", i))
	}
	in, err := newFiles(SourceConfig{Paths: []string{filepath.Join(dir, "*.log")}, MonitorInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for sub := range 3 {
		src := in.newSource()
		if err := src.Open(context.Background(), runtime.TaskInfo{Subtask: sub, Parallelism: 3}, nil); err != nil {
			t.Fatal(err)
		}
		// One Read scans and reads every file of the subtask (one line each).
		var got []string
		out := runtime.CollectorFunc[string](func(s string) { got = append(got, s) })
		if err := src.Read(context.Background(), out); err != nil {
			t.Fatal(err)
		}
		src.Close()
		if len(got) == 0 {
			t.Errorf("subtask %d read nothing", sub)
		}
		all = append(all, got...)
	}
	slices.Sort(all)
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Fatalf("read %q, want each of %q once", all, want)
	}
}

func TestMonitorConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		cfg  SourceConfig
		want string
	}{
		{SourceConfig{Paths: []string{filepath.Join(dir, "missing", "*.log")}, MonitorInterval: time.Second}, "directory to watch"},
		{SourceConfig{Paths: []string{filepath.Join(dir, "*.log")}, MonitorInterval: time.Second, Timestamp: lineTime}, "cannot be combined"},
		{SourceConfig{Paths: []string{filepath.Join(dir, "*.log")}, MonitorInterval: -time.Second}, "negative"},
	} {
		if _, err := newFiles(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	// An empty watched directory is fine.
	if _, err := newFiles(SourceConfig{Paths: []string{filepath.Join(dir, "*.log")}, MonitorInterval: time.Second}); err != nil {
		t.Errorf("empty directory: %v", err)
	}
	// Snapshots do not cross between modes.
	writeFile(t, filepath.Join(dir, "a.log"), "1 a\n")
	watch, _ := newFiles(SourceConfig{Paths: []string{filepath.Join(dir, "*.log")}, MonitorInterval: time.Millisecond})
	bounded := mustLines(filepath.Join(dir, "*.log"))
	wsnap, _ := watch.newSource().Snapshot()
	_, bsnap, _ := readThenSnapshot(t, bounded.newSource(), single(), 0)
	if err := bounded.newSource().Open(context.Background(), single(), wsnap); !errors.Is(err, ErrSnapshotMismatch) || !strings.Contains(err.Error(), "MonitorInterval") {
		t.Errorf("watch snapshot into a bounded source: %v", err)
	}
	if err := watch.newSource().Open(context.Background(), single(), bsnap); !errors.Is(err, ErrSnapshotMismatch) || !strings.Contains(err.Error(), "MonitorInterval") {
		t.Errorf("bounded snapshot into a watching source: %v", err)
	}
	if err := watch.newSource().Open(context.Background(), runtime.TaskInfo{Subtask: 0, Parallelism: 2}, wsnap); !errors.Is(err, ErrSnapshotMismatch) {
		t.Errorf("parallelism changed: %v", err)
	}
}

// A snapshot after any number of Reads restores to exactly the lines not
// emitted yet, for files found at the start and found later.
func TestMonitorRestoreAnywhere(t *testing.T) {
	dir := t.TempDir()
	publish(t, dir, "a.log", "a1\na2\na3 no newline")
	publish(t, dir, "b.log", "")
	publish(t, dir, "c.log", "c1\n\nc3\n")
	later := map[string]string{"d.log": "d1\nd2\n", "e.log": "e1\n"}
	in, err := newFiles(SourceConfig{Paths: []string{filepath.Join(dir, "*.log")}, MonitorInterval: time.Millisecond, MaxLinesPerRead: 1, BufferSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a1", "a2", "a3 no newline", "c1", "", "c3", "d1", "d2", "e1"}
	ctx := context.Background()
	for split := 0; split <= len(want); split++ {
		for name := range later {
			os.Remove(filepath.Join(dir, name))
		}
		src := in.newSource()
		if err := src.Open(ctx, single(), nil); err != nil {
			t.Fatal(err)
		}
		var got []string
		if split > 6 {
			got = readN(t, src, 6)
			for name, content := range later {
				publish(t, dir, name, content)
			}
			got = append(got, readN(t, src, split-6)...)
		} else {
			got = readN(t, src, split)
		}
		snap, _ := src.Snapshot()
		src.Close()
		for name, content := range later { // found by the restored source, if not before
			publish(t, dir, name, content)
		}
		src = in.newSource()
		if err := src.Open(ctx, single(), snap); err != nil {
			t.Fatal(err)
		}
		got = append(got, readN(t, src, len(want)-len(got))...)
		src.Close()
		if !slices.Equal(got, want) {
			t.Fatalf("snapshot after %d lines: got %q, want %q", split, got, want)
		}
	}
}
