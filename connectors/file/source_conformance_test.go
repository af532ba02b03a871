package file_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirstream/weir/connectors/file"
	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/weirtest/conformance"
)

// TestConformance drives the source through the connector conformance
// suite: random Reads, snapshots, crashes and restores. A subtask reads its
// files one after the other, so its whole output is one ordered split.
func TestSourceConformance(t *testing.T) {
	dir := t.TempDir()
	for i := range 5 {
		var b strings.Builder
		for j := range 10 + 15*i {
			switch {
			case j%7 == 3:
				fmt.Fprintf(&b, "f%d-l%d-%s\r\n", i, j, strings.Repeat("x", 40)) // longer than the buffer
			default:
				fmt.Fprintf(&b, "f%d-l%d\n", i, j)
			}
		}
		if i == 2 {
			b.WriteString("f2-last line without newline")
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("in-%d.txt", i)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An empty file: a subtask may own nothing to read.
	if err := os.WriteFile(filepath.Join(dir, "in-5.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	newSource, err := file.NewSource(file.SourceConfig{Paths: []string{filepath.Join(dir, "*.txt")}, MaxLinesPerRead: 7, BufferSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	// With Timestamp (here the line number), a subtask reads its files
	// together: each file is a split, in order.
	merged, err := file.NewSource(file.SourceConfig{Paths: []string{filepath.Join(dir, "*.txt")}, MaxLinesPerRead: 7, BufferSize: 16,
		Timestamp: func(line string) int64 {
			var f, l int64
			fmt.Sscanf(line, "f%d-l%d", &f, &l)
			return l
		}})
	if err != nil {
		t.Fatal(err)
	}
	seed := testseed.Seed(t)
	for _, parallelism := range []int{1, 3} {
		t.Run(fmt.Sprint("parallelism ", parallelism), func(t *testing.T) {
			conformance.TestSource(t, conformance.SourceSuite[string]{
				New:         newSource,
				Parallelism: parallelism,
				Seed:        seed,
			})
		})
		t.Run(fmt.Sprint("timestamp parallelism ", parallelism), func(t *testing.T) {
			conformance.TestSource(t, conformance.SourceSuite[string]{
				New:         merged,
				Split:       func(line string) string { return line[:strings.IndexByte(line, '-')] },
				Parallelism: parallelism,
				Seed:        seed,
			})
		})
	}
}
