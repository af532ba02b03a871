package main

import (
	"os"
	"testing"
	"time"
)

// TestMain lets the test binary serve as a member process: the benchmark
// re-executes itself (os.Executable) with --member.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "--member" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBenchSmallRun runs the whole benchmark on a small input: two member
// processes of a group and the single-process job, each of whose output
// bench counts under read_committed (exactly the input's record count).
func TestBenchSmallRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts member processes")
	}
	err := bench(benchConfig{records: 20_000, keys: 1_000, partitions: 4, members: []int{2}, parallelism: 2,
		interval: 200 * time.Millisecond, session: 6 * time.Second, timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseCounts(t *testing.T) {
	if got, err := parseCounts("1, 2,4"); err != nil || len(got) != 3 || got[2] != 4 {
		t.Fatalf("parseCounts(1, 2,4) = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "1,x", "-2"} {
		if _, err := parseCounts(bad); err == nil {
			t.Errorf("parseCounts(%q): no error", bad)
		}
	}
}

func TestPct(t *testing.T) {
	ds := []time.Duration{5, 1, 3, 2, 4}
	for p, want := range map[int]time.Duration{50: 3, 99: 5, 100: 5, 0: 1} {
		if got := pct(ds, p); got != want {
			t.Errorf("pct(%v, %d) = %v, want %v", ds, p, got, want)
		}
	}
}
