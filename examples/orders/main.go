// Command orders is weir's textbook exactly-once job: it reads orders from
// Kafka, drops the duplicates an at-least-once producer leaves behind, keeps
// a running total per customer, and writes the totals to Kafka through the
// transactional sink.
//
//	orders                       # no setup: embedded broker and sample data
//	orders --brokers ADDR [--input-topic orders] [--output-topic customer-totals]
//	       [--dedup-ttl 24h] [--on-bad-input fail|skip|dead-letter]
//	       [--transaction-timeout 15m] [--expected-restart-time 1m]
//	       [--commit-group GROUP] [--group NAME [--instance-id ID]]
//	       [--kafka-tls …] [--kafka-sasl-…] [runtime flags]
//
// Input records (topic orders) are JSON:
//
//	{"order_id": "o-000001", "customer": "c-0042", "amount_cents": 123}
//
// and may arrive more than once. Output records (topic customer-totals) are
//
//	{"customer": "c-0042", "order_id": "o-000001", "total_cents": 456}
//
// one per distinct order, where total_cents is the customer's total after
// that order. Because the job's state (the seen order ids, the totals) and
// its output are committed together at each checkpoint, a crash and restart
// never drops or repeats an output record, nor counts an order twice.
//
// # Pipeline
//
//	Kafka source "orders" → Dedup "dedup" by order_id
//	                      → KeyBy(customer) → Process "totals" → Kafka sink "customer-totals"
//
// Dedup (operators.Dedup) remembers each order id for --dedup-ttl of
// processing time after its first copy arrived: copies within that time are
// dropped, and a timer forgets the id when it ends, so the state holds the
// ids of one TTL.
//
// # Without --brokers
//
// The job starts an embedded development broker, fills the input topic with
// sample orders (some duplicated), reads it to the end, and prints what it
// did: orders in, duplicates dropped, totals written, and a check of the
// output read with isolation level read_committed, as 'weir verify' does.
//
// # Scale-out
//
// With --brokers and --group NAME, the process is one member of the job
// spread over every orders process started with the same NAME (and the same
// flags): each of the input topic's partitions is one task, the members share
// the tasks through the Kafka consumer group NAME (kafka.NewCluster), and the
// records keyed by customer cross between members through repartition
// topics. --checkpoint-dir must then be one directory (or s3:// prefix) that
// every member sees. --group needs --brokers: the embedded broker lives in
// one process.
//
// # Malformed input
//
// By default an input record that is not a valid order stops the job with an
// error naming its topic, partition and offset (fix or skip it, then restart
// from the last checkpoint). --on-bad-input skip drops such records and
// counts them; --on-bad-input dead-letter copies them to --dead-letter-topic.
//
// # Monitoring
//
// With --commit-group, the source commits the offsets of every completed
// checkpoint to that consumer group, so that kafka-consumer-groups
// --describe --group GROUP (or kcat, or a lag exporter) shows the job's lag.
// The job never reads them back: it restarts from its checkpoints.
//
// # Transactions
//
// The sink writes each checkpoint's totals in a Kafka transaction, which the
// broker aborts after --transaction-timeout (at most its
// transaction.max.timeout.ms, 15 minutes by default). If less than
// --expected-restart-time would be left to commit a checkpoint's
// transactions (after a pause of the process, for example), the checkpoint
// is declined and the job fails; its next start resumes from the previous
// checkpoint. So the timeout must exceed the restart time, and comfortably
// exceed the checkpoint interval.
//
// The input topic must exist when the job runs against a real cluster; the
// sink asks the broker to create the output topic if it is missing, and
// needs transactions (brokers 0.11 and later).
//
// # Security
//
// The --kafka-tls* and --kafka-sasl-* flags (kafka.RegisterSecurityFlags) secure every
// connection of the job; the password comes from --kafka-sasl-password-file
// or WEIR_KAFKA_SASL_PASSWORD. The ACLs the job needs are listed in the
// README ("Kafka security"); a missing one stops the job at start with an
// error naming the resource and the operation.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/connectors/kafka/kafkatest"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/weirtest/orders"
	"github.com/weirstream/weir/weirtest/verify"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Order is an input record.
type Order = orders.Order

// CustomerTotal is an output record: the customer's total after OrderID.
type CustomerTotal struct {
	Customer   string `json:"customer"`
	OrderID    string `json:"order_id"`
	TotalCents int64  `json:"total_cents"`
}

