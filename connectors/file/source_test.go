package file

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/runtime"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readAll opens src with restored and reads until ErrEndOfInput.
func readAll(t *testing.T, src runtime.Source[string], info runtime.TaskInfo, restored []byte) []string {
	t.Helper()
	ctx := context.Background()
	if err := src.Open(ctx, info, restored); err != nil {
		t.Fatalf("open: %v", err)
	}
	defer src.Close()
	var got []string
	out := runtime.CollectorFunc[string](func(s string) { got = append(got, s) })
	for i := 0; ; i++ {
		err := src.Read(ctx, out)
		if errors.Is(err, runtime.ErrEndOfInput) {
			return got
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if i > 1e6 {
			t.Fatal("source never ends")
		}
	}
}

func single() runtime.TaskInfo { return runtime.TaskInfo{Subtask: 0, Parallelism: 1} }

func TestLineSplitting(t *testing.T) {
	long := strings.Repeat("x", 1000)
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{"empty file", "", nil},
		{"one line no newline", "a", []string{"a"}},
		{"one line", "a\n", []string{"a"}},
		{"final line without newline", "a\nb", []string{"a", "b"}},
		{"crlf", "a\r\nb\r\n", []string{"a", "b"}},
		{"crlf final without newline", "a\r\nb", []string{"a", "b"}},
		{"lone cr is data", "a\rb\nc\r", []string{"a\rb", "c\r"}},
		{"empty lines", "\n\n", []string{"", ""}},
		{"only crlf", "\r\n", []string{""}},
		{"empty line in the middle", "a\n\nb\n", []string{"a", "", "b"}},
		{"long line", long + "\nb\n", []string{long, "b"}},
		{"long final line without newline", "a\n" + long, []string{"a", long}},
		{"long crlf line", long + "\r\n", []string{long}},
		{"line exactly the buffer size", strings.Repeat("y", 16) + "\n" + strings.Repeat("z", 15) + "\n",
			[]string{strings.Repeat("y", 16), strings.Repeat("z", 15)}},
		{"utf8 and nul", "héllo\x00\nwörld\n", []string{"héllo\x00", "wörld"}},
	}
	for _, tc := range tests {
		for _, bufSize := range []int{16, 0} {
			t.Run(fmt.Sprintf("%s/buf=%d", tc.name, bufSize), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "in.txt")
				writeFile(t, path, tc.content)
				in, err := newFiles(SourceConfig{Paths: []string{path}, BufferSize: bufSize, MaxLinesPerRead: 2})
				if err != nil {
					t.Fatal(err)
				}
				got := readAll(t, in.newSource(), single(), nil)
				if !slices.Equal(got, tc.want) {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
			})
		}
	}
}

func TestVeryLongLine(t *testing.T) {
	// Longer than bufio.Scanner's default 64 KiB token limit and than the
	// default 1 MiB buffer.
	long := strings.Repeat("0123456789abcdef", 200_000) // 3.2 MB
	path := filepath.Join(t.TempDir(), "in.txt")
	writeFile(t, path, "a\n"+long+"\nb")
	got := readAll(t, mustLines(path).newSource(), single(), nil)
	if len(got) != 3 || got[0] != "a" || got[1] != long || got[2] != "b" {
		t.Fatalf("got %d lines, want [a <%d bytes> b]", len(got), len(long))
	}
}

func TestMaxLinesPerRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.txt")
	writeFile(t, path, strings.Repeat("l\n", 10_000))
	src := mustLines(path).newSource()
	ctx := context.Background()
	if err := src.Open(ctx, single(), nil); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var counts []int
	for {
		n := 0
		err := src.Read(ctx, runtime.CollectorFunc[string](func(string) { n++ }))
		if errors.Is(err, runtime.ErrEndOfInput) {
			if n != 0 {
				t.Fatalf("ErrEndOfInput with %d records emitted", n)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		counts = append(counts, n)
	}
	if want := []int{4096, 4096, 1808}; !slices.Equal(counts, want) {
		t.Fatalf("lines per Read = %v, want %v", counts, want)
	}
}

// randomFiles writes nfiles files with random lines (some empty, some long,
// some CRLF, some without final newline) and returns their paths and the
// expected lines of each.
func randomFiles(t *testing.T, rng *rand.Rand, dir string, nfiles int) ([]string, [][]string) {
	t.Helper()
	var paths []string
	var lines [][]string
	for i := range nfiles {
		var sb strings.Builder
		var want []string
		n := rng.IntN(50)
		for j := range n {
			var line string
			switch rng.IntN(10) {
			case 0:
				line = ""
			case 1:
				line = strings.Repeat("L", 20+rng.IntN(100))
			default:
				line = fmt.Sprintf("f%d-l%d", i, j)
			}
			want = append(want, line)
			sb.WriteString(line)
			switch {
			case j == n-1 && line != "" && rng.IntN(3) == 0: // no final newline
			case rng.IntN(4) == 0:
				sb.WriteString("\r\n")
			default:
				sb.WriteString("\n")
			}
		}
		path := filepath.Join(dir, fmt.Sprintf("in-%02d.txt", i))
		writeFile(t, path, sb.String())
		paths = append(paths, path)
		lines = append(lines, want)
	}
	return paths, lines
}

// TestSnapshotRestore reads part of the input, snapshots, restores a fresh
// source from the snapshot and checks that the concatenation is every line
// exactly once, for every split point.
func TestSnapshotRestore(t *testing.T) {
	s := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(s, s))
	dir := t.TempDir()
	_, want := randomFiles(t, rng, dir, 4)
	for _, par := range []int{1, 2, 3} {
		for sub := range par {
			info := runtime.TaskInfo{Subtask: sub, Parallelism: par}
			var expect []string
			for i := sub; i < len(want); i += par {
				expect = append(expect, want[i]...)
			}
			for split := 0; ; split++ {
				cfg := SourceConfig{Paths: []string{filepath.Join(dir, "*.txt")}, MaxLinesPerRead: 1 + rng.IntN(7), BufferSize: 16}
				in, err := newFiles(cfg)
				if err != nil {
					t.Fatal(err)
				}
				ctx := context.Background()
				src := in.newSource()
				if err := src.Open(ctx, info, nil); err != nil {
					t.Fatal(err)
				}
				var got []string
				out := runtime.CollectorFunc[string](func(s string) { got = append(got, s) })
				ended := false
				for range split {
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
				// Crash: the old instance is abandoned; a new one resumes.
				src.Close()
				got = append(got, readAll(t, in.newSource(), info, snap)...)
				if !slices.Equal(got, expect) {
					t.Fatalf("parallelism %d subtask %d split after %d reads (seed %d):\ngot  %q\nwant %q",
						par, sub, split, s, got, expect)
				}
				if ended {
					break
				}
			}
		}
	}
}

func TestPartitioning(t *testing.T) {
	s := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(s, s))
	dir := t.TempDir()
	paths, want := randomFiles(t, rng, dir, 5)
	// Give the paths out of order and with a duplicate: the list is sorted
	// and deduplicated.
	in, err := lines(paths[3], filepath.Join(dir, "in-0[0-2].txt"), paths[4], paths[3], paths[1])
	if err != nil {
		t.Fatal(err)
	}
	if got := in.paths; !slices.Equal(got, paths) {
		t.Fatalf("paths = %q, want %q", got, paths)
	}
	for _, par := range []int{1, 2, 3, 5, 7} {
		var all []string
		for sub := range par {
			got := readAll(t, in.newSource(), runtime.TaskInfo{Subtask: sub, Parallelism: par}, nil)
			var expect []string
			for i := sub; i < len(want); i += par {
				expect = append(expect, want[i]...)
			}
			if !slices.Equal(got, expect) {
				t.Fatalf("parallelism %d subtask %d (seed %d): got %q, want %q", par, sub, s, got, expect)
			}
			all = append(all, got...)
		}
		if n := len(slices.Concat(want...)); len(all) != n {
			t.Fatalf("parallelism %d: %d lines in total, want %d", par, len(all), n)
		}
	}
}

func TestConstructionErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.txt"), "a\n")
	if err := os.Mkdir(filepath.Join(dir, "sub.txt"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		paths   []string
		wantErr string
	}{
		{"no paths", nil, "no paths"},
		{"glob matches nothing", []string{filepath.Join(dir, "*.csv")}, `"` + filepath.Join(dir, "*.csv") + `" matches no file`},
		{"one of several globs matches nothing", []string{filepath.Join(dir, "a.txt"), filepath.Join(dir, "z*")}, "z*\" matches no file"},
		{"missing file", []string{filepath.Join(dir, "missing.txt")}, filepath.Join(dir, "missing.txt") + ": no such file"},
		{"bad pattern", []string{filepath.Join(dir, "[")}, "syntax error in pattern"},
		{"directory", []string{filepath.Join(dir, "sub.txt")}, "sub.txt is not a regular file"},
		{"glob matching a directory", []string{filepath.Join(dir, "*.txt")}, "sub.txt is not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := lines(tc.paths...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
	t.Run("wildcards skip dot entries", func(t *testing.T) {
		d := t.TempDir()
		writeFile(t, filepath.Join(d, "part-1"), "p\n")
		writeFile(t, filepath.Join(d, ".hidden"), "h\n")
		if err := os.Mkdir(filepath.Join(d, ".weir"), 0o755); err != nil {
			t.Fatal(err)
		}
		in, err := lines(filepath.Join(d, "*"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := in.paths, []string{filepath.Join(d, "part-1")}; !slices.Equal(got, want) {
			t.Fatalf("paths = %q, want %q", got, want)
		}
		in, err = lines(filepath.Join(d, ".h*"))
		if err != nil || len(in.paths) != 1 {
			t.Fatalf("explicit dot pattern: %v %v", in, err)
		}
		if _, err := lines(filepath.Join(d, "*.weir")); err == nil || !strings.Contains(err.Error(), "matches no file") {
			t.Fatalf("err = %v, want matches no file", err)
		}
	})
	t.Run("unreadable file", func(t *testing.T) {
		path := filepath.Join(dir, "secret.txt")
		writeFile(t, path, "s\n")
		if err := os.Chmod(path, 0); err != nil {
			t.Fatal(err)
		}
		if f, err := os.Open(path); err == nil {
			f.Close()
			t.Skip("running with privileges that ignore file modes")
		}
		_, err := lines(path)
		if err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, os.ErrPermission) {
			t.Fatalf("err = %v, want a permission error naming %s", err, path)
		}
	})
}

func TestRestoreMismatch(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt"), filepath.Join(dir, "c.txt")
	writeFile(t, a, "a1\na2\na3\n")
	writeFile(t, b, "b1\nb2\n")
	ctx := context.Background()
	// A snapshot after the first line of a.
	in, _ := newFiles(SourceConfig{Paths: []string{a, b}, MaxLinesPerRead: 1})
	src := in.newSource()
	if err := src.Open(ctx, single(), nil); err != nil {
		t.Fatal(err)
	}
	if err := src.Read(ctx, runtime.CollectorFunc[string](func(string) {})); err != nil {
		t.Fatal(err)
	}
	mid, _ := src.Snapshot()
	src.Close()

	info2 := runtime.TaskInfo{Subtask: 0, Parallelism: 2}
	tests := []struct {
		name    string
		setup   func()
		files   []string
		info    runtime.TaskInfo
		snap    []byte
		wantErr error
		wantMsg string
	}{
		{"ok", func() {}, []string{a, b}, single(), mid, nil, ""},
		{"file list grew", func() { writeFile(t, c, "c\n") }, []string{a, b, c}, single(), mid, ErrSnapshotMismatch, "covers 2 files"},
		{"other file at the index", func() {}, []string{c, b}, single(), mid, ErrSnapshotMismatch, "was " + a},
		{"parallelism changed", func() {}, []string{a, b}, info2, mid, ErrSnapshotMismatch, "subtask 0 of 1 restored into subtask 0 of 2"},
		{"file size changed", func() { writeFile(t, a, "a1\na2\na3\na4\n") }, []string{a, b}, single(), mid, ErrSnapshotMismatch, "had 9 bytes"},
		{"unknown version", func() {}, []string{a, b}, single(), append([]byte{9}, mid[1:]...), nil, "unknown snapshot version 9"},
		{"truncated", func() {}, []string{a, b}, single(), mid[:len(mid)-3], nil, "corrupt snapshot"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			src := mustLines(tc.files...).newSource()
			err := src.Open(ctx, tc.info, tc.snap)
			src.Close()
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.wantErr, tc.wantMsg)
			}
		})
	}
}

// TestRestoreDetectsChangedFiles changes one input file after a snapshot in
// ways a size check misses, or to a file the snapshot's subtask has not
// opened yet: the restore must be refused, naming the file and the change.
func TestRestoreDetectsChangedFiles(t *testing.T) {
	later := time.Now().Add(time.Hour)
	tests := []struct {
		name   string
		reads  int // Reads of one line each before the snapshot
		change func(a, b string)
		file   string // "a" or "b": the one named
		msg    string
	}{
		{"current file rewritten with the same size", 1, func(a, _ string) { writeFile(t, a, "x1\na2\na3\n") }, "a", "content changed"},
		{"unopened file appended to", 1, func(_, b string) { writeFile(t, b, "b1\nb2\nb3\n") }, "b", "had 6 bytes, now 9"},
		{"unopened file touched", 1, func(_, b string) { os.Chtimes(b, later, later) }, "b", "modified at"},
		{"finished file rewritten", 4, func(a, _ string) { writeFile(t, a, "a1\na2\na4\n") }, "a", "content changed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b, snap := snapshotAfter(t, tc.reads)
			tc.change(a, b)
			err := mustLines(a, b).newSource().Open(context.Background(), single(), snap)
			named := map[string]string{"a": a, "b": b}[tc.file]
			if !errors.Is(err, ErrSnapshotMismatch) || !strings.Contains(err.Error(), named) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("restore after the change: err = %v, want ErrSnapshotMismatch naming %s with %q", err, named, tc.msg)
			}
		})
	}
}

