// Command scaleout measures a job spread over processes (--group, see
// runtime.Cluster): keyed counting over Kafka, input topic → KeyBy →
// count → exactly-once Kafka sink, run by 1, 2 and 4 member processes of
// one group, and the same workload as a single-process job (no group,
// parallelism 2), whose keyed exchange stays in memory instead of crossing
// a repartition topic. It prints records/s, the ratio to one member, the
// CPU seconds of the members and of the broker, the cores they used and
// the CPU µs a record side by side.
//
//	go run ./benchmarks/cmd/scaleout [--records N] [--keys K] [--partitions P] [--members 1,2,4] [--kills N] [--quick] [--member-log-level info]
//
// The broker is a development broker in this process; the members are
// this binary re-executed with a hidden --member flag, so they are real
// processes, with a shared local --checkpoint-dir as on one machine. The
// input topic (P partitions, so P tasks) holds N records keyed over K keys,
// spread round robin, so that every record crosses the exchange to the
// task owning its key. A run lasts from the first input record a member
// reads to the moment the output topic holds N committed records (read
// under read_committed as they commit); the members then stop with a final
// checkpoint and the output is counted again: exactly N, or the run fails.
// CPU is counted from the members' start to the last output record: the
// members' from /proc (their rusage at exit where there is no /proc,
// which adds the final checkpoint), and "broker" is this process's: the
// broker and the reader of the output. Cores used is that CPU over the
// same wall time. The time members take to join the group and rebalance
// after the first one started reading is inside the measured run.
//
// With --kills N it then runs 2 members of a job of --failover-tasks tasks
// with --failover-keys keys of state each, on a broker of its own: once
// they have counted every key, a producer keeps feeding the input (about
// 10k records/s), and N times one member is killed with SIGKILL and timed
// until every task it owned has completed a checkpoint on the survivor,
// sampling the survivor's /api/status every 20 ms; a new member then
// joins and the group settles before the next kill. Each failover is
// split into detection (the kill to the survivor's assignment of the
// tasks: the session timeout, --session-timeout, the group's wait for a
// silent member, and the rebalance), restore (to the last of the tasks
// started from its checkpoint) and catch-up (to the last of their first
// checkpoints: the input that arrived meanwhile, and the checkpoint).
// The broker accepts session timeouts down to --session-timeout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/benchmarks"
	"github.com/weirstream/weir/internal/devbroker"
	"github.com/weirstream/weir/weirtest/verify"
)

func main() {
	var a memberArgs
	member := flag.Bool("member", false, "internal: run as a member process of the benchmark")
	flag.StringVar(&a.brokers, "brokers", "", "internal (--member): broker address")
	flag.StringVar(&a.input, "input", "", "internal (--member): input topic")
	flag.StringVar(&a.output, "output", "", "internal (--member): output topic")
	flag.StringVar(&a.group, "group", "", "internal (--member): group; empty: the whole job in one process")
	flag.StringVar(&a.dir, "checkpoint-dir", "", "internal (--member): checkpoint directory, shared by the members")
	flag.IntVar(&a.parallelism, "parallelism", 2, "parallelism of the single-process job")
	flag.DurationVar(&a.interval, "checkpoint-interval", time.Second, "checkpoint interval")
	flag.StringVar(&a.logLevel, "member-log-level", "warn", "the members' log level on stderr (debug, info, warn, error); info tells each task's restore and checkpoints, for a look inside a failover")
	flag.DurationVar(&a.session, "session-timeout", 6*time.Second, "the members' --group-session-timeout of the throughput runs (the dev broker's minimum is 6s, as Kafka's default group.min.session.timeout.ms)")
	records := flag.Int("records", 1_000_000, "input records")
	keys := flag.Int("keys", 100_000, "distinct keys")
	partitions := flag.Int("partitions", 8, "partitions of the input topic: the job's tasks")
	memberList := flag.String("members", "1,2,4", "comma-separated member counts to run")
	quick := flag.Bool("quick", false, "a short run: 200k records over 20k keys, 1 and 2 members")
	kills := flag.Int("kills", 0, "then kill one member of 2 with SIGKILL this many times mid-run and time until its tasks checkpoint on the other")
	failoverTasks := flag.Int("failover-tasks", 8, "with --kills: the tasks (input partitions) of the failover job")
	failoverKeys := flag.Int("failover-keys", 1_000_000, "with --kills: keys of state per task of the failover job")
	failoverSession := flag.Duration("failover-session-timeout", 1500*time.Millisecond, "with --kills: the members' --group-session-timeout, and the broker's minimum")
	throughput := flag.Bool("throughput", true, "run the throughput comparison (--members and the single process); false: only --kills")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up on a run after this long")
	flag.Parse()
	if *member {
		if err := runMember(a); err != nil {
			fmt.Fprintln(os.Stderr, "scaleout member:", err)
			os.Exit(1)
		}
		return
	}
	if *quick {
		*records, *keys, *memberList = 200_000, 20_000, "1,2"
	}
	counts, err := parseCounts(*memberList)
	if err == nil {
		c := benchConfig{records: *records, keys: *keys, partitions: *partitions, members: counts,
			parallelism: a.parallelism, interval: a.interval, session: a.session, timeout: *timeout, memberLog: a.logLevel,
			failover: failoverConfig{kills: *kills, tasks: *failoverTasks, keysPerTask: *failoverKeys, session: *failoverSession}}
		err = run(c, *throughput)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scaleout:", err)
		os.Exit(1)
	}
}

