package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Report is what Check found in the ledger's tables.
type Report struct {
	Distinct int // distinct orders in the input
	Orders   int // rows in orders
	// Missing are distinct input orders without a row; Unexpected rows
	// that are no input order (or differ from it).
	Missing, Unexpected []string
	// Overcounted are customers whose total exceeds the sum of their
	// distinct orders: some order was counted more than once;
	// Undercounted those whose total falls short.
	Overcounted, Undercounted []string
	// Extra is the sum of what the overcounted totals exceed by.
	Extra int64
	// Prepared are prepared transactions of the sink left behind.
	Prepared []string
}

// OK reports whether the tables hold exactly the effect of processing every
// distinct order once.
func (r *Report) OK() bool {
	return len(r.Missing)+len(r.Unexpected)+len(r.Overcounted)+len(r.Undercounted)+len(r.Prepared) == 0
}

func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "orders: %d rows for %d distinct input orders", r.Orders, r.Distinct)
	if len(r.Missing)+len(r.Unexpected) == 0 {
		b.WriteString(", each once\n")
	} else {
		fmt.Fprintf(&b, ": %d MISSING %s, %d UNEXPECTED %s\n", len(r.Missing), examples(r.Missing), len(r.Unexpected), examples(r.Unexpected))
	}
	if len(r.Overcounted)+len(r.Undercounted) == 0 {
		b.WriteString("customer_totals: every total is the sum of the customer's distinct orders\n")
	} else {
		fmt.Fprintf(&b, "customer_totals: %d customers OVERCOUNTED by %d cents in all (orders counted more than once) %s, %d UNDERCOUNTED %s\n",
			len(r.Overcounted), r.Extra, examples(r.Overcounted), len(r.Undercounted), examples(r.Undercounted))
	}
	if len(r.Prepared) > 0 {
		fmt.Fprintf(&b, "prepared transactions LEFT OVER: %s\n", examples(r.Prepared))
	}
	if r.OK() {
		b.WriteString("OK\n")
	} else {
		b.WriteString("WRONG\n")
	}
	return b.String()
}

func examples(s []string) string {
	if len(s) == 0 {
		return ""
	}
	if len(s) > 5 {
		return fmt.Sprintf("(%s, …)", strings.Join(s[:5], ", "))
	}
	return "(" + strings.Join(s, ", ") + ")"
}

// Check compares the tables orders and customer_totals on db with the
// effect of processing each distinct order of input once, and lists the
// prepared transactions of sink sinkID left behind.
func Check(ctx context.Context, db *pgx.Conn, sinkID string, input []Order) (*Report, error) {
	want := map[string]Order{}
	sums := map[string]int64{}
	for _, o := range input {
		if _, ok := want[o.OrderID]; !ok {
			want[o.OrderID] = o
			sums[o.Customer] += o.AmountCents
		}
	}
	r := &Report{Distinct: len(want)}
	rows, err := db.Query(ctx, "SELECT order_id, customer, amount_cents FROM orders")
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	seen := map[string]bool{}
	var o Order
	_, err = pgx.ForEachRow(rows, []any{&o.OrderID, &o.Customer, &o.AmountCents}, func() error {
		r.Orders++
		if w, ok := want[o.OrderID]; !ok || w != o || seen[o.OrderID] {
			r.Unexpected = append(r.Unexpected, fmt.Sprintf("%s/%s/%d", o.OrderID, o.Customer, o.AmountCents))
		}
		seen[o.OrderID] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	for id := range want {
		if !seen[id] {
			r.Missing = append(r.Missing, id)
		}
	}
	totals := map[string]int64{}
	rows, err = db.Query(ctx, "SELECT customer, total_cents FROM customer_totals")
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	var cust string
	var total int64
	if _, err = pgx.ForEachRow(rows, []any{&cust, &total}, func() error { totals[cust] = total; return nil }); err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	for c := range mergeKeys(sums, totals) {
		got, w := totals[c], sums[c]
		switch {
		case got > w:
			r.Overcounted = append(r.Overcounted, fmt.Sprintf("%s: %d, want %d", c, got, w))
			r.Extra += got - w
		case got < w:
			r.Undercounted = append(r.Undercounted, fmt.Sprintf("%s: %d, want %d", c, got, w))
		}
	}
	rows, err = db.Query(ctx, "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, $1)", sinkID+"-")
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	if r.Prepared, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	for _, s := range [][]string{r.Missing, r.Unexpected, r.Overcounted, r.Undercounted} {
		slices.Sort(s)
	}
	return r, nil
}

func mergeKeys(a, b map[string]int64) map[string]bool {
	m := make(map[string]bool, len(a))
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return m
}
