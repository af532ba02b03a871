//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/checkpoint"
	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/internal/devbroker/devbrokertest"
	"github.com/weirstream/weir/internal/fault"
	"github.com/weirstream/weir/internal/s3dev"
	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/weirtest/orders"
	"github.com/weirstream/weir/weirtest/verify"
)

const ordersPkg = "github.com/weirstream/weir/examples/orders"

// ordersEnv is a broker with an input topic of three partitions for the
// orders example (examples/orders), and sample orders, a tenth of them
// duplicated, that a test produces in chunks while the job runs.
type ordersEnv struct {
	brokers []string
	sample  []orders.Order
	bin     string
}

func newOrdersEnv(t *testing.T, seed uint64, n int) *ordersEnv {
	t.Helper()
	b := devbrokertest.Start(t, devbrokertest.Config{Partitions: 3})
	if err := b.CreateTopic("orders", 3); err != nil {
		t.Fatal(err)
	}
	sample, err := orders.Generate(seed, n, 100, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	return &ordersEnv{brokers: []string{b.Addr()}, sample: sample, bin: binary(t, ordersPkg)}
}

// chunk returns the i-th of n equal parts of the sample.
func (e *ordersEnv) chunk(i, n int) []orders.Order {
	return e.sample[i*len(e.sample)/n : (i+1)*len(e.sample)/n]
}

func (e *ordersEnv) produce(t *testing.T, batch []orders.Order) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := orders.Produce(ctx, e.brokers, kafka.Security{}, "orders", batch, 0); err != nil {
		t.Fatal(err)
	}
}

// args returns the flags of a start writing topic out, with its
// checkpoints in ckpt. Without --stop-at-end in extra, a start runs until
// it is killed or stopped.
func (e *ordersEnv) args(out, ckpt string, parallelism int, extra ...string) []string {
	return append([]string{
		"--brokers", e.brokers[0],
		"--input-topic", "orders",
		"--output-topic", out,
		"--transactional-id-prefix", out,
		"--checkpoint-dir", ckpt,
		"--checkpoint-interval", "100ms",
		"--parallelism", strconv.Itoa(parallelism),
		"--metrics-addr", "",
		"--log-level", "info",
	}, extra...)
}

// ordersStart is one start of the orders job in a test's plan.
type ordersStart struct {
	parallelism int
	// crashAt arms a fault point ("after-manifest:3"); "" kills the start
	// with SIGKILL a few checkpoints after its input arrived.
	crashAt string
}

func (s ordersStart) String() string {
	if s.crashAt != "" {
		return fmt.Sprintf("parallelism %d, crash at %s", s.parallelism, s.crashAt)
	}
	return fmt.Sprintf("parallelism %d, SIGKILL", s.parallelism)
}

// runStarts runs the orders job over the sample, writing topic out, once
// per planned start and then once more to the end at parallelism last.
// Input arrives in chunks, one per start, each produced after the start's
// first checkpoint so that the start is reading it when it dies. The
// killed starts run unbounded, so that none can finish before its death
// however fast the machine; the last reads to the end of the input
// (--stop-at-end) and exits. extra(i) adds flags to start i (a fresh
// --local-dir, say); env is the environment of every start.
func (e *ordersEnv) runStarts(t *testing.T, seed uint64, out, ckpt string, plan []ordersStart, last int,
	extra func(i int) []string, env ...string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x7265))
	n := len(plan) + 1
	for i, st := range plan {
		startEnv := env
		if st.crashAt != "" {
			startEnv = append(startEnv, fault.EnvVar+"="+st.crashAt)
		}
		p := startProc(t, e.bin, e.args(out, ckpt, st.parallelism, extra(i)...), startEnv...)
		if !p.awaitCheckpoints(t, 1) {
			t.Fatalf("start %d (%v) exited before its first checkpoint\n%s", i, st, p.log())
		}
		e.produce(t, e.chunk(i, n))
		if st.crashAt == "" {
			// NB: the checkpoints that completed while the chunk was
			// produced count: the kill comes while the chunk is read.
			if !p.awaitCheckpoints(t, 1+rng.IntN(3)) {
				t.Fatalf("start %d (%v) exited before its kill\n%s", i, st, p.log())
			}
			p.kill()
		}
		p.waitKilled(t, fmt.Sprintf("start %d (%v)", i, st))
		t.Logf("start %d (%v): killed", i, st)
	}
	e.produce(t, e.chunk(n-1, n))
	p := startProc(t, e.bin, e.args(out, ckpt, last, append(extra(n-1), "--stop-at-end")...), env...)
	p.waitSuccess(t, fmt.Sprintf("last start (parallelism %d)", last))
}

