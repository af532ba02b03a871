package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/pgtest"
	"github.com/weirstream/weir/internal/testbin"
	"github.com/weirstream/weir/weirtest/orders"
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	testbin.Remove()
	os.Exit(code)
}

// TestEmbedded runs the example as its doc says, smaller, in each mode, and
// checks what it reports against the sample data.
func TestEmbedded(t *testing.T) {
	url := pgtest.DB(t)
	sample, err := orders.Generate(7, 500, 20, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	unique, dups := orders.Count(sample)
	if dups == 0 {
		t.Fatal("sample has no duplicates; the test proves nothing")
	}
	for _, mode := range []string{"prepared", "staged"} {
		t.Run(mode, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), []string{"--postgres-url", url, "--postgres-schema", mode, "--postgres-mode", mode,
				"--sample-orders", "500", "--sample-customers", "20", "--sample-seed", "7", "--sink-batch", "50",
				"--checkpoint-interval", "50ms", "--parallelism", "2", "--metrics-addr", "", "--log-level", "warn"}, &stdout, &stderr)
			if code != 0 {
				t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
			}
			out := stdout.String()
			for _, want := range []string{
				fmt.Sprintf("orders in: %d, duplicates dropped: %d, distinct orders written: %d\n", len(sample), dups, unique),
				fmt.Sprintf("orders: %d rows for %d distinct input orders, each once\n", unique, unique),
				"customer_totals: every total is the sum of the customer's distinct orders\nOK\n",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			checkStatus(t, url, mode, sample[0])
			// A second run on the same tables would add to them: refused.
			stdout.Reset()
			stderr.Reset()
			code = run(t.Context(), []string{"--postgres-url", url, "--postgres-schema", mode, "--metrics-addr", "", "--log-level", "warn"}, &stdout, &stderr)
			if code == 0 || !strings.Contains(stderr.String(), "needs them empty") {
				t.Fatalf("second sample run on the same tables: exit %d\n%s", code, &stderr)
			}
		})
	}
}

// TestNoPostgres: without a server, the job says how to point it at one.
func TestNoPostgres(t *testing.T) {
	for _, v := range []string{"PGHOST", "PGDATABASE", "PGSERVICE"} {
		t.Setenv(v, "")
	}
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), nil, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "--postgres-url") || !strings.Contains(stderr.String(), "apt-get install postgresql") {
		t.Fatalf("exit %d, stderr:\n%s", code, &stderr)
	}
}

// checkStatus runs the README's check_status query (psql's :'order_id'
// as $1) for a processed order and an unknown one.
func checkStatus(t *testing.T, url, schema string, o orders.Order) {
	t.Helper()
	const query = `SELECT coalesce(
  (SELECT format('processed at %s: %s cents for %s, whose total is now %s cents',
                 o.processed_at, o.amount_cents, o.customer, t.total_cents)
     FROM orders o JOIN customer_totals t USING (customer)
    WHERE o.order_id = $1),
  'not processed yet: not read, or in an epoch waiting for its checkpoint') AS check_status`
	db, err := schemaConn(t.Context(), url, schema)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	for id, want := range map[string]string{o.OrderID: fmt.Sprintf(": %d cents for %s, whose total is now", o.AmountCents, o.Customer), "o-nope": "not processed yet"} {
		var status string
		if err := db.QueryRow(t.Context(), query, id).Scan(&status); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(status, want) {
			t.Errorf("check_status(%s) = %q, want it to contain %q", id, status, want)
		}
	}
}
