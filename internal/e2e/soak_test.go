//go:build soak

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/internal/devbroker/devbrokertest"
	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/weirtest/orders"
)

// The soak (make soak; build tag soak, never part of make test) runs the
// end-to-end jobs through the crash-test kit in rounds, in turn, until
// WEIR_SOAK_KILLS kills (default 1000) have landed in all, with pauses and
// a crash at a random point of the checkpoint protocol in every round, while
// the Kafka broker is restarted every WEIR_SOAK_BROKER_EVERY (default 20s)
// on its address and data directory. It prints per job the kills, pauses,
// in-process restarts, records, duplicates, losses and different records.
// A short round (weirtest.ErrTooShort: the job finished before all planned
// crashes landed) counts what landed and its comparison, and is not a
// failure.

// soakJob is one job of the soak: a kit Job without its counts, and the
// share of a round's kills it takes.
type soakJob struct {
	name  string
	job   weirtest.Job
	share float64
}

// soakTotals sums the reports of a job's rounds.
type soakTotals struct {
	rounds, short, failed                      int
	kills, protocol, pauses, restarts, records int
	duplicates, lost, different                int
}

func (s *soakTotals) add(r *weirtest.Report) {
	s.rounds++
	s.kills += r.Kills
	s.protocol += r.ProtocolCrashes
	s.pauses += r.Pauses
	s.restarts += r.Restarts
	s.records += r.CrashedRecords
	s.duplicates += r.Duplicates
	s.lost += r.Lost
	s.different += r.Different
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func TestSoak(t *testing.T) {
	total := envInt(t, "WEIR_SOAK_KILLS", 1000)
	perRound := envInt(t, "WEIR_SOAK_ROUND_KILLS", 25)
	brokerEvery := time.Duration(envInt(t, "WEIR_SOAK_BROKER_EVERY_SECONDS", 20)) * time.Second
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 0x50a6))
	began := time.Now()

	b := startSoakBroker(t)
	jobs := []soakJob{soakWordcount(t, rng), soakOrders(t, b), soakEventTime(t)}
	restarts := b.restartEvery(t, brokerEvery)

	totals := make([]soakTotals, len(jobs))
	points := []string{"before-manifest:2", "after-manifest:2", "after-snapshot:3", "before-manifest:3", "after-manifest:4"}
	kills, failedInRow := 0, 0
	for round := 0; kills < total; round++ {
		i := round % len(jobs)
		job := jobs[i].job
		job.Kills = min(max(1, int(float64(perRound)*jobs[i].share)), total-kills)
		job.Pauses = (job.Kills + 1) / 2
		job.MaxPause = 500 * time.Millisecond
		job.ProtocolCrashes = []string{points[rng.IntN(len(points))]}
		job.Seed = rng.Uint64()
		job.WorkDir = t.TempDir()
		job.Timeout = 5 * time.Minute
		r, err := weirtest.Check(t.Context(), job)
		if r != nil {
			totals[i].add(r)
			kills += r.Kills
		}
		if errors.Is(err, weirtest.ErrTooShort) {
			// Fewer crashes than planned landed, the outputs were compared.
			totals[i].short++
			t.Logf("round %d (%s): %v", round, jobs[i].name, err)
			err = nil
		}
		if err != nil {
			totals[i].failed++
			t.Errorf("round %d (%s): %v", round, jobs[i].name, err)
			if failedInRow++; failedInRow == 3 || r == nil {
				break // the soak itself is broken, not a round
			}
		} else {
			failedInRow = 0
		}
		t.Logf("round %d %-9s seed %d: %d kills, %d pauses, %d restarts, %d records: %d duplicates, %d lost, %d different (%v so far, %d kills)",
			round, jobs[i].name, job.Seed, r.Kills, r.Pauses, r.Restarts, r.CrashedRecords, r.Duplicates, r.Lost, r.Different,
			time.Since(began).Round(time.Second), kills)
	}
	restarts.stop()

	var out bytes.Buffer
	w := tabwriter.NewWriter(&out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "job\trounds\tshort rounds\tkills\tat protocol points\tpauses\tin-process restarts\trecords\tduplicates\tlost\tdifferent\tfailed rounds\t")
	var sum soakTotals
	for i, s := range totals {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", jobs[i].name, s.rounds, s.short, s.kills, s.protocol, s.pauses, s.restarts, s.records, s.duplicates, s.lost, s.different, s.failed)
		sum.rounds, sum.short, sum.kills, sum.protocol, sum.pauses = sum.rounds+s.rounds, sum.short+s.short, sum.kills+s.kills, sum.protocol+s.protocol, sum.pauses+s.pauses
		sum.restarts, sum.records, sum.failed = sum.restarts+s.restarts, sum.records+s.records, sum.failed+s.failed
		sum.duplicates, sum.lost, sum.different = sum.duplicates+s.duplicates, sum.lost+s.lost, sum.different+s.different
	}
	fmt.Fprintf(w, "total\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", sum.rounds, sum.short, sum.kills, sum.protocol, sum.pauses, sum.restarts, sum.records, sum.duplicates, sum.lost, sum.different, sum.failed)
	w.Flush()
	fmt.Printf("soak, seed %d: %d broker restarts, %v\n%s", seed, restarts.count(), time.Since(began).Round(time.Second), out.String())
}