// check reads topic read_committed and checks it against the sample, as
// the example's own check does (`weir verify --key customer --seq
// order_id`), and more closely: every distinct order exactly once and no
// other record, and every customer's totals, in the order of its
// partition, a running sum of the amounts of its orders, ending at the sum
// of its distinct orders. The running sums check the restored state of
// every customer, whatever crashed between two of its orders: a total
// restored from a wrong checkpoint, or missing, breaks the chain.
func (e *ordersEnv) check(t *testing.T, topic string) {
	t.Helper()
	amount := map[string]int64{}
	want := map[string]int64{}
	for _, o := range e.sample {
		if _, seen := amount[o.OrderID]; !seen {
			amount[o.OrderID] = o.AmountCents
			want[o.Customer] += o.AmountCents
		}
	}
	c := verify.NewChecker(verify.Options{Key: "customer", Seq: "order_id", Expect: len(amount)})
	last := map[string]int64{}
	var wrong []string
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err := verify.ReadTopic(ctx, verify.ReadConfig{Brokers: e.brokers, Topic: topic}, func(r verify.Record) {
		c.Add(r)
		var ct struct {
			Customer   string `json:"customer"`
			OrderID    string `json:"order_id"`
			TotalCents int64  `json:"total_cents"`
		}
		if json.Unmarshal(r.Value, &ct) != nil {
			return // reported as malformed by the checker
		}
		if got, want := ct.TotalCents, last[ct.Customer]+amount[ct.OrderID]; got != want && len(wrong) < 10 {
			wrong = append(wrong, fmt.Sprintf("%s: customer %s, order %s: total %d, want %d (the previous total %d + %d)",
				r.Position, ct.Customer, ct.OrderID, got, want, last[ct.Customer], amount[ct.OrderID]))
		}
		last[ct.Customer] = ct.TotalCents // a customer's totals are in one partition, read in order
	})
	if err != nil {
		t.Fatal(err)
	}
	for cust, total := range want {
		if last[cust] != total && len(wrong) < 20 {
			wrong = append(wrong, fmt.Sprintf("customer %s: last total %d, want %d", cust, last[cust], total))
		}
	}
	rep := c.Report()
	if !rep.OK() || len(wrong) > 0 {
		var b strings.Builder
		_ = rep.Write(&b, 5)
		t.Fatalf("output %q under read_committed is not exactly the distinct orders with their running totals:\n%s%s",
			topic, &b, strings.Join(wrong, "\n"))
	}
	t.Logf("output %q: %d distinct orders once each, %d customers' running totals right", topic, len(amount), len(want))
}

// TestOrdersRescaleUnderCrashes runs the orders example (Kafka → dedup by
// order id → running total per customer → transactional Kafka sink) killed
// and restarted with parallelism 2 → 3 → 1 → 2: killed with SIGKILL while
// reading, and once at the fault point after a checkpoint's manifest, where
// the new subtasks must commit what the old ones promised. Every rescale
// moves the dedup and totals state by key group, the source's partitions
// with their offsets, and the sink's pending transactions to the new
// subtasks. The committed output must hold every distinct order exactly
// once, with every customer's running totals right.
func TestOrdersRescaleUnderCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a job binary several times")
	}
	seed := testseed.Seed(t)
	e := newOrdersEnv(t, seed, 20_000)
	e.runStarts(t, seed, "totals-rescale", filepath.Join(t.TempDir(), "ckpt"), []ordersStart{
		{parallelism: 2},
		{parallelism: 3, crashAt: "after-manifest:3"},
		{parallelism: 1},
	}, 2, func(int) []string { return nil })
	e.check(t, "totals-rescale")
}