// parseCounts parses --members.
func parseCounts(list string) ([]int, error) {
	var counts []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--members %q: want comma-separated positive member counts, like 1,2,4", list)
		}
		counts = append(counts, n)
	}
	return counts, nil
}

type benchConfig struct {
	records, keys, partitions int
	members                   []int
	parallelism               int
	interval, session         time.Duration
	timeout                   time.Duration
	failover                  failoverConfig
	memberLog                 string // the members' --member-log-level; "" for warn
}

// run runs the throughput comparison if throughput is set, then the
// failover runs if c asks for kills.
func run(c benchConfig, throughput bool) error {
	f := c.failover
	switch {
	case !throughput && f.kills == 0:
		return errors.New("--throughput=false without --kills: nothing to run")
	case f.kills < 0 || f.kills > 0 && (f.tasks < 2 || f.keysPerTask < 1):
		return fmt.Errorf("--kills %d, --failover-tasks %d, --failover-keys %d: want no negative kills, at least 2 tasks (one a member) and 1 key a task",
			f.kills, f.tasks, f.keysPerTask)
	}
	if throughput {
		if err := bench(c); err != nil {
			return err
		}
	}
	if c.failover.kills > 0 {
		return failover(c)
	}
	return nil
}

// startBroker starts a development broker whose topics have partitions
// partitions by default and that accepts group session timeouts down to
// session (capped at the dev broker's default minimum).
func startBroker(partitions int, session time.Duration) (*devbroker.Broker, error) {
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return devbroker.Start(devbroker.Config{Addr: "127.0.0.1:0", Partitions: partitions, Logger: quiet,
		GroupMinSessionTimeout: min(max(session, devbroker.MinGroupMinSessionTimeout), devbroker.DefaultGroupMinSessionTimeout)})
}

// result is one measured run.
type result struct {
	label            string
	members          int // 0: the single-process job
	rate             float64
	memberCPU, other time.Duration
	wall             time.Duration // of the CPU counts
}

// bench runs the throughput comparison.
func bench(c benchConfig) error {
	b, err := startBroker(c.partitions, c.session)
	if err != nil {
		return err
	}
	defer b.Close()
	const input = "input"
	if err := b.CreateTopic(input, c.partitions); err != nil {
		return err
	}
	start := time.Now()
	if err := fill(b.Addr(), input, c.records, c.keys); err != nil {
		return err
	}
	fmt.Printf("input: %d records over %d keys in %d partitions, written in %v\n",
		c.records, c.keys, c.partitions, time.Since(start).Round(time.Millisecond))
	var results []result
	for _, n := range c.members {
		r, err := runOnce(c, b, input, n)
		if err != nil {
			return fmt.Errorf("%d members: %w", n, err)
		}
		results = append(results, r)
		fmt.Printf("%-28s %10.0f records/s\n", r.label+":", r.rate)
	}
	r, err := runOnce(c, b, input, 0)
	if err != nil {
		return fmt.Errorf("single process: %w", err)
	}
	results = append(results, r)
	fmt.Printf("%-28s %10.0f records/s\n", r.label+":", r.rate)
	printTable(c, results)
	return nil
}

