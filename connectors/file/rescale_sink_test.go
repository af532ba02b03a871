package file_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/file"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
)

// A job copies the lines of the files published in a watched directory to
// a rolling file sink whose files span checkpoints. Each stage publishes a
// file or two, copies some lines and is stopped: the source idles at the
// end of what is published and never ends, so the sink's files stay in
// progress. The next stage restores at another parallelism, 2 → 3 → 1 →
// 2: the new sink subtasks commit the old ones' in-progress files
// (runtime.TwoPhaseSealer), and the files found, read and part read move
// to their new owners. The last stage rolls files at every checkpoint and
// stops once all lines are committed: each must be, once.
func TestRollingSinkRescales(t *testing.T) {
	in, out, ckpt := t.TempDir(), t.TempDir(), t.TempDir()
	newSource, err := file.NewSource(file.SourceConfig{Paths: []string{filepath.Join(in, "*.txt")},
		MonitorInterval: 5 * time.Millisecond, MaxLinesPerRead: 64})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	publish := func(f int) {
		var b strings.Builder
		for l := range 20000 {
			line := fmt.Sprintf("f%d-l%d", f, l)
			want = append(want, line)
			b.WriteString(line + "\n")
		}
		tmp := filepath.Join(in, fmt.Sprintf(".in-%d", f))
		if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(in, fmt.Sprintf("in-%d.txt", f))); err != nil {
			t.Fatal(err)
		}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for stage, par := range []int{2, 3, 1, 2} {
		publish(2 * stage)
		publish(2*stage + 1)
		last := stage == 3
		sinkCfg := file.LinesTo(out)
		sinkCfg.MaxFileSize, sinkCfg.MaxFileAge = 1<<40, time.Hour
		if last {
			sinkCfg.MaxFileAge = time.Nanosecond // roll at every checkpoint
		}
		newSink, err := file.NewSink(sinkCfg)
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var once sync.Once
		var copied atomic.Int64
		p := runtime.NewPipeline("copy")
		lines := runtime.From(p, "lines", newSource)
		runtime.To(operators.Map(lines, func(l string) string {
			if !last && copied.Add(1) == 1000 {
				once.Do(func() { close(stop) })
			}
			return l
		}), "out", newSink)
		cfg := runtime.Config{CheckpointDir: ckpt, Parallelism: par, CheckpointInterval: 10 * time.Millisecond, Stop: stop, Logger: logger}
		if last {
			cfg.Events.CheckpointCompleted = func(runtime.CheckpointInfo) {
				if committedLines(out) >= len(want) {
					once.Do(func() { close(stop) })
				}
			}
		}
		// NB: only a bound on a hang (a lost line keeps the last stage
		// waiting), not a timing assumption.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err = runtime.Run(ctx, p, cfg)
		cancel()
		if err != nil {
			t.Fatalf("stage %d at parallelism %d: %v (%d of %d lines committed)", stage, par, err, len(readDir(t, out)), len(want))
		}
		if staged, _ := filepath.Glob(filepath.Join(out, ".weir", "*", "inprogress-*")); !last && len(staged) == 0 {
			t.Fatalf("stage %d at parallelism %d stopped without in-progress files: nothing to take over", stage, par)
		}
	}
	got := readDir(t, out)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		dup, lost := diff(got, want)
		t.Fatalf("committed %d lines, want %d: %d duplicates (e.g. %q), %d lost (e.g. %q)", len(got), len(want), len(dup), first(dup), len(lost), first(lost))
	}
}

// committedLines counts the lines of the committed files in dir, as
// readDir reads them, from any goroutine (an unreadable file counts none).
func committedLines(dir string) int {
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	n := 0
	for _, name := range names {
		if b, err := os.ReadFile(name); err == nil {
			n += strings.Count(string(b), "\n")
		}
	}
	return n
}

// diff returns what sorted got has more (dup) and less (lost) than sorted
// want.
func diff(got, want []string) (dup, lost []string) {
	i, j := 0, 0
	for i < len(got) || j < len(want) {
		switch {
		case j == len(want) || (i < len(got) && got[i] < want[j]):
			dup = append(dup, got[i])
			i++
		case i == len(got) || got[i] > want[j]:
			lost = append(lost, want[j])
			j++
		default:
			i, j = i+1, j+1
		}
	}
	return dup, lost
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
