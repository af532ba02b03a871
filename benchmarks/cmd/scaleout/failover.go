package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/runtime"
)

// failoverConfig is what the failover runs do (--kills and the
// --failover flags).
type failoverConfig struct {
	kills, tasks, keysPerTask int
	session                   time.Duration // the members' and the broker's minimum
}

// takeover is one failover, timed from the kill: when the survivor had
// been assigned the killed member's tasks (the first of them), had
// restored them (the last to start) and had completed a checkpoint of each
// (the last).
type takeover struct {
	assigned, restored, checkpointed time.Duration
}

// The phases of a takeover; they add up to checkpointed.
func (t takeover) detection() time.Duration { return t.assigned }
func (t takeover) restore() time.Duration   { return t.restored - t.assigned }
func (t takeover) catchUp() time.Duration   { return t.checkpointed - t.restored }

// failover runs the job with 2 members on a broker of its own until they
// have counted every key, then keeps input flowing and c.failover.kills
// times kills one of them with SIGKILL, times until every task it owned
// has completed a checkpoint on the survivor, then starts a new member and
// waits for the group to settle. It prints each phase's p50, p99 and max.
func failover(c benchConfig) error {
	f := c.failover
	b, err := startBroker(f.tasks, f.session)
	if err != nil {
		return err
	}
	defer b.Close()
	const input, output, group = "input-failover", "output-failover", "scaleout-failover"
	for _, t := range []string{input, output} {
		if err := b.CreateTopic(t, f.tasks); err != nil {
			return err
		}
	}
	keys := f.tasks * f.keysPerTask
	start := time.Now()
	if err := fill(b.Addr(), input, keys, keys); err != nil {
		return err
	}
	fmt.Printf("failover input: %d keys, one record each, in %d partitions, written in %v\n", keys, f.tasks, time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "weir-scaleout-failover-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	start = time.Now()
	procs, err := startMembers(c, b.Addr(), input, output, group, dir, 2, f.session)
	if err != nil {
		return err
	}
	defer procs.stop()
	if _, err := awaitOutput(ctx, b.Addr(), output, keys, procs.exited); err != nil {
		return err
	}
	fmt.Printf("state: %d keys (%d a task) counted by 2 members in %v\n", keys, f.keysPerTask, time.Since(start).Round(time.Millisecond))
	stopFeed := feed(ctx, b.Addr(), input, keys)
	defer stopFeed()
	live := slices.Clone(procs.ms)
	var runs []takeover
	for k := range f.kills {
		if err := settled(ctx, live, f.tasks, procs.exited); err != nil {
			return err
		}
		victim, survivor := live[k%2], live[1-k%2]
		st, err := status(ctx, victim)
		if err != nil {
			return err
		}
		tasks := owned(st)
		start := time.Now()
		procs.kill(victim)
		t, err := awaitTakeover(ctx, survivor, tasks, start, procs.exited)
		if err != nil {
			return fmt.Errorf("kill %d: %w", k+1, err)
		}
		runs = append(runs, t)
		fmt.Printf("kill %d: the member's %d tasks recovered on the survivor after %v: detection %v, restore %v, catch-up %v\n",
			k+1, len(tasks), ms(t.checkpointed), ms(t.detection()), ms(t.restore()), ms(t.catchUp()))
		if live[k%2], err = procs.start(); err != nil {
			return err
		}
	}
	printFailover(c, runs)
	return nil
}

// printFailover prints the p50, p99 and max of each phase of runs.
func printFailover(c benchConfig, runs []takeover) {
	f := c.failover
	fmt.Printf("failover: SIGKILL of 1 member of 2, %d tasks of %d keys, session timeout %v, checkpoints every %v, input flowing; %d kills; %s\n",
		f.tasks, f.keysPerTask, f.session, c.interval, len(runs), loadAverage())
	fmt.Printf("%-12s %9s %9s %9s\n", "", "p50", "p99", "max")
	for _, ph := range []struct {
		name string
		of   func(takeover) time.Duration
	}{
		{"total", func(t takeover) time.Duration { return t.checkpointed }},
		{"detection", takeover.detection},
		{"restore", takeover.restore},
		{"catch-up", takeover.catchUp},
	} {
		ds := make([]time.Duration, len(runs))
		for i, t := range runs {
			ds[i] = ph.of(t)
		}
		fmt.Printf("%-12s %9v %9v %9v\n", ph.name, ms(pct(ds, 50)), ms(pct(ds, 99)), ms(pct(ds, 100)))
	}
}

// ms rounds d to milliseconds, for printing.
func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// feed keeps producing records to topic, about 10k a second, until the
// returned function is called.
func feed(ctx context.Context, broker, topic string, keys int) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
		if err != nil {
			return
		}
		defer cl.Close()
		tick := time.NewTicker(10 * time.Millisecond) // a pace, not a synchronization
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for j := range 100 {
				cl.Produce(ctx, &kgo.Record{Key: fmt.Appendf(nil, "k%d", (i*100+j)%keys)}, nil)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// status returns m's /api/status.
func status(ctx context.Context, m *proc) (runtime.MemberStatus, error) {
	var st runtime.MemberStatus
	var addr string
	select {
	case addr = <-m.status:
		m.status <- addr // kept for the next call
	case <-ctx.Done():
		return st, fmt.Errorf("a member's status server: %w", ctx.Err())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// owned returns the tasks in st.
func owned(st runtime.MemberStatus) []int {
	var tasks []int
	for _, t := range st.Owned {
		tasks = append(tasks, t.Task)
	}
	return tasks
}

// pollEvery is how often the failover runs sample /api/status: the
// resolution of the failover times.
const pollEvery = 20 * time.Millisecond

// poll calls done every pollEvery until it reports true or fails, or a
// member exits.
func poll(ctx context.Context, exited <-chan error, what string, done func() (bool, error)) error {
	for {
		ok, err := done()
		if ok || err != nil {
			return err
		}
		select {
		case err := <-exited:
			return fmt.Errorf("waiting for %s: %w", what, err)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}

// settled waits until live members own every task between them, each
// with a completed checkpoint, and each member owns some.
func settled(ctx context.Context, live []*proc, tasks int, exited <-chan error) error {
	return poll(ctx, exited, "the group to settle", func() (bool, error) {
		n := 0
		for _, m := range live {
			st, err := status(ctx, m)
			if err != nil {
				return false, err
			}
			if len(st.Owned) == 0 {
				return false, nil
			}
			for _, t := range st.Owned {
				if t.LastCheckpoint == 0 {
					return false, nil
				}
				n++
			}
		}
		return n == tasks, nil
	})
}

// awaitTakeover waits until survivor owns every one of tasks with a
// checkpoint completed after since, and returns when it reached each step.
func awaitTakeover(ctx context.Context, survivor *proc, tasks []int, since time.Time, exited <-chan error) (takeover, error) {
	if len(tasks) == 0 {
		return takeover{}, errors.New("the killed member owned no tasks")
	}
	var steps takeoverSteps
	err := poll(ctx, exited, "the survivor to take over", func() (bool, error) {
		st, err := status(ctx, survivor)
		if err != nil {
			return false, err
		}
		return steps.observe(st, tasks, since, time.Now()), nil
	})
	return steps.takeover(since), err
}

// takeoverSteps records when the survivor's status first showed each task
// assigned, started and checkpointed.
type takeoverSteps struct {
	assigned, started, checkpointed map[int]time.Time
}

// observe records what st, read at now, shows of tasks, and reports
// whether each has completed a checkpoint after since.
func (s *takeoverSteps) observe(st runtime.MemberStatus, tasks []int, since, now time.Time) bool {
	if s.assigned == nil {
		s.assigned, s.started, s.checkpointed = map[int]time.Time{}, map[int]time.Time{}, map[int]time.Time{}
	}
	see := func(m map[int]time.Time, task int) {
		if _, ok := m[task]; !ok {
			m[task] = now
		}
	}
	for _, task := range tasks {
		i := slices.IndexFunc(st.Owned, func(t runtime.TaskStatus) bool { return t.Task == task })
		if i < 0 {
			continue
		}
		see(s.assigned, task)
		// NB: a step seen before the previous one was (both between two
		// samples) counts as reached with it.
		if t := st.Owned[i]; t.Started || t.LastCheckpointCompleted.After(since) {
			see(s.started, task)
		}
		if st.Owned[i].LastCheckpointCompleted.After(since) {
			see(s.checkpointed, task)
		}
	}
	return len(s.checkpointed) == len(tasks)
}

// takeover returns the steps as a takeover since the kill: the first
// assignment, the last start, the last checkpoint.
func (s *takeoverSteps) takeover(since time.Time) takeover {
	first := func(m map[int]time.Time) (t time.Time) {
		for _, v := range m {
			if t.IsZero() || v.Before(t) {
				t = v
			}
		}
		return t
	}
	last := func(m map[int]time.Time) (t time.Time) {
		for _, v := range m {
			if v.After(t) {
				t = v
			}
		}
		return t
	}
	return takeover{
		assigned:     first(s.assigned).Sub(since),
		restored:     last(s.started).Sub(since),
		checkpointed: last(s.checkpointed).Sub(since),
	}
}

// pct returns the p-th percentile of ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	return s[min(len(s)-1, max(0, (len(s)*p+99)/100-1))]
}
