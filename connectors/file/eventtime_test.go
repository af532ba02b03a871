package file_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/file"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// A job reads two files with interleaved time ranges in one subtask and
// counts lines in event-time windows: with SourceConfig.Timestamp no line
// comes out of the window's late stream, and every window counts all its
// lines. (Read one after the other, the second file's lines were all late.)
// The stream's strategy has its own Timestamp function, or none: the
// source gives each line's time.
func TestEventTimeWindowOverTwoFiles(t *testing.T) {
	in := t.TempDir()
	var a, b strings.Builder
	for i := range 50 {
		fmt.Fprintf(&a, "%d\n", 2*i)   // a: 0, 2, …, 98 ms
		fmt.Fprintf(&b, "%d\n", 2*i+1) // b: 1, 3, …, 99 ms
	}
	for name, content := range map[string]string{"a.log": a.String(), "b.log": b.String()} {
		if err := os.WriteFile(filepath.Join(in, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ts := func(line string) int64 { n, _ := strconv.ParseInt(line, 10, 64); return n }
	for _, tc := range []struct {
		name     string
		strategy runtime.WatermarkStrategy[string]
	}{
		{"strategy with Timestamp", runtime.Monotonic(ts)},
		{"source's times", runtime.WatermarkStrategy[string]{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := countTwoFiles(t, in, ts, tc.strategy)
			var want []string
			for w := int64(0); w < 100; w += 10 {
				want = append(want, fmt.Sprintf("%v 10", operators.TimeWindow{Start: w, End: w + 10}))
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// countTwoFiles runs the job of TestEventTimeWindowOverTwoFiles over the
// files in dir and returns its committed lines.
func countTwoFiles(t *testing.T, dir string, ts func(string) int64, strategy runtime.WatermarkStrategy[string]) []string {
	t.Helper()
	newLines, err := file.NewSource(file.SourceConfig{Paths: []string{filepath.Join(dir, "*.log")}, MaxLinesPerRead: 4, Timestamp: ts})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	newSink, err := file.NewSink(file.LinesTo(out))
	if err != nil {
		t.Fatal(err)
	}
	p := runtime.NewPipeline("two-files")
	lines := runtime.From(p, "lines", newLines, runtime.WithWatermarks(strategy)).SetParallelism(1)
	counts, late := operators.WindowAggregate(
		operators.Window(operators.KeyBy(lines, func(string) string { return "all" }), "per-10ms", operators.Tumbling(10*time.Millisecond)),
		operators.WindowAggregateFunc[string, string, int64, string]{
			Add:    func(n int64, _ string, _ bool) int64 { return n + 1 },
			Result: func(_ string, w operators.TimeWindow, n int64) string { return fmt.Sprintf("%v %d", w, n) },
		}, state.Int64)
	runtime.To(runtime.Merge(counts, "with-late", operators.Map(late, func(l string) string { return "late " + l })), "out", newSink)
	cfg := runtime.Config{CheckpointDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := runtime.Run(context.Background(), p, cfg); err != nil {
		t.Fatal(err)
	}
	return readDir(t, out)
}

// readDir returns the lines of the committed files in dir (names not
// starting with a dot).
func readDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if s := strings.TrimSuffix(string(b), "\n"); s != "" {
			lines = append(lines, strings.Split(s, "\n")...)
		}
	}
	return lines
}
