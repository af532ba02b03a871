package file_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/file"
	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/weirtest/conformance"
)

// TestConformance drives the sink through the connector conformance suite:
// random writes, barriers, failed checkpoints, late commits, crashes and
// restores, as the runtime would. Exactly-once must commit every record
// once, at-least-once must lose none. Each schedule writes its own
// directory.
func TestSinkConformance(t *testing.T) {
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
		maxFileSize int64
	}{
		// A buffer of a few records flushes in the middle of epochs.
		{"exactly-once", false, 16, 0},
		// Rolling: files of about three records span checkpoints, are
		// rolled in the middle of epochs and truncated by restores.
		{"exactly-once rolling", false, 16, 20},
		// The default buffer: flushed only at PreCommit, so that a
		// crash cannot leave a partial line (which at-least-once allows).
		{"at-least-once", true, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conformance.TestSink(t, conformance.SinkSuite[string]{
				New: func(dest string) (runtime.Sink[string], error) {
					cfg := file.LinesTo(filepath.Join(base, dest))
					if tc.atLeastOnce {
						cfg.Mode = file.AtLeastOnce
					}
					cfg.BufferSize = tc.bufferSize
					if tc.maxFileSize > 0 {
						cfg.MaxFileSize, cfg.MaxFileAge = tc.maxFileSize, time.Hour
					}
					newSink, err := file.NewSink(cfg)
					if err != nil {
						return nil, err
					}
					return newSink()
				},
				ReadCommitted: func(dest string) ([]string, error) { return readLines(filepath.Join(base, dest)) },
				Records:       records,
				AtLeastOnce:   tc.atLeastOnce,
				HoldsBack:     tc.maxFileSize > 0,
				MaxPending:    4, // the sink has no bound
				Schedules:     3 * conformance.DefaultSchedules,
				Seed:          seed,
			})
		})
	}
	// Every schedule ended with its final checkpoint committed and the
	// sinks closed: nothing may be left staged.
	left, err := filepath.Glob(filepath.Join(base, "*", ".weir", "*", "*"))
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
