package main

import (
	"context"
	"fmt"
	"time"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/weirtest/verify"
)

// offenderLimit is how many offenders of each kind verify prints.
const offenderLimit = 10

func runVerify(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "verify", "verify --brokers ADDR --topic T --key FIELD --seq FIELD [--numeric] [--expect N] [--kafka-tls …] [--kafka-sasl-…]\n\n"+
		"Reads the whole topic (every partition, earliest offset to the current end) with\n"+
		"isolation level read_committed, parses each value as a JSON object, and reports\n"+
		"records whose (key, seq) was already seen and, with --numeric, seqs missing per key.\n"+
		"Exits 1 on any violation, 0 otherwise.")
	brokersFlag := fs.String("brokers", "", "Kafka bootstrap `addresses`, comma-separated (required)")
	topic := fs.String("topic", "", "topic to verify (required)")
	key := fs.String("key", "", "JSON `field` naming the entity a record belongs to (required)")
	seq := fs.String("seq", "", "JSON `field` identifying a record within its key (required)")
	numeric := fs.Bool("numeric", false, "seq is an integer: also report gaps between the smallest and largest seq of each key")
	expect := fs.Int("expect", -1, "if >= 0, the number of records the topic must hold")
	dialTimeout := fs.Duration("dial-timeout", 5*time.Second, "timeout for connecting to a broker")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up reading after this long")
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
	for _, f := range []struct{ name, v string }{{"topic", *topic}, {"key", *key}, {"seq", *seq}} {
		if f.v == "" {
			return usagef("--%s is required", f.name)
		}
	}
	if *dialTimeout <= 0 || *timeout <= 0 {
		return usagef("--dial-timeout and --timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := checkReachable(ctx, brokers, *dialTimeout); err != nil {
		return err
	}
	c := verify.NewChecker(verify.Options{Key: *key, Seq: *seq, Numeric: *numeric, Expect: *expect})
	err = verify.ReadTopic(ctx, verify.ReadConfig{Brokers: brokers, Security: sec, Topic: *topic, DialTimeout: *dialTimeout, RetryTimeout: 2 * *dialTimeout}, c.Add)
	if err != nil {
		return err
	}
	r := c.Report()
	fmt.Fprintf(e.stdout, "topic %q (read_committed)\n", *topic)
	if err := r.Write(e.stdout, offenderLimit); err != nil {
		return err
	}
	if !r.OK() {
		return &exitError{code: exitFailure}
	}
	return nil
}