// snapshotAfter writes files a (3 lines) and b (2 lines) in a new directory
// and returns them with the snapshot of a source after reads Reads of one
// line each.
func snapshotAfter(t *testing.T, reads int) (a, b string, snap []byte) {
	t.Helper()
	dir := t.TempDir()
	a, b = filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")
	writeFile(t, a, "a1\na2\na3\n")
	writeFile(t, b, "b1\nb2\n")
	ctx := context.Background()
	in, _ := newFiles(SourceConfig{Paths: []string{a, b}, MaxLinesPerRead: 1})
	src := in.newSource()
	if err := src.Open(ctx, single(), nil); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for range reads {
		if err := src.Read(ctx, runtime.CollectorFunc[string](func(string) {})); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return a, b, snap
}

// TestFileChangedWhileRunning changes a file the source has not reached yet:
// the source fails when it reaches it, before emitting any of its lines.
func TestFileChangedWhileRunning(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")
	writeFile(t, a, "a1\n")
	writeFile(t, b, "b1\n")
	ctx := context.Background()
	src := mustLines(a, b).newSource()
	if err := src.Open(ctx, single(), nil); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	writeFile(t, b, "b2\n")
	var got []string
	err := src.Read(ctx, runtime.CollectorFunc[string](func(l string) { got = append(got, l) }))
	if !errors.Is(err, ErrSnapshotMismatch) || !strings.Contains(err.Error(), b) {
		t.Fatalf("err = %v, want ErrSnapshotMismatch naming %s", err, b)
	}
	if slices.Contains(got, "b2") {
		t.Fatalf("emitted %q from the changed file", got)
	}
	if !errors.Is(err, runtime.ErrUnrecoverable) {
		t.Fatalf("err = %v: a restart would meet the same file; want runtime.ErrUnrecoverable", err)
	}
}

// TestRestoreVersion1Snapshot restores a snapshot of the format before
// fingerprints (position, current path and size), as older checkpoints hold.
func TestRestoreVersion1Snapshot(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")
	writeFile(t, a, "a1\na2\na3\n")
	writeFile(t, b, "b1\nb2\n")
	v1 := []byte{1, 1, 0, 2, 0, 3, byte(len(a))} // after "a1\n" of a
	v1 = append(append(v1, a...), 9)
	got := readAll(t, mustLines(a, b).newSource(), single(), v1)
	if want := []string{"a2", "a3", "b1", "b2"}; !slices.Equal(got, want) {
		t.Fatalf("restored from a version 1 snapshot: %q, want %q", got, want)
	}
	v1[len(v1)-1] = 8 // another size of a
	err := mustLines(a, b).newSource().Open(context.Background(), single(), v1)
	if !errors.Is(err, ErrSnapshotMismatch) || !strings.Contains(err.Error(), "had 8 bytes") {
		t.Fatalf("version 1 snapshot with another size: err = %v", err)
	}
}

func TestReadAfterCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.txt")
	writeFile(t, path, "a\n")
	src := mustLines(path).newSource()
	ctx, cancel := context.WithCancel(context.Background())
	if err := src.Open(ctx, single(), nil); err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	cancel()
	if err := src.Read(ctx, runtime.CollectorFunc[string](func(string) {})); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func BenchmarkRead(b *testing.B) {
	path := filepath.Join(b.TempDir(), "in.txt")
	var sb strings.Builder
	for i := range 100_000 {
		fmt.Fprintf(&sb, "line number %d with some payload\n", i)
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	in := mustLines(path)
	b.SetBytes(int64(sb.Len()))
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		src := in.newSource()
		if err := src.Open(ctx, single(), nil); err != nil {
			b.Fatal(err)
		}
		out := runtime.CollectorFunc[string](func(string) {})
		for src.Read(ctx, out) == nil {
		}
		src.Close()
	}
}

// lines is newFiles of paths with the default configuration.
func lines(paths ...string) (*files, error) {
	return newFiles(SourceConfig{Paths: paths})
}

// mustLines is lines for inputs known to exist.
func mustLines(paths ...string) *files {
	f, err := lines(paths...)
	if err != nil {
		panic(err)
	}
	return f
}
