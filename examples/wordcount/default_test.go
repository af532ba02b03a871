package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestRunTwiceWithoutFlags is the README's first command, twice: the second
// run restores the first one's final checkpoint, which its bundled input
// still matches, and adds nothing to the output.
func TestRunTwiceWithoutFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the example")
	}
	bin := buildWordcount(t)
	dir := t.TempDir()
	run := func() []byte {
		t.Helper()
		cmd := exec.Command(bin)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("wordcount without flags: %v\n%s", err, tail(out))
		}
		out, err := os.ReadFile(onlyFile(t, filepath.Join(dir, "data", "wordcount", "output")))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := run()
	if len(first) == 0 {
		t.Fatal("the first run wrote no output")
	}
	if second := run(); string(second) != string(first) {
		t.Fatalf("the second run changed the output: %d bytes, then %d", len(first), len(second))
	}
}

// onlyFile returns the path of the one committed file in dir (the staging
// directory is a dot directory).
func onlyFile(t *testing.T, dir string) string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "part-*"))
	if err != nil || len(matches) != 1 {
		t.Fatalf("committed output in %s: %v (%v), want one file", dir, matches, err)
	}
	return matches[0]
}