// jobConfig is what the pipeline needs.
type jobConfig struct {
	Brokers               []string
	Security              kafka.Security
	InputTopic            string
	OutputTopic           string
	DeadLetterTopic       string
	CommitGroup           string // "": no offsets committed for lag tools
	OnBadInput            kafka.DecodeErrorPolicy
	StopAtEnd             bool
	DedupTTL              time.Duration
	TransactionalIDPrefix string
	TransactionTimeout    time.Duration // 0: the sink's default
	ExpectedRestartTime   time.Duration // 0: the sink's default
}

// stats counts what one run of the job did. The counts are per process: a
// restored job counts the records it replays again.
type stats struct {
	in, distinct, written atomic.Int64
}

// dropped returns the number of duplicates dedup dropped.
func (st *stats) dropped() int64 { return st.in.Load() - st.distinct.Load() }

// decodeOrder parses an input record; a record that is not a complete order
// is an error, handled by the source's decode error policy.
func decodeOrder(r kafka.Record) (Order, error) {
	var o Order
	if err := json.Unmarshal(r.Value, &o); err != nil {
		return o, fmt.Errorf("not an order: %w", err)
	}
	if o.OrderID == "" || o.Customer == "" {
		return o, errors.New(`not an order: "order_id" and "customer" are required`)
	}
	return o, nil
}

// buildPipeline returns the job. It fails (p.Err) on an invalid source or
// sink configuration.
func buildPipeline(cfg jobConfig, st *stats) *runtime.Pipeline {
	p := runtime.NewPipeline("orders")
	srcCfg := kafka.SourceConfig[Order]{
		Brokers:         cfg.Brokers,
		Security:        cfg.Security,
		Topics:          []string{cfg.InputTopic},
		Deserializer:    decodeOrder,
		OnDecodeError:   cfg.OnBadInput,
		DeadLetterTopic: cfg.DeadLetterTopic,
		CommitGroup:     cfg.CommitGroup,
		Mode:            kafka.Unbounded,
	}
	if cfg.StopAtEnd {
		srcCfg.Mode = kafka.StopAtEnd
	}
	sinkCfg := kafka.SinkConfig[CustomerTotal]{
		Brokers:               cfg.Brokers,
		Security:              cfg.Security,
		Topic:                 cfg.OutputTopic,
		Mode:                  kafka.ExactlyOnce,
		TransactionalIDPrefix: cfg.TransactionalIDPrefix,
		TransactionTimeout:    cfg.TransactionTimeout,
		ExpectedRestartTime:   cfg.ExpectedRestartTime,
		Encode: func(t CustomerTotal) (kafka.Message, error) {
			v, err := json.Marshal(t)
			// Keyed by customer: a customer's totals stay in order.
			return kafka.Message{Key: []byte(t.Customer), Value: v}, err
		},
	}
	newSource, err := kafka.NewSource(srcCfg)
	if err != nil {
		p.Fail(err)
		return p
	}
	newSink, err := kafka.NewSink(sinkCfg)
	if err != nil {
		p.Fail(err)
		return p
	}

	in := runtime.From(p, "orders", newSource)
	in = operators.Map(in, func(o Order) Order { st.in.Add(1); return o })

	distinct := operators.Dedup(in, "dedup", func(o Order) string { return o.OrderID }, cfg.DedupTTL)
	distinct = operators.Map(distinct, func(o Order) Order { st.distinct.Add(1); return o })

	// Running total per customer.
	totals := operators.Process(operators.KeyBy(distinct, func(o Order) string { return o.Customer }), "totals",
		func(sc *operators.SetupContext[string]) (operators.ProcessFunc[string, Order, CustomerTotal], error) {
			total, err := state.NewValue(sc.Scope, "total-cents", state.Int64)
			if err != nil {
				return nil, err
			}
			return func(ctx *operators.Context[string], o Order, out runtime.Collector[CustomerTotal]) error {
				t, _ := total.Get()
				t += o.AmountCents
				total.Put(t)
				out.Collect(CustomerTotal{Customer: ctx.Key(), OrderID: o.OrderID, TotalCents: t})
				return nil
			}, nil
		})
	totals = operators.Map(totals, func(t CustomerTotal) CustomerTotal { st.written.Add(1); return t })

	runtime.To(totals, "customer-totals", newSink)
	return p
}

