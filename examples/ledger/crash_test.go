package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/internal/devbroker/devbrokertest"
	"github.com/weirstream/weir/internal/pgtest"
	"github.com/weirstream/weir/internal/testbin"
	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/weirtest"
	"github.com/weirstream/weir/weirtest/orders"
)

// ledgerTables is a weirtest.Output: the committed content of a run's
// tables, which live in the schema named after the run. A record is a row:
// "order <id> <customer> <amount>" or "total <customer> <cents>"
// (processed_at differs between runs and is left out).
type ledgerTables struct{ url string }

func (l ledgerTables) Read(ctx context.Context, run weirtest.Run, record func([]byte)) error {
	db, err := schemaConn(ctx, l.url, run.Name)
	if err != nil {
		return err
	}
	defer db.Close(context.Background())
	for _, q := range []string{
		"SELECT 'order ' || order_id || ' ' || customer || ' ' || amount_cents FROM orders",
		"SELECT 'total ' || customer || ' ' || total_cents FROM customer_totals",
	} {
		rows, err := db.Query(ctx, q)
		if err != nil {
			return err
		}
		var line string
		if _, err := pgx.ForEachRow(rows, []any{&line}, func() error { record([]byte(line)); return nil }); err != nil {
			return err
		}
	}
	return nil
}

func schemaConn(ctx context.Context, url, schema string) (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cc.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	return pgx.ConnectConfig(ctx, cc)
}

// crashEnv is a broker (in a child process) whose topic "orders" holds sample orders with
// duplicates, and a database.
type crashEnv struct {
	brokers string
	url     string
	sample  []Order
	bin     string // the job, with fault points, built once per test process
}

func newCrashEnv(t *testing.T, seed uint64, n int) *crashEnv {
	t.Helper()
	url := pgtest.DB(t)
	b := devbrokertest.Start(t, devbrokertest.Config{Partitions: 3})
	if err := b.CreateTopic("orders", 3); err != nil {
		t.Fatal(err)
	}
	sample, err := orders.Generate(seed, n, 100, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := orders.Produce(ctx, b.Brokers(), kafka.Security{}, "orders", sample, 0); err != nil {
		t.Fatal(err)
	}
	return &crashEnv{brokers: b.Addr(), url: url, sample: sample, bin: testbin.Build(t, ".", "-tags", "weirfault")}
}

func (e *crashEnv) job(seed uint64, mode string, kills int, crashes ...string) weirtest.Job {
	return weirtest.Job{
		Binary: e.bin,
		Args: []string{"--brokers", e.brokers, "--input-topic", "orders", "--stop-at-end",
			"--postgres-url", e.url, "--postgres-mode", mode, "--postgres-schema", "{run}", "--sink-id", "ledger-{run}",
			"--parallelism", "2",
			"--checkpoint-dir", "{dir}/ckpt", "--checkpoint-interval", "{interval}", "--metrics-addr", ""},
		Output:          ledgerTables{url: e.url},
		Kills:           kills,
		ProtocolCrashes: crashes,
		Seed:            seed,
	}
}

// check runs the ledger's own checker on a run's tables.
func (e *crashEnv) check(t *testing.T, run weirtest.Run) *Report {
	t.Helper()
	db, err := schemaConn(t.Context(), e.url, run.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	rep, err := Check(t.Context(), db, "ledger-"+run.Name, e.sample)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestCrashes kills the ledger job (Kafka → dedup → PostgreSQL, prepared
// transactions) with SIGKILL at random moments and between PREPARE
// TRANSACTION and COMMIT PREPARED (after-manifest: the checkpoint is
// complete, its epochs only prepared) and before the manifest (prepared,
// the checkpoint incomplete), restarting it each time. The tables must be
// those of an uninterrupted run: every distinct order once, every total the
// sum of its customer's distinct orders, no prepared transaction left.
func TestCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs the job binary many times; skipped in -short mode")
	}
	for _, mode := range []string{"prepared", "staged"} {
		t.Run(mode, func(t *testing.T) {
			seed := testseed.Seed(t)
			e := newCrashEnv(t, seed, 150_000)
			r := weirtest.Test(t, e.job(seed, mode, 5, "after-manifest:1", "before-manifest:1", "after-manifest:2"))
			if r.Kills < 5+3 {
				t.Fatalf("%d kills landed, want at least 8", r.Kills)
			}
			for _, run := range []weirtest.Run{r.Clean, r.Crashed} {
				if rep := e.check(t, run); !rep.OK() {
					t.Errorf("%s run:\n%s", run.Name, rep)
				}
			}
		})
	}
}

// TestCrashesAtLeastOnce is the proof that TestCrashes can fail: the same
// job with a sink that commits at the barrier instead of preparing, crashed
// before the checkpoint's manifest, applies an epoch twice after the
// restart, and both checkers say so.
func TestCrashesAtLeastOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs the job binary many times; skipped in -short mode")
	}
	seed := testseed.Seed(t)
	e := newCrashEnv(t, seed, 20_000)
	job := e.job(seed, "at-least-once", 1, "before-manifest:2", "before-manifest:3")
	job.WorkDir, job.Logf = t.TempDir(), t.Logf
	r, err := weirtest.Check(t.Context(), job)
	if !errors.Is(err, weirtest.ErrOutputsDiffer) {
		t.Fatalf("weirtest.Check = %v, want ErrOutputsDiffer", err)
	}
	t.Logf("weirtest: %v", r)
	rep := e.check(t, r.Crashed)
	if rep.OK() || len(rep.Overcounted) == 0 || rep.Extra <= 0 {
		t.Fatalf("the ledger checker missed the duplicates:\n%s", rep)
	}
	if !strings.Contains(rep.String(), "counted more than once") {
		t.Fatalf("the report does not name the duplicates:\n%s", rep)
	}
	t.Logf("ledger checker:\n%s", rep)
	if clean := e.check(t, r.Clean); !clean.OK() {
		t.Fatalf("the clean at-least-once run is wrong already:\n%s", clean)
	}
}
