//go:build linux

package e2e

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/weirtest/orders"
)

// The storm's shape: how many events, how far apart, how many members at
// once. Correctness must not depend on the intervals; they only make the
// storm last a few session timeouts.
const (
	stormEvents      = 12
	stormBatches     = 32 // of input, produced while the storm goes on
	stormBatchGap    = time.Second
	stormMaxAlive    = 4
	stormMinInterval = 300 * time.Millisecond
	stormMaxInterval = 3 * groupSessionTimeout / 2
)

// stormKind is a kind of event of a rebalance storm.
type stormKind int

const (
	stormJoin    stormKind = iota // start a new member
	stormLeave                    // SIGTERM a member: it leaves with final checkpoints
	stormKill                     // SIGKILL a member: its tasks wait for its session to time out
	stormRestart                  // start a killed static member again with its --instance-id
	stormPause                    // SIGSTOP a member, SIGCONT it later: a zombie if its session timed out
)

func (k stormKind) String() string {
	return [...]string{"join", "leave", "kill", "restart", "pause"}[k]
}

// stormMember is one process of the storm.
type stormMember struct {
	p          *proc
	instanceID string // "" for a dynamic member
	gone       string // "" while alive, else "leave" or "kill"
	restarted  bool   // killed, then started again as another stormMember
}

// storm is the members of a rebalance storm, alive or gone.
type storm struct {
	t       *testing.T
	e       *ordersEnv
	rng     *rand.Rand
	args    []string
	members []*stormMember
}

// start starts a member, static (with an --instance-id) or dynamic.
func (s *storm) start(instanceID string) *stormMember {
	args := s.args
	if instanceID != "" {
		args = append(slices.Clone(args), "--instance-id", instanceID)
	}
	m := &stormMember{p: startProc(s.t, s.e.bin, args), instanceID: instanceID}
	s.members = append(s.members, m)
	return m
}

// alive returns the indexes of the members not gone.
func (s *storm) alive() []int {
	var out []int
	for i, m := range s.members {
		if m.gone == "" {
			out = append(out, i)
		}
	}
	return out
}

// signalled returns the indexes of the alive members that started a task:
// they are through their first join, and handle SIGTERM (a process
// signalled before it has its handler dies of the signal).
func (s *storm) signalled() []int {
	return slices.DeleteFunc(s.alive(), func(i int) bool { return len(s.members[i].p.tasksStarted()) == 0 })
}

// restartable returns the indexes of the killed static members not
// restarted yet.
func (s *storm) restartable() []int {
	var out []int
	for i, m := range s.members {
		if m.gone == "kill" && m.instanceID != "" && !m.restarted {
			out = append(out, i)
		}
	}
	return out
}

// possible returns the kinds of event the storm's state allows: between
// one and stormMaxAlive members alive, another one alive at each leave,
// kill or pause.
func (s *storm) possible() []stormKind {
	alive := len(s.alive())
	var out []stormKind
	if alive < stormMaxAlive {
		out = append(out, stormJoin)
		if len(s.restartable()) > 0 {
			out = append(out, stormRestart, stormRestart) // twice as likely: the point of static membership
		}
	}
	if alive > 1 {
		out = append(out, stormPause)
		if len(s.signalled()) > 0 {
			out = append(out, stormKill, stormLeave)
		}
	}
	return out
}

// pick returns a random element of xs.
func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// interval returns a random duration in [lo, hi).
func (s *storm) interval(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)))
}

// pause waits d, or fails the test when it ends first.
func (s *storm) pause(d time.Duration) {
	select {
	case <-time.After(d):
	case <-s.t.Context().Done():
		s.t.FailNow()
	}
}

// event runs one random event and returns its description.
func (s *storm) event(n int) string {
	switch k := pick(s.rng, s.possible()); k {
	case stormJoin:
		id := ""
		if s.rng.IntN(2) == 0 {
			id = fmt.Sprintf("storm-%d", n)
		}
		s.start(id)
		return fmt.Sprintf("%v: member %d (instance id %q)", k, len(s.members)-1, id)
	case stormRestart:
		i := pick(s.rng, s.restartable())
		s.members[i].restarted = true
		s.start(s.members[i].instanceID)
		return fmt.Sprintf("%v: member %d as member %d (instance id %q)", k, i, len(s.members)-1, s.members[i].instanceID)
	case stormLeave:
		i := pick(s.rng, s.signalled())
		s.members[i].p.signal(syscall.SIGTERM)
		s.members[i].gone = "leave"
		return fmt.Sprintf("%v: member %d", k, i)
	case stormKill:
		// NB: only a member that ran tasks: one killed in its first join
		// stays in the development broker's group for the rebalance
		// timeout (60 s), as kfake starts a member's session when it
		// delivers the join's answer (Kafka: when it sends it), which a
		// dead member never reads.
		i := pick(s.rng, s.signalled())
		s.members[i].p.kill()
		s.members[i].gone = "kill"
		return fmt.Sprintf("%v: member %d", k, i)
	default: // stormPause
		i := pick(s.rng, s.alive())
		d := s.interval(groupSessionTimeout/2, 2*groupSessionTimeout)
		s.members[i].p.signal(syscall.SIGSTOP)
		s.pause(d)
		s.members[i].p.signal(syscall.SIGCONT)
		return fmt.Sprintf("%v: member %d for %v", k, i, d.Round(time.Millisecond))
	}
}

