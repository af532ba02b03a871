package main

import (
	"context"
	"fmt"
	"time"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/weirtest/orders"
)

func runProduceOrders(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "produce-orders", "produce-orders --brokers ADDR [--topic orders] [--count N] [--customers C] [--duplicate-rate R] [--seed S] [--kafka-tls …] [--kafka-sasl-…]\n\n"+
		"Writes sample orders as JSON, {\"order_id\": \"o-000001\", \"customer\": \"c-0042\", \"amount_cents\": 123},\n"+
		"keyed by order_id. A fraction of the orders is re-sent as exact duplicates, as an\n"+
		"at-least-once producer's retries would. The output depends only on the flags.")
	brokersFlag := fs.String("brokers", "", "Kafka bootstrap `addresses`, comma-separated (required)")
	topic := fs.String("topic", "orders", "topic to write to (created if missing)")
	count := fs.Int("count", 1000, "number of distinct orders")
	customers := fs.Int("customers", 100, "number of distinct customers")
	dupRate := fs.Float64("duplicate-rate", 0.1, "fraction of orders sent twice, in [0, 1]")
	seed := fs.Uint64("seed", 1, "random seed")
	dialTimeout := fs.Duration("dial-timeout", 5*time.Second, "timeout for connecting to a broker")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up writing after this long")
	secFlags := kafka.RegisterSecurityFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	sec, err := secFlags.Security()
	if err != nil {
		return usagef("%v", err)
	}
	brokers, err := brokerList(*brokersFlag)
	if err != nil {
		return err
	}
	switch {
	case *topic == "":
		return usagef("--topic must not be empty")
	case *count < 0:
		return usagef("--count must be >= 0, got %d", *count)
	case *customers < 1:
		return usagef("--customers must be >= 1, got %d", *customers)
	case !(*dupRate >= 0 && *dupRate <= 1):
		return usagef("--duplicate-rate must be between 0 and 1, got %v", *dupRate)
	case *dialTimeout <= 0 || *timeout <= 0:
		return usagef("--dial-timeout and --timeout must be positive")
	}
	batch, err := orders.Generate(*seed, *count, *customers, *dupRate)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := checkReachable(ctx, brokers, *dialTimeout); err != nil {
		return err
	}
	if err := orders.Produce(ctx, brokers, sec, *topic, batch, *dialTimeout); err != nil {
		return err
	}
	unique, dups := orders.Count(batch)
	fmt.Fprintf(e.stdout, "wrote %d records to topic %q: %d unique orders, %d duplicates\n", len(batch), *topic, unique, dups)
	return nil
}
