package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadConfigurationExitsWithUsageError checks that the job binary refuses
// bad flags and unusable directories with exit status 2 and a message naming
// what to fix.
func TestBadConfigurationExitsWithUsageError(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example")
	}
	bin := buildWordcount(t)
	dir := t.TempDir()
	blocker := filepath.Join(dir, "a-file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"malformed interval", []string{"--checkpoint-interval", "soon"}, "checkpoint-interval"},
		{"zero parallelism", []string{"--parallelism", "0"}, "--parallelism"},
		{"unknown flag", []string{"--no-such-flag"}, "no-such-flag"},
		{"checkpoint dir is a file", []string{"--checkpoint-dir", blocker}, blocker},
		{"checkpoint dir under a file", []string{"--checkpoint-dir", filepath.Join(blocker, "ckpt")}, blocker},
		{"missing input", []string{"--input", filepath.Join(dir, "nothing-*.txt")}, "nothing-*.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--output", filepath.Join(dir, "out"), "--checkpoint-dir", filepath.Join(dir, "ckpt")}, tc.args...)
			cmd := exec.Command(bin, args...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("want exit status 2, got %v\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("message does not mention %q:\n%s", tc.want, out)
			}
		})
	}
}
