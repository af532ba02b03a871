// Package orders generates deterministic sample order streams for demos,
// examples and tests. A fraction of the orders is re-sent as exact
// duplicates, which is what an at-least-once producer's retries look like to
// a consumer; exactly-once pipelines are expected to remove them.
// examples/orders and examples/ledger process them, and `weir
// produce-orders` writes them to a topic.
package orders

import (
	"fmt"
	"math/rand/v2"
)

// Order is one sample order. Its JSON form is
// {"order_id":"o-000001","customer":"c-0042","amount_cents":123}.
type Order struct {
	OrderID     string `json:"order_id"`
	Customer    string `json:"customer"`
	AmountCents int64  `json:"amount_cents"`
}

// maxRetryLag is how many later orders may be sent before a duplicate is
// re-sent, mimicking a retry that lands a little after the original.
const maxRetryLag = 5

// Generate returns n distinct orders, in send order, interleaved with exact
// duplicates: each order is re-sent once with probability dupRate, after up
// to a few later orders. Customers are drawn from c-0001 … c-<customers>.
// The result depends only on the arguments.
func Generate(seed uint64, n, customers int, dupRate float64) ([]Order, error) {
	switch {
	case n < 0:
		return nil, fmt.Errorf("orders: count must be >= 0, got %d", n)
	case customers < 1:
		return nil, fmt.Errorf("orders: customers must be >= 1, got %d", customers)
	case !(dupRate >= 0 && dupRate <= 1):
		return nil, fmt.Errorf("orders: duplicate rate must be in [0, 1], got %v", dupRate)
	}
	rng := rand.New(rand.NewPCG(seed, 0x6f72646572)) // "order"
	type pending struct {
		due   int
		order Order
	}
	var queue []pending
	out := make([]Order, 0, n+int(float64(n)*dupRate)+1)
	for i := range n {
		o := Order{
			OrderID:     fmt.Sprintf("o-%06d", i+1),
			Customer:    fmt.Sprintf("c-%04d", rng.IntN(customers)+1),
			AmountCents: 1 + rng.Int64N(100_000),
		}
		out = append(out, o)
		if rng.Float64() < dupRate {
			queue = append(queue, pending{due: i + rng.IntN(maxRetryLag+1), order: o})
		}
		kept := queue[:0]
		for _, p := range queue {
			if p.due <= i {
				out = append(out, p.order)
			} else {
				kept = append(kept, p)
			}
		}
		queue = kept
	}
	for _, p := range queue {
		out = append(out, p.order)
	}
	return out, nil
}

// Count returns the number of distinct order IDs in orders and the number of
// extra copies (len(orders) - unique).
func Count(orders []Order) (unique, duplicates int) {
	seen := make(map[string]struct{}, len(orders))
	for _, o := range orders {
		seen[o.OrderID] = struct{}{}
	}
	return len(seen), len(orders) - len(seen)
}