// TestOrdersS3CheckpointsUnderKills runs the orders example with its
// checkpoints on a development S3 server, killed with SIGKILL three times
// and at the fault point after a manifest, each start with a fresh, empty
// --local-dir: every restart recovers from the object store alone, as a job
// moved to a new machine does; the parallelism changes too.
func TestOrdersS3CheckpointsUnderKills(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a job binary several times")
	}
	seed := testseed.Seed(t)
	e := newOrdersEnv(t, seed, 20_000)
	s3dev.StartTest(t, "").SetEnv(t) // the job's children inherit it
	locals := t.TempDir()
	e.runStarts(t, seed, "totals-s3", "s3://weir-e2e/orders", []ordersStart{
		{parallelism: 2},
		{parallelism: 2, crashAt: "after-manifest:2"},
		{parallelism: 3},
		{parallelism: 3},
	}, 2, func(i int) []string {
		return []string{"--local-dir", filepath.Join(locals, fmt.Sprintf("start-%d", i))}
	})
	e.check(t, "totals-s3")
	ckpts, err := checkpoint.List(t.Context(), "s3://weir-e2e/orders")
	if err != nil || len(ckpts) == 0 {
		t.Fatalf("no checkpoint listed in the object store: %v", err)
	}
}

// TestOrdersSavepointResume stops the orders example with SIGTERM and
// --savepoint-dir, which writes its final checkpoint as a savepoint, and
// resumes it from the savepoint (--from-savepoint) at another parallelism
// into a new checkpoint directory, with more input: the output of both runs
// must hold every distinct order exactly once, with right totals.
func TestOrdersSavepointResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a job binary twice")
	}
	seed := testseed.Seed(t)
	e := newOrdersEnv(t, seed, 10_000)
	dir := t.TempDir()
	const out = "totals-savepoint"
	first := startProc(t, e.bin, e.args(out, filepath.Join(dir, "ckpt-1"), 2, "--savepoint-dir", filepath.Join(dir, "savepoints")))
	if !first.awaitCheckpoints(t, 1) {
		t.Fatalf("first run exited before its first checkpoint\n%s", first.log())
	}
	e.produce(t, e.chunk(0, 2))
	if !first.awaitCheckpoints(t, 2) {
		t.Fatalf("first run exited before it was stopped\n%s", first.log())
	}
	first.signal(syscall.SIGTERM)
	first.waitSuccess(t, "first run, stopped by SIGTERM")
	sp := first.savepointPath()
	if sp == "" {
		t.Fatalf("the stopped run logged no savepoint\n%s", first.log())
	}
	t.Logf("savepoint %s", sp)

	e.produce(t, e.chunk(1, 2))
	ckpt := filepath.Join(dir, "ckpt-2")
	second := startProc(t, e.bin, e.args(out, ckpt, 3, "--from-savepoint", sp, "--stop-at-end"))
	second.waitSuccess(t, "second run, from the savepoint")
	e.check(t, out)
	// The two runs read every input record once between them: the source's
	// offsets moved to the new subtasks. (The output alone would not show a
	// replay: dedup, restored, drops the orders it has seen.)
	if in := ordersIn(t, first) + ordersIn(t, second); in != len(e.sample) {
		t.Errorf("the two runs read %d input records, want %d", in, len(e.sample))
	}
	// The resumed run's checkpoints name the savepoint they descend from.
	saved, err := checkpoint.List(t.Context(), sp)
	if err != nil || len(saved) != 1 || saved[0].Kind != checkpoint.KindSavepoint {
		t.Fatalf("savepoint %s lists as %+v (%v), want one savepoint", sp, saved, err)
	}
	d, err := checkpoint.Inspect(t.Context(), ckpt, "latest")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%s/%d@", saved[0].Job, saved[0].ID); !strings.HasPrefix(d.FromSavepoint, want) {
		t.Errorf("the resumed run's checkpoint %d descends from savepoint %q, want %s…", d.ID, d.FromSavepoint, want)
	}
}

// ordersIn returns the number of input records a finished run of the orders
// job read, from what it prints at the end.
func ordersIn(t *testing.T, p *proc) int {
	t.Helper()
	var in, dropped, written int
	l := p.lastLine("orders in: ")
	if _, err := fmt.Sscanf(l, "orders in: %d, duplicates dropped: %d, totals written: %d", &in, &dropped, &written); err != nil {
		t.Fatalf("the orders job printed no counts (%q: %v)\n%s", l, err, p.log())
	}
	return in
}