// options are the command-line flags.
type options struct {
	brokers, input, output  string
	dedupTTL                time.Duration
	onBadInput, deadLetter  string
	commitGroup             string
	txnPrefix               string
	txnTimeout, restartTime time.Duration
	stopAtEnd               bool
	sampleOrders, customers int
	duplicateRate           float64
	seed                    uint64
	checkpointDirSet        bool
	runtimeFlags            *runtime.Flags
	security                kafka.Security
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("orders", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	o.runtimeFlags = runtime.RegisterFlags(fs, runtime.Config{CheckpointDir: "./data/orders"})
	fs.StringVar(&o.brokers, "brokers", "", "Kafka bootstrap `addresses`, comma-separated; empty: start an embedded broker with sample orders")
	fs.StringVar(&o.input, "input-topic", "orders", "topic of the orders")
	fs.StringVar(&o.output, "output-topic", "customer-totals", "topic of the running totals")
	fs.DurationVar(&o.dedupTTL, "dedup-ttl", 24*time.Hour, "a copy of an order seen this long after the first is treated as a new order")
	fs.StringVar(&o.onBadInput, "on-bad-input", "fail", "what to do with input that is not an order: fail, skip or dead-letter")
	fs.StringVar(&o.deadLetter, "dead-letter-topic", "orders-dead-letter", "topic for bad input with --on-bad-input dead-letter")
	fs.StringVar(&o.commitGroup, "commit-group", "", "consumer `group` to commit each completed checkpoint's offsets to, for lag tools; empty: none")
	fs.StringVar(&o.txnPrefix, "transactional-id-prefix", "weir-orders", "prefix of the sink's transactional ids; unique to this job, stable across restarts")
	fs.DurationVar(&o.txnTimeout, "transaction-timeout", kafka.DefaultTransactionTimeout,
		"the broker aborts a transaction of the sink open this long (at most its transaction.max.timeout.ms)")
	fs.DurationVar(&o.restartTime, "expected-restart-time", kafka.DefaultExpectedRestartTime,
		"time a restart takes; a checkpoint is declined if less than this is left before --transaction-timeout to commit it")
	fs.BoolVar(&o.stopAtEnd, "stop-at-end", false, "with --brokers: stop after the input present at start (always on without --brokers)")
	fs.IntVar(&o.sampleOrders, "sample-orders", 10_000, "without --brokers: number of distinct sample orders")
	fs.IntVar(&o.customers, "sample-customers", 100, "without --brokers: number of sample customers")
	fs.Float64Var(&o.duplicateRate, "sample-duplicate-rate", 0.1, "without --brokers: fraction of sample orders sent twice")
	fs.Uint64Var(&o.seed, "sample-seed", 1, "without --brokers: seed of the sample orders")
	secFlags := kafka.RegisterSecurityFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if o.security, err = secFlags.Security(); err != nil {
		return nil, err
	}
	if o.brokers == "" && !o.security.IsZero() {
		return nil, errors.New("the --kafka-tls* and --kafka-sasl-* flags need --brokers: the embedded broker speaks plaintext")
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { o.checkpointDirSet = o.checkpointDirSet || f.Name == "checkpoint-dir" })
	if o.restartTime <= 0 || o.txnTimeout <= o.restartTime {
		return nil, fmt.Errorf("--transaction-timeout %v must exceed --expected-restart-time %v, which must be positive: "+
			"a checkpoint keeps that much time to commit its transactions after a restart", o.txnTimeout, o.restartTime)
	}
	return o, nil
}

func (o *options) jobConfig(brokers []string, rc runtime.Config) (jobConfig, error) {
	cfg := jobConfig{
		Brokers:               brokers,
		Security:              o.security,
		InputTopic:            o.input,
		OutputTopic:           o.output,
		StopAtEnd:             o.stopAtEnd || o.brokers == "",
		DedupTTL:              o.dedupTTL,
		TransactionalIDPrefix: o.txnPrefix,
		TransactionTimeout:    o.txnTimeout,
		ExpectedRestartTime:   o.restartTime,
		CommitGroup:           o.commitGroup,
	}
	switch o.onBadInput {
	case "fail":
		cfg.OnBadInput = kafka.Fail
	case "skip":
		cfg.OnBadInput = kafka.Skip
	case "dead-letter":
		cfg.OnBadInput = kafka.DeadLetter
		cfg.DeadLetterTopic = o.deadLetter
	default:
		return cfg, fmt.Errorf("--on-bad-input %q: want fail, skip or dead-letter", o.onBadInput)
	}
	if o.dedupTTL <= 0 {
		return cfg, fmt.Errorf("--dedup-ttl %v: must be positive", o.dedupTTL)
	}
	return cfg, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "orders:", err)
		return 2
	}
	rc := o.runtimeFlags.Config()
	if o.brokers == "" {
		if rc.Group != "" {
			fmt.Fprintf(stderr, "orders: --group %q needs --brokers: the embedded broker lives in one process, so the members of a group cannot share it\n", rc.Group)
			return 2
		}
		return runEmbedded(ctx, o, rc, stdout, stderr)
	}
	var brokers []string
	for _, b := range strings.Split(o.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	cfg, err := o.jobConfig(brokers, rc)
	if err != nil {
		fmt.Fprintln(stderr, "orders:", err)
		return 2
	}
	if rc.Group != "" {
		if rc.Cluster, err = kafka.NewCluster(kafka.ClusterConfig{
			Brokers: brokers, Security: o.security, Topics: []string{o.input}}); err != nil {
			fmt.Fprintln(stderr, "orders:", err)
			return 2
		}
	}
	var st stats
	rc.Events.CheckpointCompleted = func(info runtime.CheckpointInfo) {
		if info.Final { // the job ends: the inputs ended, or a signal stopped it
			fmt.Fprintf(stdout, "orders in: %d, duplicates dropped: %d, totals written: %d (this run)\n",
				st.in.Load(), st.dropped(), st.written.Load())
		}
	}
	runtime.Main(buildPipeline(cfg, &st), rc)
	return 0 // not reached: Main exits
}

