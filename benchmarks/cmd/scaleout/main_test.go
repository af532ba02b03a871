package main

import (
	"os"
	"testing"
	"time"

	"github.com/weirstream/weir/runtime"
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

// TestFailoverSmallRun runs the failover part on a small state: two
// members, one kill, the survivor taking over the killed member's tasks.
func TestFailoverSmallRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts member processes")
	}
	err := run(benchConfig{parallelism: 2, interval: 200 * time.Millisecond, timeout: 3 * time.Minute,
		failover: failoverConfig{kills: 1, tasks: 2, keysPerTask: 500, session: time.Second}}, false)
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses; utime 250, stime 50 ticks.
	stat := "4242 (scale (out) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 0 0"
	if got, err := parseStatCPU(stat); err != nil || got != 3*time.Second {
		t.Fatalf("parseStatCPU = %v, %v; want 3s", got, err)
	}
	for _, bad := range []string{"", "4242 (x) S 1 2", "4242 (x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 x 50"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q): no error", bad)
		}
	}
}

// TestTakeoverSteps checks how the survivor's samples become the phases
// of a takeover: detection to the first task assigned, restore to the
// last started, catch-up to the last checkpointed, a step seen in the same
// sample as a later one counting as reached then.
func TestTakeoverSteps(t *testing.T) {
	kill := time.Unix(1000, 0)
	at := func(ms int) time.Time { return kill.Add(time.Duration(ms) * time.Millisecond) }
	owned := func(ts ...runtime.TaskStatus) runtime.MemberStatus { return runtime.MemberStatus{Owned: ts} }
	var s takeoverSteps
	tasks := []int{3, 5}
	samples := []struct {
		st   runtime.MemberStatus
		ms   int
		done bool
	}{
		{owned(runtime.TaskStatus{Task: 1, Started: true}), 100, false},
		{owned(runtime.TaskStatus{Task: 3}), 1500, false},
		{owned(runtime.TaskStatus{Task: 3, Started: true}, runtime.TaskStatus{Task: 5}), 1700, false},
		{owned(runtime.TaskStatus{Task: 3, Started: true, LastCheckpointCompleted: at(-50)}, runtime.TaskStatus{Task: 5, Started: true}), 1900, false},
		{owned(runtime.TaskStatus{Task: 3, Started: true, LastCheckpointCompleted: at(2500)}, runtime.TaskStatus{Task: 5, LastCheckpointCompleted: at(2900)}), 3000, true},
	}
	for i, sm := range samples {
		if done := s.observe(sm.st, tasks, kill, at(sm.ms)); done != sm.done {
			t.Fatalf("sample %d: done %v, want %v", i, done, sm.done)
		}
	}
	got := s.takeover(kill)
	want := takeover{assigned: 1500 * time.Millisecond, restored: 1900 * time.Millisecond, checkpointed: 3000 * time.Millisecond}
	if got != want {
		t.Fatalf("takeover %+v, want %+v", got, want)
	}
	if got.detection()+got.restore()+got.catchUp() != got.checkpointed {
		t.Fatalf("phases %v + %v + %v do not add up to %v", got.detection(), got.restore(), got.catchUp(), got.checkpointed)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, f := range []failoverConfig{{}, {kills: 1, tasks: 1, keysPerTask: 10}, {kills: 1, tasks: 4}, {kills: -1, tasks: 4, keysPerTask: 1}} {
		if err := run(benchConfig{failover: f}, false); err == nil {
			t.Errorf("run with --throughput=false and %+v: no error", f)
		}
	}
}
