package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/tasklineage"
)

// fakeCluster is a Cluster whose membership the test drives: it calls the
// member's callbacks as a group's rebalances would.
type fakeCluster struct {
	tasks int
	ev    chan string
	req   chan JoinRequest // the member's, once joined
}

func newFakeCluster(tasks int, ev chan string) *fakeCluster {
	return &fakeCluster{tasks: tasks, ev: ev, req: make(chan JoinRequest, 1)}
}

func (c *fakeCluster) Join(ctx context.Context, req JoinRequest) (Membership, error) {
	c.req <- req
	return &fakeMembership{c: c}, nil
}

func (c *fakeCluster) Exchange(context.Context, string, int) (SinkFactory[ExchangeRecord], SourceFactory[ExchangeRecord], error) {
	return nil, nil, errors.New("no exchanges in this test")
}

type fakeMembership struct{ c *fakeCluster }

func (m *fakeMembership) Tasks() int       { return m.c.tasks }
func (m *fakeMembership) MemberID() string { return "member-1" }
func (m *fakeMembership) Leave(context.Context) error {
	m.c.ev <- "leave"
	return nil
}

// fakeTasks stands for runTask: each task reports its start and how it
// ended on ev, and fails when the test sends on its fail channel.
type fakeTasks struct {
	ev   chan string
	mu   sync.Mutex
	fail map[int]chan error
	dirs map[int][]string // checkpoint dirs, by task
}

func (f *fakeTasks) failure(i int) chan error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail[i] == nil {
		f.fail[i] = make(chan error, 1)
	}
	return f.fail[i]
}

func (f *fakeTasks) run(ctx context.Context, p *Pipeline, cfg Config, t taskRun) error {
	f.mu.Lock()
	f.dirs[t.Index] = append(f.dirs[t.Index], t.CheckpointDir)
	f.mu.Unlock()
	ecfg, err := cfg.engine()
	if err != nil {
		return err
	}
	if ecfg.MetricsAddr != "" || ecfg.BeforeManifest == nil || t.Tasks != 4 {
		return fmt.Errorf("task %d: metrics addr %q, epoch check %v, tasks %d", t.Index, ecfg.MetricsAddr, ecfg.BeforeManifest != nil, t.Tasks)
	}
	if err := ecfg.BeforeManifest(1); err != nil {
		return err
	}
	cfg.Events.Started(StartInfo{})
	f.ev <- fmt.Sprint("start ", t.Index)
	select {
	case <-ctx.Done():
		f.ev <- fmt.Sprint("cancelled ", t.Index)
		return ctx.Err()
	case <-t.Stop:
		cfg.Events.CheckpointCompleted(CheckpointInfo{ID: 2, Final: true})
		f.ev <- fmt.Sprint("final ", t.Index)
		return nil
	case err := <-f.failure(t.Index):
		f.ev <- fmt.Sprint("failed ", t.Index)
		return err
	}
}

