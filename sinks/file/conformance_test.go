package file_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/sinks/file"
	"github.com/weirstream/weir/weirtest/conformance"
)

// TestConformance drives the sink through the connector conformance suite:
// random writes, barriers, failed checkpoints, late commits, crashes and
// restores, as the runtime would. Exactly-once must commit every record
// once, at-least-once must lose none. Each schedule writes its own
// directory.
func TestConformance(t *testing.T) {
	seed := testseed.Seed(t)
	records := make([]string, 150)
	for i := range records {
		records[i] = fmt.Sprintf("r%04d", i)
	}
	base := t.TempDir()
	for _, tc := range []struct {
		name        string
		atLeastOnce bool
		bufferSize  int
	}{
		// A buffer of a few records flushes in the middle of epochs.
		{"exactly-once", false, 16},
		// The default buffer: flushed only at PreCommit, so that a
		// crash cannot leave a partial line (which at-least-once allows).
		{"at-least-once", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conformance.TestSink(t, conformance.SinkSuite[string]{
				New: func(dest string) (runtime.Sink[string], error) {
					cfg := file.Lines(filepath.Join(base, dest))
					cfg.AtLeastOnce, cfg.BufferSize = tc.atLeastOnce, tc.bufferSize
					return file.New(cfg)
				},
				ReadCommitted: func(dest string) ([]string, error) { return readLines(filepath.Join(base, dest)) },
				Records:       records,
				AtLeastOnce:   tc.atLeastOnce,
				MaxPending:    4, // the sink has no bound
				Schedules:     3 * conformance.DefaultSchedules,
				Seed:          seed,
			})
		})
	}
	// Every schedule ended with its final checkpoint committed and the
	// sinks closed: nothing may be left staged.
	left, err := filepath.Glob(filepath.Join(base, "*", file.StagingDir, "*", "*"))
	if err != nil || len(left) > 0 {
		t.Fatalf("staged files left after the final commit: %q %v", left, err)
	}
}

// readLines reads dir as `cat dir/*` does: the lines of every file whose
// name does not start with a dot. A missing dir holds no lines.
func readLines(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSuffix(string(b), "\n"); s != "" {
			lines = append(lines, strings.Split(s, "\n")...)
		}
	}
	return lines, nil
}
