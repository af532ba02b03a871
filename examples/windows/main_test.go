package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/weirstream/weir/runtime"
)

// TestRun runs the example as 'go run ./examples/windows' does, smaller, and
// checks its outputs against the generated views: every distinct view is
// counted in its page's window or reported late, never both; every distinct
// view is in exactly one session.
//
// With one source subtask, watermarks travel in-band with the views in a
// fixed order, so which views are late is deterministic, and the test checks
// that the example shows late outputs. With two, a view is late only if the
// other subtask's watermark has moved on too, which depends on scheduling.
func TestRun(t *testing.T) {
	for _, parallelism := range []int{1, 2} {
		t.Run(fmt.Sprintf("parallelism-%d", parallelism), func(t *testing.T) { testRun(t, parallelism) })
	}
}

func testRun(t *testing.T, parallelism int) {
	dir := t.TempDir()
	const views = 5000
	var stderr bytes.Buffer
	p, cfg, code := setup([]string{"--views", strconv.Itoa(views), "--output", filepath.Join(dir, "out"),
		"--checkpoint-dir", filepath.Join(dir, "ckpt"), "--checkpoint-interval", "20ms", "--parallelism", strconv.Itoa(parallelism), "--log-level", "warn"}, &stderr)
	if p == nil {
		t.Fatalf("exit code %d\n%s", code, &stderr)
	}
	if err := runtime.Run(t.Context(), p, cfg); err != nil {
		t.Fatalf("%v\n%s", err, &stderr)
	}
	distinct := map[uint64]bool{}
	for n := range uint64(views) {
		distinct[viewAt(n).ID] = true
	}
	// A window emitted again after a late view replaces its earlier count:
	// keep the last (largest) count per page and window.
	counts := map[string]int{}
	for _, l := range lines(t, filepath.Join(dir, "out", "counts")) {
		f := strings.Split(l, "\t")
		n, _ := strconv.Atoi(f[2])
		counts[f[0]+" "+f[1]] = max(counts[f[0]+" "+f[1]], n)
	}
	counted := 0
	for _, n := range counts {
		counted += n
	}
	late := map[string]int{}
	for _, l := range lines(t, filepath.Join(dir, "out", "late")) {
		late[strings.Split(l, "\t")[0]]++
	}
	// Every 500th view is 30 s behind, past its window's allowed lateness.
	if parallelism == 1 && late["page-counts"] != views/500 {
		t.Fatalf("%d views late for their page count, want %d", late["page-counts"], views/500)
	}
	if parallelism == 1 && late["user-sessions"] == 0 {
		t.Fatalf("late views %v: the example does not show late sessions", late)
	}
	if counted+late["page-counts"] != len(distinct) {
		t.Fatalf("%d views counted + %d late = %d, want the %d distinct views", counted, late["page-counts"], counted+late["page-counts"], len(distinct))
	}
	inSessions := 0
	for _, l := range lines(t, filepath.Join(dir, "out", "sessions")) {
		n, _ := strconv.Atoi(strings.Split(l, "\t")[2])
		inSessions += n
	}
	if inSessions+late["user-sessions"] != len(distinct) {
		t.Fatalf("sessions hold %d views + %d late, want %d", inSessions, late["user-sessions"], len(distinct))
	}
}

// lines returns the committed lines of a file sink directory.
func lines(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || e.IsDir() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			out = append(out, sc.Text())
		}
		f.Close()
	}
	return out
}