// expect reads n events and compares them, in any order, to want.
func expect(t *testing.T, ev chan string, want ...string) {
	t.Helper()
	var got []string
	for range want {
		select {
		case e := <-ev:
			got = append(got, e)
		case <-time.After(time.Minute): // a guard, not a synchronization
			t.Fatalf("events %q, then nothing for a minute; want %q", got, want)
		}
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
}

// expectNow checks that the next event is there already.
func expectNow(t *testing.T, ev chan string, want string) {
	t.Helper()
	select {
	case e := <-ev:
		if e != want {
			t.Fatalf("event %q, want %q", e, want)
		}
	default:
		t.Fatalf("no event yet, want %q: the callback returned before the task ended", want)
	}
}

// startMember runs a member of group "orders" over a fake cluster of 4
// tasks and fake tasks, and returns its callbacks and the end of the run.
func startMember(t *testing.T, ctx context.Context, stop chan struct{}) (JoinRequest, *fakeTasks, chan string, chan error) {
	t.Helper()
	ev := make(chan string, 64)
	cluster := newFakeCluster(4, ev)
	cfg := Config{
		CheckpointDir: filepath.Join(t.TempDir(), "checkpoints"), Group: "orders", Cluster: cluster, Stop: stop,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m, cleanup, err := newMember(ctx, NewPipeline("orders"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	tasks := &fakeTasks{ev: ev, fail: map[int]chan error{}, dirs: map[int][]string{}}
	m.run = tasks.run
	done := make(chan error, 1)
	go func() { done <- m.runMember(ctx) }()
	return <-cluster.req, tasks, ev, done
}

// TestMemberFollowsMembership drives a member through assignment,
// revocation, loss and a stop: revoked tasks end with a final checkpoint
// before Revoked returns, lost ones at once before Lost returns, a task
// assigned again runs in a new epoch, and a stop takes final checkpoints of
// every task before leaving the group.
func TestMemberFollowsMembership(t *testing.T) {
	stop := make(chan struct{})
	req, tasks, ev, done := startMember(t, t.Context(), stop)
	ctx := t.Context()
	req.Assigned(ctx, []int{0, 1, 2})
	expect(t, ev, "start 0", "start 1", "start 2")

	req.Revoked(ctx, []int{1})
	expectNow(t, ev, "final 1")
	req.Lost(ctx, []int{2})
	expectNow(t, ev, "cancelled 2")

	req.Assigned(ctx, []int{1})
	expect(t, ev, "start 1")
	if got := tasks.dirs[1]; len(got) != 2 || filepath.Base(got[0]) != "epoch-1" || filepath.Base(got[1]) != "epoch-2" {
		t.Fatalf("task 1 ran in %q, want epoch-1, then epoch-2", got)
	}

	close(stop)
	expect(t, ev, "final 0", "final 1")
	expect(t, ev, "leave") // only after the final checkpoints
	if err := <-done; err != nil {
		t.Fatalf("member ended with %v after a stop, want nil", err)
	}
}

// TestMemberTaskFailureEndsMember: a task failing for good stops the
// member's other tasks with final checkpoints, leaves the group and returns
// the task's error.
func TestMemberTaskFailureEndsMember(t *testing.T) {
	req, tasks, ev, done := startMember(t, t.Context(), nil)
	req.Assigned(t.Context(), []int{0, 3})
	expect(t, ev, "start 0", "start 3")
	boom := errors.New("sink refused the records")
	tasks.failure(3) <- boom
	expect(t, ev, "failed 3")
	expect(t, ev, "final 0")
	expect(t, ev, "leave")
	if err := <-done; !errors.Is(err, boom) {
		t.Fatalf("member ended with %v, want the task's error", err)
	}
}

// TestMemberSupersededTaskStops: a task whose epoch another member
// superseded stops on this member without failing it.
func TestMemberSupersededTaskStops(t *testing.T) {
	stop := make(chan struct{})
	req, tasks, ev, done := startMember(t, t.Context(), stop)
	req.Assigned(t.Context(), []int{0, 1})
	expect(t, ev, "start 0", "start 1")
	tasks.failure(1) <- fmt.Errorf("checkpoint 9 declined: %w", tasklineage.ErrSuperseded)
	expect(t, ev, "failed 1")
	close(stop)
	expect(t, ev, "final 0")
	expect(t, ev, "leave")
	if err := <-done; err != nil {
		t.Fatalf("member ended with %v, want nil: a superseded task is not a failure", err)
	}
}

// TestMemberTaskFailingAfterTakeoverStops: a task that fails after another
// member claimed it (the new owner's sinks fenced this one's producers
// before the group told this member) stops on this member without failing
// it; the failure is the takeover's.
func TestMemberTaskFailingAfterTakeoverStops(t *testing.T) {
	stop := make(chan struct{})
	req, tasks, ev, done := startMember(t, t.Context(), stop)
	req.Assigned(t.Context(), []int{0, 1})
	expect(t, ev, "start 0", "start 1")
	root := filepath.Dir(filepath.Dir(tasks.dirs[1][0])) // <root>/task-1/epoch-1
	lineage, err := tasklineage.Open(t.Context(), root, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lineage.Claim(t.Context(), 1, "member-2", ""); err != nil {
		t.Fatal(err)
	}
	tasks.failure(1) <- errors.New("kafka sink: producer fenced: a newer producer has the transactional id")
	expect(t, ev, "failed 1")
	close(stop)
	expect(t, ev, "final 0")
	expect(t, ev, "leave")
	if err := <-done; err != nil {
		t.Fatalf("member ended with %v, want nil: a task taken over is not a failure", err)
	}
}

// TestMemberCancelled: cancelling Run's context stops the tasks at once and
// leaves the group.
func TestMemberCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	req, _, ev, done := startMember(t, ctx, nil)
	req.Assigned(ctx, []int{2})
	expect(t, ev, "start 2")
	cancel()
	expect(t, ev, "cancelled 2")
	expect(t, ev, "leave")
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("member ended with %v, want context.Canceled", err)
	}
}

// TestMemberRefusesTaskOutOfRange: a task beyond the job's task count fails
// the member, naming both.
func TestMemberRefusesTaskOutOfRange(t *testing.T) {
	req, _, ev, done := startMember(t, t.Context(), nil)
	req.Assigned(t.Context(), []int{0})
	expect(t, ev, "start 0")
	req.Assigned(t.Context(), []int{4})
	expect(t, ev, "final 0")
	expect(t, ev, "leave")
	if err := <-done; err == nil || !strings.Contains(err.Error(), "assigned task 4 of a job of 4 tasks") {
		t.Fatalf("member ended with %v, want the task out of range named", err)
	}
}

// TestCheckSavepointGroup: a savepoint of another group is refused only for
// a job with exchanges (the in-flight records are in the other group's
// repartition topics); a job without exchanges, the savepoint's own group
// and a savepoint that names no group start.
func TestCheckSavepointGroup(t *testing.T) {
	g := &tasklineage.GroupSavepoint{Path: "/savepoints/group-savepoint-1", Group: "wc"}
	old := &tasklineage.GroupSavepoint{Path: "/savepoints/group-savepoint-0"}
	for _, tc := range []struct {
		name      string
		g         *tasklineage.GroupSavepoint
		group     string
		exchanges bool
		refused   bool
	}{
		{"same group", g, "wc", true, false},
		{"another group, exchanges", g, "wc-blue", true, true},
		{"another group, no exchanges", g, "wc-blue", false, false},
		{"no group recorded", old, "wc-blue", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkSavepointGroup(tc.g, tc.group, tc.exchanges)
			if refused := err != nil; refused != tc.refused {
				t.Fatalf("checkSavepointGroup = %v, want refused %v", err, tc.refused)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, tasklineage.ErrGroupSavepoint) {
				t.Errorf("%v does not wrap ErrGroupSavepoint", err)
			}
			for _, want := range []string{tc.g.Path, `group "wc"`, `group "wc-blue"`, "--group wc "} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%v does not name %q", err, want)
				}
			}
		})
	}
}

// TestHasExchanges: a pipeline without a keyed edge has no exchange in
// group mode. (One with: TestGroupSavepointRefused, "another group".)
func TestHasExchanges(t *testing.T) {
	p := NewPipeline("plain")
	To(From(p, "src", func() (Source[int], error) { return &idleSource{}, nil }), "sink", func() (Sink[int], error) { return nopSink{}, nil })
	if p.hasExchanges() {
		t.Error("a pipeline without a keyed edge has exchanges")
	}
}