// soakWordcount is the wordcount example on random text.
func soakWordcount(t *testing.T, rng *rand.Rand) soakJob {
	dir := t.TempDir()
	for f := range 2 {
		var b bytes.Buffer
		for range 150000 {
			for w := range 12 {
				if w > 0 {
					b.WriteByte(' ')
				}
				fmt.Fprintf(&b, "w%x", int(3000*rng.Float64()*rng.Float64()))
			}
			b.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("in-%d.txt", f)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return soakJob{name: "wordcount", share: 1, job: weirtest.Job{
		Binary: binary(t, "github.com/weirstream/weir/examples/wordcount"),
		Args: []string{"--input", filepath.Join(dir, "*.txt"), "--output", "{dir}/out", "--checkpoint-dir", "{dir}/ckpt",
			"--checkpoint-interval", "{interval}", "--parallelism", "2", "--metrics-addr", ""},
		Output: weirtest.Files{Dir: "{dir}/out"},
	}}
}

// soakOrders is the orders example on sample orders, a tenth duplicated,
// in one partition and at parallelism 1 (startSoakBroker says why).
func soakOrders(t *testing.T, b *soakBroker) soakJob {
	batch, err := orders.Generate(1, 400_000, 1000, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if err := orders.Produce(ctx, []string{b.addr}, kafka.Security{}, "orders", batch, 0); err != nil {
		t.Fatal(err)
	}
	// NB: a checkpoint of orders takes seconds while the soak's file jobs
	// load the disk (its pre-commit is done in 70 ms; the rest is the
	// state's fsynced snapshot), and its unpaced source reads on meanwhile:
	// a start often reads all that is left before its first checkpoint
	// completes, and finishes before its kill can land. So orders takes few
	// kills per round, and its rounds are often short (fewer kills landed
	// than planned, outputs compared all the same).
	return soakJob{name: "orders", share: 0.1, job: weirtest.Job{
		Binary: binary(t, "github.com/weirstream/weir/examples/orders"),
		Args: []string{"--brokers", b.addr, "--stop-at-end", "--input-topic", "orders", "--output-topic", "totals-{run}",
			"--transactional-id-prefix", "orders-{run}", "--checkpoint-dir", "{dir}/ckpt", "--checkpoint-interval", "{interval}",
			"--parallelism", "1", "--metrics-addr", ""},
		Output: weirtest.KafkaTopic{Brokers: []string{b.addr}, Topic: "totals-{run}"},
	}}
}

// soakEventTime is the event-time job (windows, deduplication, a join).
func soakEventTime(t *testing.T) soakJob {
	return soakJob{name: "eventtime", share: 1, job: weirtest.Job{
		Binary: binary(t, "github.com/weirstream/weir/internal/e2e/eventtimejob"),
		Args: []string{"--output", "{dir}/out", "--checkpoint-dir", "{dir}/ckpt", "--checkpoint-interval", "{interval}",
			"--parallelism", "2", "--events", "60000", "--metrics-addr", ""},
		Output: weirtest.Files{Dir: "{dir}/out"},
	}}
}

// soakBroker is a development broker, in a child process, with a data
// directory, restartable on its address.
type soakBroker struct {
	addr string
	b    *devbrokertest.Broker
}

func startSoakBroker(t *testing.T) *soakBroker {
	b := devbrokertest.Start(t, devbrokertest.Config{Partitions: 3, DataDir: t.TempDir()})
	// NB: one input partition, and the orders job at parallelism 1. A
	// customer's orders are spread over partitions and dedup subtasks (keyed
	// by order id), so otherwise its running totals depend on how those
	// interleave, and two uninterrupted runs differ; so, the output is a
	// function of the input, which is what the kit's comparison needs.
	if err := b.CreateTopic("orders", 1); err != nil {
		t.Fatal(err)
	}
	return &soakBroker{addr: b.Addr(), b: b}
}

// restarter restarts the broker periodically until stopped.
type restarter struct {
	done     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	restarts int
}

func (r *restarter) stop() { close(r.done); r.wg.Wait() }

func (r *restarter) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.restarts
}

// restartEvery stops the broker every period, keeps it down for a second
// (jobs must ride the outage out with retries, or restart in the process),
// and starts it again on the same address and data directory, as
// TestBrokerRestart does once.
func (s *soakBroker) restartEvery(t *testing.T, period time.Duration) *restarter {
	r := &restarter{done: make(chan struct{})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-r.done:
				return
			case <-tick.C:
			}
			err := s.b.Stop()
			time.Sleep(time.Second) // NB: the outage itself is what is tested
			if err == nil {
				err = s.b.Restart()
			}
			if err != nil {
				t.Errorf("restart broker on %s: %v", s.addr, err)
				return
			}
			r.mu.Lock()
			r.restarts++
			r.mu.Unlock()
		}
	}()
	return r
}