// await waits for cond, as awaitGroupCondition does, and fails the test
// at once when a member alive exited: none should before it is stopped.
func (s *storm) await(what string, cond func() bool) {
	s.t.Helper()
	awaitGroupCondition(s.t, what, s.procs(), func() bool {
		for _, i := range s.alive() {
			select {
			case <-s.members[i].p.exited:
				s.t.Fatalf("%s: member %d exited unasked\n%s", what, i, s.members[i].p.log())
			default:
			}
		}
		return cond()
	})
}

// procs returns the processes of the members, for the logs of a failure.
func (s *storm) procs() []*proc {
	out := make([]*proc, len(s.members))
	for i, m := range s.members {
		out[i] = m.p
	}
	return out
}

// produceDuring produces the sample in stormBatches batches, each after a
// random gap of up to stormBatchGap, on a goroutine of its own, so that
// storm events fall on records in flight; the channel returns how it
// ended.
func (e *ordersEnv) produceDuring(ctx context.Context, rng *rand.Rand) <-chan error {
	done := make(chan error, 1)
	go func() {
		for i := range stormBatches {
			pctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := orders.Produce(pctx, e.brokers, kafka.Security{}, "orders", e.chunk(i, stormBatches), 0)
			cancel()
			if err != nil {
				done <- fmt.Errorf("produce batch %d of %d: %w", i, stormBatches, err)
				return
			}
			select {
			case <-time.After(time.Duration(rng.Int64N(int64(stormBatchGap)))):
			case <-ctx.Done():
				done <- ctx.Err()
				return
			}
		}
		done <- nil
	}()
	return done
}

// TestOrdersGroupRebalanceStorm runs the orders example as a group of
// processes through a rebalance storm while its input arrives in batches:
// a seeded schedule of members joining, leaving (SIGTERM), dying
// (SIGKILL), restarting with their --instance-id (static membership) and
// pausing (SIGSTOP, then SIGCONT: a zombie when the pause outlasts its
// session), one to four members alive at any time, every few seconds. Then
// the members alive finish the input and are stopped with SIGTERM. The
// committed output must hold every distinct order exactly once, with every
// customer's running totals right, as in TestOrdersGroup.
func TestOrdersGroupRebalanceStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a group of job processes")
	}
	seed := testseed.Seed(t)
	e := newGroupEnv(t, seed, 6000)
	out, ckpt := "totals-storm", filepath.Join(t.TempDir(), "ckpt")
	s := &storm{t: t, e: e, rng: rand.New(rand.NewPCG(seed, 0x73746f726d)), args: e.groupArgs(out, ckpt)}

	begin := time.Now()
	s.start("storm-a")
	s.start("")
	s.await("members 0 and 1 run every task, each some", func() bool {
		return ownedOnlyBy(s.procs(), 0, 1) && len(s.signalled()) == 2
	})
	t.Logf("members 0 and 1 run the tasks after %v: the storm begins", time.Since(begin).Round(time.Millisecond))
	produced := e.produceDuring(t.Context(), rand.New(rand.NewPCG(seed, 0x696e707574)))
	for n := range stormEvents {
		t.Logf("storm event %d: %s", n, s.event(n))
		s.pause(s.interval(stormMinInterval, stormMaxInterval))
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	t.Logf("storm over after %v", time.Since(begin).Round(time.Millisecond))
	distinct, _ := orders.Count(e.sample)
	s.await(fmt.Sprintf("%d records in %q", distinct, out), e.outputReached(t, out, distinct))
	t.Logf("output complete after %v", time.Since(begin).Round(time.Millisecond))
	s.await("every member alive handles SIGTERM", func() bool { return slices.Equal(s.signalled(), s.alive()) })
	t.Logf("every member alive handles SIGTERM after %v", time.Since(begin).Round(time.Millisecond))
	for _, i := range s.alive() {
		s.members[i].p.signal(syscall.SIGTERM)
	}
	for i, m := range s.members {
		what := fmt.Sprintf("member %d (%s)", i, cmp.Or(m.gone, "alive to the end"))
		if m.gone == "kill" {
			m.p.waitKilled(t, what)
		} else {
			m.p.waitSuccess(t, what)
		}
		t.Logf("%s: ended after %v; started tasks %v, lost its tasks %d times", what, time.Since(begin).Round(time.Millisecond),
			slices.Sorted(maps.Keys(m.p.tasksStarted())), m.p.timesLost())
	}
	e.check(t, out)
}