// runEmbedded runs the job against an embedded broker filled with sample
// orders and checks its output.
func runEmbedded(ctx context.Context, o *options, rc runtime.Config, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, "orders:", err)
		return 1
	}
	sample, err := orders.Generate(o.seed, o.sampleOrders, o.customers, o.duplicateRate)
	if err != nil {
		return fail(err)
	}
	b, err := kafkatest.Start(kafkatest.Config{Partitions: 3,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return fail(err)
	}
	defer b.Close()
	brokers := b.Brokers()
	for _, t := range []string{o.input, o.output, o.deadLetter} {
		if err := b.CreateTopic(t, 3); err != nil {
			return fail(err)
		}
	}
	if !o.checkpointDirSet {
		// A fresh broker needs fresh checkpoints: offsets and
		// transactions of an earlier run mean nothing to it.
		dir, err := os.MkdirTemp("", "weir-orders-*")
		if err != nil {
			return fail(err)
		}
		defer os.RemoveAll(dir)
		rc.CheckpointDir = dir
	}
	if err := orders.Produce(ctx, brokers, kafka.Security{}, o.input, sample, 0); err != nil {
		return fail(err)
	}
	unique, dups := orders.Count(sample)
	fmt.Fprintf(stdout, "embedded broker %s: wrote %d sample orders to %q (%d distinct, %d duplicates)\n",
		b.Addr(), len(sample), o.input, unique, dups)

	cfg, err := o.jobConfig(brokers, rc)
	if err != nil {
		fmt.Fprintln(stderr, "orders:", err)
		return 2
	}
	var st stats
	// NB: a signal cancels the demo at once; Main, above, would stop it
	// with a final checkpoint.
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := runtime.Run(ctx, buildPipeline(cfg, &st), rc); err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "orders in: %d, duplicates dropped: %d, totals written: %d\n",
		st.in.Load(), st.dropped(), st.written.Load())

	ok, err := checkOutput(ctx, brokers, o.output, sample, stdout)
	if err != nil {
		return fail(err)
	}
	if !ok {
		return 1
	}
	return 0
}

// checkOutput reads the output read_committed, as 'weir verify --key
// customer --seq order_id --expect <distinct orders>' would, and compares
// every customer's last total with the sum of its distinct orders.
func checkOutput(ctx context.Context, brokers []string, topic string, sample []Order, w io.Writer) (bool, error) {
	want := map[string]int64{}
	seen := map[string]bool{}
	for _, o := range sample {
		if !seen[o.OrderID] {
			seen[o.OrderID] = true
			want[o.Customer] += o.AmountCents
		}
	}
	c := verify.NewChecker(verify.Options{Key: "customer", Seq: "order_id", Expect: len(seen)})
	last := map[string]int64{}
	err := verify.ReadTopic(ctx, verify.ReadConfig{Brokers: brokers, Topic: topic}, func(r verify.Record) {
		c.Add(r)
		var t CustomerTotal
		if json.Unmarshal(r.Value, &t) == nil {
			last[t.Customer] = t.TotalCents // a customer's totals are in one partition, in order
		}
	})
	if err != nil {
		return false, err
	}
	rep := c.Report()
	fmt.Fprintf(w, "verify %q (read_committed, key customer, seq order_id):\n", topic)
	if err := rep.Write(w, 10); err != nil {
		return false, err
	}
	wrong := 0
	for cust, total := range want {
		if last[cust] != total {
			if wrong < 10 {
				fmt.Fprintf(w, "  customer %s: last total %d, want %d\n", cust, last[cust], total)
			}
			wrong++
		}
	}
	if wrong > 0 {
		fmt.Fprintf(w, "final totals: %d of %d customers WRONG\n", wrong, len(want))
	} else {
		fmt.Fprintf(w, "final totals: all %d customers match the sum of their distinct orders\n", len(want))
	}
	return rep.OK() && wrong == 0, nil
}
