package weirtest

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReadLinesSplitsAsScanner checks that readLines, which splits chunks
// itself for speed, passes on the lines bufio.ScanLines splits: ends of
// line "\n" and "\r\n", a last line without one, empty lines, and lines
// longer than its first buffer.
func TestReadLinesSplitsAsScanner(t *testing.T) {
	long := strings.Repeat("x", 3<<20)
	for name, content := range map[string]string{
		"empty":          "",
		"one":            "a\n",
		"no final eol":   "a\nb",
		"crlf":           "a\r\nb\r\n\r\nc\r",
		"empty lines":    "\n\n\na\n\n",
		"lone cr inside": "a\rb\n",
		"long lines":     "a\n" + long + "\n" + long + "b\n" + long,
	} {
		path := filepath.Join(t.TempDir(), "out")
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		var want, got []string
		sc := bufio.NewScanner(strings.NewReader(content))
		sc.Buffer(nil, maxLine)
		for sc.Scan() {
			want = append(want, sc.Text())
		}
		if err := readLines(path, func(l []byte) { got = append(got, string(l)) }); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: readLines passed %d lines, bufio.Scanner %d, or other ones", name, len(got), len(want))
		}
	}
}

// TestReadLinesTooLong checks that a line longer than maxLine is an error,
// as for a bufio.Scanner with a buffer of that size.
func TestReadLinesTooLong(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), maxLine+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := readLines(path, func([]byte) {}); !errors.Is(err, bufio.ErrTooLong) {
		t.Fatalf("a line of %d bytes: %v, want bufio.ErrTooLong", maxLine+1, err)
	}
}
