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

	"github.com/weirstream/weir/internal/devbroker"
	"github.com/weirstream/weir/runtime"
)

// failover runs the job with 2 members while input keeps flowing, and
// c.kills times kills one of them with SIGKILL, times until every task it
// owned has completed a checkpoint on the survivor, then starts a new
// member and waits for the group to settle. It prints p50, p99 and max.
func failover(c benchConfig, b *devbroker.Broker) error {
	const input, output, group = "input-failover", "output-failover", "scaleout-failover"
	for _, t := range []string{input, output} {
		if err := b.CreateTopic(t, c.partitions); err != nil {
			return err
		}
	}
	if err := fill(b.Addr(), input, c.records, c.keys); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	stopFeed := feed(ctx, b.Addr(), input, c.keys)
	defer stopFeed()
	dir, err := os.MkdirTemp("", "weir-scaleout-failover-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	procs, err := startMembers(c, b.Addr(), input, output, group, dir, 2)
	if err != nil {
		return err
	}
	defer procs.stop()
	live := slices.Clone(procs.ms)
	var times []time.Duration
	for k := range c.kills {
		if err := settled(ctx, live, c.partitions, procs.exited); err != nil {
			return err
		}
		victim, survivor := live[k%2], live[1-k%2]
		st, err := status(ctx, victim)
		if err != nil {
			return err
		}
		start := time.Now()
		procs.kill(victim)
		if err := awaitTakeover(ctx, survivor, owned(st), start, procs.exited); err != nil {
			return fmt.Errorf("kill %d: %w", k+1, err)
		}
		times = append(times, time.Since(start))
		fmt.Printf("kill %d: member's %d tasks checkpointed on the survivor after %v\n", k+1, len(owned(st)), times[k].Round(time.Millisecond))
		if live[k%2], err = procs.start(); err != nil {
			return err
		}
	}
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	fmt.Printf("failover (SIGKILL of 1 member of 2, %d keys, input flowing) over %d kills: p50 %v p99 %v max %v; beyond the session timeout (%v, how long the group waits for a silent member): p50 %v p99 %v\n",
		c.keys, len(times), r(pct(times, 50)), r(pct(times, 99)), r(pct(times, 100)), c.session, r(pct(times, 50)-c.session), r(pct(times, 99)-c.session))
	return nil
}

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
// checkpoint completed after since.
func awaitTakeover(ctx context.Context, survivor *proc, tasks []int, since time.Time, exited <-chan error) error {
	if len(tasks) == 0 {
		return errors.New("the killed member owned no tasks")
	}
	return poll(ctx, exited, "the survivor to take over", func() (bool, error) {
		st, err := status(ctx, survivor)
		if err != nil {
			return false, err
		}
		for _, task := range tasks {
			i := slices.IndexFunc(st.Owned, func(t runtime.TaskStatus) bool { return t.Task == task })
			if i < 0 || !st.Owned[i].LastCheckpointCompleted.After(since) {
				return false, nil
			}
		}
		return true, nil
	})
}

// pct returns the p-th percentile of ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	return s[min(len(s)-1, max(0, (len(s)*p+99)/100-1))]
}