// printTable prints the runs side by side.
func printTable(c benchConfig, results []result) {
	fmt.Printf("machine: %s/%s, %s, %d CPUs; %s; checkpoints every %v\n", goruntime.GOOS, goruntime.GOARCH,
		benchmarks.CPUModel(), goruntime.NumCPU(), loadAverage(), c.interval)
	var one float64
	for _, r := range results {
		if r.members == 1 {
			one = r.rate
		}
	}
	fmt.Printf("%-28s %10s %6s %8s %11s %11s %11s %14s\n", "", "records/s", "vs 1", "wall", "member CPU", "broker CPU", "cores used", "CPU µs/record")
	for _, r := range results {
		ratio := "-"
		if one > 0 {
			ratio = fmt.Sprintf("%.2f", r.rate/one)
		}
		cpu := r.memberCPU + r.other
		fmt.Printf("%-28s %10.0f %6s %7.1fs %10.1fs %10.1fs %11.2f %14.2f\n", r.label, r.rate, ratio, r.wall.Seconds(),
			r.memberCPU.Seconds(), r.other.Seconds(), cores(cpu, r.wall), cpu.Seconds()*1e6/float64(c.records))
	}
}

// cores returns how many cores cpu seconds over wall seconds kept busy.
func cores(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return cpu.Seconds() / wall.Seconds()
}

// loadAverage returns the machine's load averages (/proc/loadavg), which
// say how shared the machine was.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load unknown"
	}
	f := strings.Fields(string(b))
	return "load average " + strings.Join(f[:min(3, len(f))], " ")
}

// fill writes n records keyed "k<i mod keys>" with small values, round
// robin over the partitions, so that the input is not partitioned by key.
func fill(broker, topic string, n, keys int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for i := range n {
		wg.Add(1)
		cl.Produce(context.Background(), &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%keys), Value: fmt.Appendf(nil, "%d", i)},
			func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					first = cmpOr(first, err)
					mu.Unlock()
				}
				wg.Done()
			})
	}
	wg.Wait()
	if first != nil {
		return fmt.Errorf("fill %q: %w", topic, first)
	}
	return nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// runOnce runs the job with members processes of one group (0: the
// single-process job) until its output holds every record.
func runOnce(c benchConfig, b *devbroker.Broker, input string, members int) (result, error) {
	res := result{members: members, label: fmt.Sprintf("%d member(s), --group", members)}
	output, group := fmt.Sprintf("output-%d", members), fmt.Sprintf("scaleout-%d", members)
	if members == 0 {
		res.label, group, members = fmt.Sprintf("one process, parallelism %d", c.parallelism), "", 1
	}
	if err := b.CreateTopic(output, c.partitions); err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp("", "weir-scaleout-*")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	cpuBefore, start := selfCPU(), time.Now()
	procs, err := startMembers(c, b.Addr(), input, output, group, dir, members, c.session)
	if err != nil {
		return res, err
	}
	last, countErr := awaitOutput(ctx, b.Addr(), output, c.records, procs.exited)
	res.other, res.wall = selfCPU()-cpuBefore, last.Sub(start)
	memberCPU, live := procs.cpu()
	res.memberCPU, err = procs.stop()
	if countErr != nil {
		return res, countErr
	}
	if err != nil {
		return res, err
	}
	if live {
		res.memberCPU = memberCPU
	}
	first, ok := procs.firstRead()
	if !ok {
		return res, errors.New("no member reported its first read")
	}
	res.rate = float64(c.records) / last.Sub(first).Seconds()
	n := 0
	if err := verify.ReadTopic(context.Background(), verify.ReadConfig{Brokers: []string{b.Addr()}, Topic: output}, func(verify.Record) { n++ }); err != nil {
		return res, err
	}
	if n != c.records {
		return res, fmt.Errorf("output %q holds %d committed records after the members stopped, want %d", output, n, c.records)
	}
	return res, nil
}

// awaitOutput reads topic under read_committed until it holds want
// records, and returns when the last of them was read. It fails if a
// member exits first.
func awaitOutput(ctx context.Context, broker, topic string, want int, exited <-chan error) (time.Time, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return time.Time{}, err
	}
	defer cl.Close()
	n := 0
	for n < want {
		select {
		case err := <-exited:
			return time.Time{}, fmt.Errorf("a member exited after %d of %d output records: %w", n, want, err)
		default:
		}
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return time.Time{}, fmt.Errorf("output %q: %d of %d records committed: %w", topic, n, want, err)
		}
		fetches.EachRecord(func(*kgo.Record) { n++ })
	}
	if n > want {
		return time.Time{}, fmt.Errorf("output %q holds %d committed records, want %d: duplicates", topic, n, want)
	}
	return time.Now(), nil
}

// selfCPU returns the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
