//go:build linux

package e2e

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/devbroker/devbrokertest"
	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/weirtest/orders"
)

// groupPartitions is the partition count of the input topic of the group
// test, and so its task count: more than its members, so that each has
// several.
const groupPartitions = 8

// groupSessionTimeout is the members' --group-session-timeout, and the
// shortest the tests' broker accepts (group.min.session.timeout.ms): short,
// so that a dead or paused member's tasks move soon, yet heartbeats (at a
// third of it) stay far apart enough for a loaded machine.
const groupSessionTimeout = 2 * time.Second

// newGroupEnv is newOrdersEnv with an input topic of groupPartitions, and a
// broker that accepts groupSessionTimeout.
func newGroupEnv(t *testing.T, seed uint64, n int) *ordersEnv {
	t.Helper()
	b := devbrokertest.Start(t, devbrokertest.Config{Partitions: 3, GroupMinSessionTimeout: groupSessionTimeout})
	if err := b.CreateTopic("orders", groupPartitions); err != nil {
		t.Fatal(err)
	}
	sample, err := orders.Generate(seed, n, 100, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	return &ordersEnv{brokers: []string{b.Addr()}, sample: sample, bin: binary(t, ordersPkg)}
}

// groupArgs returns the flags of one member of the group "orders-group"
// writing topic out, with the checkpoints of all in ckpt.
func (e *ordersEnv) groupArgs(out, ckpt string) []string {
	return []string{
		"--brokers", e.brokers[0],
		"--input-topic", "orders",
		"--output-topic", out,
		"--transactional-id-prefix", out,
		"--checkpoint-dir", ckpt,
		"--checkpoint-interval", "100ms",
		"--group", "orders-group",
		"--group-session-timeout", groupSessionTimeout.String(),
		"--metrics-addr", "",
		"--log-level", "info",
	}
}

// awaitGroupCondition waits for cond, polled: the members' log lines are
// the only signal of the group's rebalances outside the processes.
func awaitGroupCondition(t *testing.T, what string, members []*proc, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(procTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			var logs string
			for i, p := range members {
				logs += fmt.Sprintf("member %d:\n%s\n", i, p.log())
			}
			t.Fatalf("%s: not within %v\n%s", what, procTimeout, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ownedOnlyBy reports whether every task was last started by one of the
// members want: a task's owner is the member that started it last (the
// members' clocks are the machine's).
func ownedOnlyBy(members []*proc, want ...int) bool {
	owner := map[int]int{}
	last := map[int]time.Time{}
	for i, p := range members {
		for task, at := range p.tasksStarted() {
			if at.After(last[task]) {
				owner[task], last[task] = i, at
			}
		}
	}
	if len(owner) < groupPartitions {
		return false
	}
	for _, i := range owner {
		if !slices.Contains(want, i) {
			return false
		}
	}
	return true
}

// awaitOutput waits until topic holds want records under read_committed.
func (e *ordersEnv) awaitOutput(t *testing.T, topic string, want int, members []*proc) {
	t.Helper()
	awaitGroupCondition(t, fmt.Sprintf("%d records in %q", want, topic), members, e.outputReached(t, topic, want))
}

// outputReached returns the condition "topic holds want records under
// read_committed"; more fails the test.
func (e *ordersEnv) outputReached(t *testing.T, topic string, want int) func() bool {
	return func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		n, err := CountRecords(ctx, e.brokers, topic, ReadCommitted)
		if err != nil {
			t.Fatal(err)
		}
		if n > want {
			t.Fatalf("%d records in %q, more than the %d distinct orders", n, topic, want)
		}
		return n == want
	}
}

// TestOrdersGroup runs the orders example as a group of processes over an
// eight-partition topic (one task per partition) with a shared checkpoint
// directory, while its input arrives: three members, one killed with
// SIGKILL (its tasks move once its session times out), a fourth joining,
// one paused with SIGSTOP past the session timeout (its tasks move; when
// it resumes it is a zombie whose tasks must not write), then all stopped
// with SIGTERM. The committed output must hold every distinct order
// exactly once, with every customer's running totals right, and the tasks
// must have been spread over the members.
func TestOrdersGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a group of job processes")
	}
	seed := testseed.Seed(t)
	e := newGroupEnv(t, seed, 4000)
	out, ckpt := "totals-group", filepath.Join(t.TempDir(), "ckpt")
	start := func() *proc { return startProc(t, e.bin, e.groupArgs(out, ckpt)) }

	members := []*proc{start(), start(), start()}
	ownedBy := func(want ...int) func() bool {
		return func() bool { return ownedOnlyBy(members, want...) }
	}
	awaitGroupCondition(t, "members 0 to 2 run every task, each some", members, func() bool {
		return ownedOnlyBy(members, 0, 1, 2) && !slices.ContainsFunc(members, func(p *proc) bool { return len(p.tasksStarted()) == 0 })
	})
	e.produce(t, e.chunk(0, 4))
	if !members[0].awaitCheckpoints(t, 3) {
		t.Fatalf("member 0 exited\n%s", members[0].log())
	}

	// A crash: member 1's tasks wait for its session to time out, and a
	// new member joins.
	members[1].kill()
	members[1].waitKilled(t, "member 1")
	members = append(members, start())
	e.produce(t, e.chunk(1, 4))
	awaitGroupCondition(t, "members 0, 2 and 3 run every task, member 3 some", members, func() bool {
		return ownedOnlyBy(members, 0, 2, 3) && len(members[3].tasksStarted()) > 0
	})

	// A pause past the session timeout: member 2's tasks move to the live
	// members 0 and 3. When it resumes it is a zombie until it learns it
	// lost them.
	members[2].signal(syscall.SIGSTOP)
	e.produce(t, e.chunk(2, 4))
	awaitGroupCondition(t, "member 2's tasks moved to members 0 and 3", members, ownedBy(0, 3))
	members[2].signal(syscall.SIGCONT)
	e.produce(t, e.chunk(3, 4))

	distinct, _ := orders.Count(e.sample)
	e.awaitOutput(t, out, distinct, members)
	for _, i := range []int{0, 2, 3} {
		members[i].signal(syscall.SIGTERM)
	}
	for _, i := range []int{0, 2, 3} {
		members[i].waitSuccess(t, fmt.Sprintf("member %d", i))
	}
	spread := 0
	for i, p := range members {
		t.Logf("member %d started tasks %v, lost its tasks %d times", i, slices.Sorted(maps.Keys(p.tasksStarted())), p.timesLost())
		if len(p.tasksStarted()) > 0 {
			spread++
		}
	}
	if members[2].timesLost() == 0 {
		t.Errorf("member 2, paused past its session timeout, never lost its tasks: the test did not make a zombie")
	}
	if spread < 2 {
		t.Errorf("only %d members started tasks; want the tasks spread over at least two", spread)
	}
	e.check(t, out)
	// An independent client agrees: kcat (librdkafka) under read_committed
	// sees one record a distinct order, as weir's reader did.
	if kcat, err := exec.LookPath("kcat"); err == nil {
		n := kcatCount(t, kcat, e.brokers[0], out, "read_committed")
		if n != distinct {
			t.Errorf("kcat under read_committed sees %d records in %q, want the %d distinct orders", n, out, distinct)
		}
		t.Logf("kcat under read_committed sees %d records in %q", n, out)
	} else {
		t.Log("kcat not on PATH (apt-get install -y kcat): no cross-check with librdkafka")
	}
}
