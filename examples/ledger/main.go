// Command ledger is weir's textbook exactly-once job into a database: it
// reads orders from Kafka, drops the duplicates an at-least-once producer
// leaves behind, and for each distinct order inserts it into PostgreSQL and
// adds its amount to the customer's total, both in the sink's exactly-once
// transaction. The increment is deliberately not idempotent: applied twice,
// it counts the order twice, and nothing would hide it.
//
//	ledger --postgres-url URL                  # embedded broker, sample orders
//	ledger --postgres-url URL --brokers ADDR [--input-topic orders]
//	       [--postgres-password-file FILE] [--postgres-mode auto|prepared|staged]
//	       [--postgres-schema NAME] [--postgres-statement-timeout 1m] [--sink-id ledger] [--dedup-ttl 24h]
//	       [--on-bad-record fail|skip|dead-letter] [--stop-at-end]
//	       [--checkpoint-dir DIR] [--checkpoint-interval 1s] [--metrics-addr ADDR] [runtime flags]
//
// Input records are JSON, {"order_id": "o-000001", "customer": "c-0042",
// "amount_cents": 123}, and may arrive more than once. The job creates its
// tables if missing:
//
//	orders(order_id text PRIMARY KEY, customer text, amount_cents bigint, processed_at timestamptz)
//	customer_totals(customer text PRIMARY KEY, total_cents bigint)
//
// and, per distinct order, runs
//
//	INSERT INTO orders VALUES ($order_id, $customer, $amount_cents, now())
//	INSERT INTO customer_totals VALUES ($customer, $amount_cents)
//	  ON CONFLICT (customer) DO UPDATE SET total_cents = customer_totals.total_cents + excluded.total_cents
//
// # Pipeline
//
//	Kafka source "orders" → Dedup "dedup" by order_id → KeyBy(customer) "route"
//	                      → PostgreSQL sink "ledger"
//
// Dedup remembers each order id for --dedup-ttl. The stream is keyed by
// customer before the sink so that each customer's total is changed by one
// subtask only: a prepared transaction holds its rows' locks until its
// checkpoint completes.
//
// # PostgreSQL
//
// --postgres-url is a URL or key=value string as libpq and pgx take it;
// sslmode in it selects TLS (require, verify-ca, verify-full with
// sslrootcert=FILE). The password comes from the URL, from
// --postgres-password-file, or from PGPASSWORD; it is never logged. Without
// --postgres-url, the PG* environment variables (PGHOST, PGDATABASE, …) are
// used if set; otherwise the job stops and says how to point it at a
// server. On Debian, a local server for trying it out:
//
//	apt-get install postgresql
//	pg_ctlcluster 15 main start
//	su postgres -c "psql -c \"ALTER USER postgres PASSWORD 'secret'\" -c 'ALTER SYSTEM SET max_prepared_transactions = 16'"
//	pg_ctlcluster 15 main restart
//	ledger --postgres-url postgres://postgres:secret@localhost/postgres
//
// The default mode, auto, uses prepared transactions when the server allows
// them (max_prepared_transactions > 0) and otherwise holds each epoch's
// orders in the checkpoint until it completes (staged; see connectors/postgres).
//
// # Without --brokers
//
// The job starts an embedded development broker, fills the input topic with
// sample orders (some duplicated), reads it to the end, and checks the
// tables: every distinct order once, every customer's total the sum of its
// distinct orders, no prepared transaction left. The tables must be empty
// (use a new --postgres-schema to run it again).
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

	"github.com/jackc/pgx/v5"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/connectors/kafka/kafkatest"
	"github.com/weirstream/weir/connectors/postgres"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/weirtest/orders"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Order is an input record.
type Order = orders.Order

// The statements of a distinct order. The increment is not idempotent on
// purpose. In at-least-once mode the insert tolerates the orders it sees
// again, so that the job survives its own replays and the totals show them.
const (
	insertOrder       = "INSERT INTO orders (order_id, customer, amount_cents, processed_at) VALUES ($1, $2, $3, now())"
	insertOrderAgain  = insertOrder + " ON CONFLICT (order_id) DO NOTHING"
	incrementCustomer = "INSERT INTO customer_totals (customer, total_cents) VALUES ($1, $2) " +
		"ON CONFLICT (customer) DO UPDATE SET total_cents = customer_totals.total_cents + excluded.total_cents"
)

// schemaDDL creates the job's tables.
var schemaDDL = []string{
	`CREATE TABLE IF NOT EXISTS orders (
	order_id     text PRIMARY KEY,
	customer     text NOT NULL,
	amount_cents bigint NOT NULL,
	processed_at timestamptz NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS customer_totals (
	customer    text PRIMARY KEY,
	total_cents bigint NOT NULL)`,
}

// jobConfig is what the pipeline needs.
type jobConfig struct {
	Brokers    []string
	Security   kafka.Security
	InputTopic string
	StopAtEnd  bool
	DedupTTL   time.Duration
	Sink       postgres.SinkConfig[Order]
}

// stats counts what one run of the job did, per process.
type stats struct {
	in, distinct atomic.Int64
}

// decodeOrder parses an input record; a record that is not a complete order
// fails the job with the record's topic, partition and offset.
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
	p := runtime.NewPipeline("ledger")
	srcCfg := kafka.SourceConfig[Order]{
		Brokers:      cfg.Brokers,
		Security:     cfg.Security,
		Topics:       []string{cfg.InputTopic},
		Deserializer: decodeOrder,
		Mode:         kafka.Unbounded,
		// NB: a barrier follows the records of the Read before it; 1 MiB
		// (the default) is ~15,000 orders, seconds of the database's time.
		MaxBytesPerRead: 64 << 10,
	}
	if cfg.StopAtEnd {
		srcCfg.Mode = kafka.StopAtEnd
	}
	newSource, err := kafka.NewSource(srcCfg)
	if err != nil {
		p.Fail(err)
		return p
	}
	sink, err := postgres.NewSink(cfg.Sink)
	if err != nil {
		p.Fail(err)
		return p
	}
	in := runtime.From(p, "orders", newSource)
	in = operators.Map(in, func(o Order) Order { st.in.Add(1); return o })
	distinct := operators.Dedup(in, "dedup", func(o Order) string { return o.OrderID }, cfg.DedupTTL)
	// Each customer's row belongs to one subtask of the sink.
	routed := operators.Process(operators.KeyBy(distinct, func(o Order) string { return o.Customer }), "route",
		func(*operators.SetupContext[string]) (operators.ProcessFunc[string, Order, Order], error) {
			return func(_ *operators.Context[string], o Order, out runtime.Collector[Order]) error {
				st.distinct.Add(1)
				out.Collect(o)
				return nil
			}, nil
		})
	runtime.To(routed, "ledger", sink)
	return p
}

// applyOrder returns the sink's Apply: the order's two statements.
func applyOrder(insert string) func(b *postgres.Batch, o Order) error {
	return func(b *postgres.Batch, o Order) error {
		b.Queue(insert, o.OrderID, o.Customer, o.AmountCents)
		b.Queue(incrementCustomer, o.Customer, o.AmountCents)
		return nil
	}
}

// options are the command-line flags.
type options struct {
	brokers, input                string
	pgURL, pgPasswordFile, pgMode string
	schema, sinkID                string
	onBadRecord, deadLetterTable  string
	dedupTTL, stmtTimeout         time.Duration
	batch                         int
	stopAtEnd                     bool
	sampleOrders, customers       int
	duplicateRate                 float64
	seed                          uint64
	checkpointDirSet              bool
	runtimeFlags                  *runtime.Flags
	security                      kafka.Security
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("ledger", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	o.runtimeFlags = runtime.RegisterFlags(fs, runtime.Config{CheckpointDir: "./data/ledger"})
	fs.StringVar(&o.brokers, "brokers", "", "Kafka bootstrap `addresses`, comma-separated; empty: start an embedded broker with sample orders")
	fs.StringVar(&o.input, "input-topic", "orders", "topic of the orders")
	fs.StringVar(&o.pgURL, "postgres-url", "", "PostgreSQL connection `URL` (postgres://user@host:5432/db?sslmode=verify-full); empty: the PG* environment variables")
	fs.StringVar(&o.pgPasswordFile, "postgres-password-file", "", "`file` whose first line is the PostgreSQL password (else the URL's, or PGPASSWORD)")
	fs.StringVar(&o.pgMode, "postgres-mode", "auto", "auto, prepared or staged (see connectors/postgres); at-least-once shows what the exactly-once modes prevent")
	fs.StringVar(&o.schema, "postgres-schema", "", "schema of the tables, created if missing; empty: the connection's search_path")
	fs.StringVar(&o.sinkID, "sink-id", "ledger", "names the job's prepared transactions and commit records; unique to this job, stable across restarts")
	fs.StringVar(&o.onBadRecord, "on-bad-record", "fail", "what to do with an order the database rejects: fail, skip or dead-letter")
	fs.StringVar(&o.deadLetterTable, "dead-letter-table", "orders_dead_letter", "table for rejected orders with --on-bad-record dead-letter")
	fs.DurationVar(&o.dedupTTL, "dedup-ttl", 24*time.Hour, "a copy of an order seen this long after the first is treated as a new order")
	fs.DurationVar(&o.stmtTimeout, "postgres-statement-timeout", postgres.DefaultStatementTimeout, "bound of every statement of the sink")
	fs.IntVar(&o.batch, "sink-batch", postgres.DefaultBatchSize, "orders sent to PostgreSQL in one round trip")
	fs.BoolVar(&o.stopAtEnd, "stop-at-end", false, "with --brokers: stop after the input present at start (always on without --brokers)")
	fs.IntVar(&o.sampleOrders, "sample-orders", 10_000, "without --brokers: number of distinct sample orders")
	fs.IntVar(&o.customers, "sample-customers", 100, "without --brokers: number of sample customers")
	fs.Float64Var(&o.duplicateRate, "sample-duplicate-rate", 0.1, "without --brokers: fraction of sample orders sent twice")
	fs.Uint64Var(&o.seed, "sample-seed", 1, "without --brokers: seed of the sample orders")
	secFlags := kafka.RegisterSecurityFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if o.security, err = secFlags.Security(); err != nil {
		return nil, err
	}
	if o.brokers == "" && !o.security.IsZero() {
		return nil, errors.New("the --kafka-tls* and --kafka-sasl-* flags need --brokers: the embedded broker speaks plaintext")
	}
	if o.pgURL == "" && os.Getenv("PGHOST") == "" && os.Getenv("PGDATABASE") == "" && os.Getenv("PGSERVICE") == "" {
		return nil, errors.New("no PostgreSQL server: give --postgres-url postgres://USER@HOST:5432/DB (or set PGHOST and PGDATABASE); " +
			"the job creates its tables. To run one locally on Debian: apt-get install postgresql, then see 'go doc ./examples/ledger'")
	}
	fs.Visit(func(f *flag.Flag) { o.checkpointDirSet = o.checkpointDirSet || f.Name == "checkpoint-dir" })
	if o.dedupTTL <= 0 {
		return nil, fmt.Errorf("--dedup-ttl %v: must be positive", o.dedupTTL)
	}
	return o, nil
}

func (o *options) sinkConfig(rc runtime.Config) (postgres.SinkConfig[Order], error) {
	cfg := postgres.SinkConfig[Order]{
		URL:              o.pgURL,
		PasswordFile:     o.pgPasswordFile,
		SinkID:           o.sinkID,
		Schema:           o.schema,
		Apply:            applyOrder(insertOrder),
		BatchSize:        o.batch,
		StatementTimeout: o.stmtTimeout,
	}
	switch o.pgMode {
	case "auto":
	case "prepared":
		cfg.Mode = postgres.Prepared
	case "staged":
		cfg.Mode = postgres.Staged
	case "at-least-once":
		cfg.Mode = postgres.AtLeastOnce
		cfg.Apply = applyOrder(insertOrderAgain)
	default:
		return cfg, fmt.Errorf("--postgres-mode %q: want auto, prepared or staged", o.pgMode)
	}
	switch o.onBadRecord {
	case "fail":
	case "skip":
		cfg.OnBadRecord = postgres.Skip
	case "dead-letter":
		cfg.OnBadRecord = postgres.DeadLetter
		cfg.DeadLetterTable = o.deadLetterTable
	default:
		return cfg, fmt.Errorf("--on-bad-record %q: want fail, skip or dead-letter", o.onBadRecord)
	}
	return cfg, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "ledger:", err)
		return 2
	}
	rc := o.runtimeFlags.Config()
	// NB: a database takes orders more slowly than Kafka delivers them
	// (here ~10,000 a second), and a checkpoint's barrier waits behind the
	// records in flight between the tasks: fewer in flight keep
	// checkpoints, and so commits, shorter. With the runtime's 4 batches of
	// 1024 per connection (and 1 MiB reads) checkpoints of 60,000 orders
	// took 0.9–2.2 s.
	rc.BatchSize, rc.ChannelBuffers = 128, 2
	sinkCfg, err := o.sinkConfig(rc)
	if err != nil {
		fmt.Fprintln(stderr, "ledger:", err)
		return 2
	}
	if err := createTables(ctx, sinkCfg); err != nil {
		fmt.Fprintln(stderr, "ledger:", err)
		return 1
	}
	cfg := jobConfig{Security: o.security, InputTopic: o.input, StopAtEnd: o.stopAtEnd || o.brokers == "",
		DedupTTL: o.dedupTTL, Sink: sinkCfg}
	if o.brokers == "" {
		return runEmbedded(ctx, o, cfg, rc, stdout, stderr)
	}
	for _, b := range strings.Split(o.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.Brokers = append(cfg.Brokers, b)
		}
	}
	var st stats
	rc.Events.CheckpointCompleted = func(info runtime.CheckpointInfo) {
		if info.Final { // the job ends: the inputs ended, or a signal stopped it
			fmt.Fprintf(stdout, "orders in: %d, distinct orders written: %d (this run)\n", st.in.Load(), st.distinct.Load())
		}
	}
	runtime.Main(buildPipeline(cfg, &st), rc)
	return 0 // not reached: Main exits
}

// connect opens a connection as the sink would (same URL, password and
// schema).
func connect(ctx context.Context, cfg postgres.SinkConfig[Order]) (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("--postgres-url: %w", err)
	}
	if cfg.PasswordFile != "" {
		if cc.Password, err = postgres.ReadPasswordFile(cfg.PasswordFile); err != nil {
			return nil, err
		}
	}
	if cfg.Schema != "" {
		cc.RuntimeParams["search_path"] = pgx.Identifier{cfg.Schema}.Sanitize()
	}
	c, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return c, nil
}

// createTables creates the schema, if one is named, and the job's tables.
func createTables(ctx context.Context, cfg postgres.SinkConfig[Order]) error {
	c, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	ddl := schemaDDL
	if cfg.Schema != "" {
		ddl = append([]string{"CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{cfg.Schema}.Sanitize()}, ddl...)
	}
	for _, stmt := range ddl {
		if _, err := c.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("create tables: %w", err)
		}
	}
	return nil
}

// runEmbedded runs the job against an embedded broker filled with sample
// orders and checks the tables.
func runEmbedded(ctx context.Context, o *options, cfg jobConfig, rc runtime.Config, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, "ledger:", err)
		return 1
	}
	db, err := connect(ctx, cfg.Sink)
	if err != nil {
		return fail(err)
	}
	defer db.Close(context.Background())
	var rows int64
	if err := db.QueryRow(ctx, "SELECT (SELECT count(*) FROM orders) + (SELECT count(*) FROM customer_totals)").Scan(&rows); err != nil {
		return fail(err)
	}
	if rows > 0 {
		return fail(fmt.Errorf("the tables orders and customer_totals hold %d rows: the sample run needs them empty "+
			"(pass a new --postgres-schema, or --brokers to process real input)", rows))
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
	cfg.Brokers = b.Brokers()
	if err := b.CreateTopic(o.input, 3); err != nil {
		return fail(err)
	}
	if !o.checkpointDirSet {
		// A fresh broker needs fresh checkpoints: offsets of an earlier
		// run mean nothing to it.
		dir, err := os.MkdirTemp("", "weir-ledger-*")
		if err != nil {
			return fail(err)
		}
		defer os.RemoveAll(dir)
		rc.CheckpointDir = dir
	}
	if err := orders.Produce(ctx, cfg.Brokers, kafka.Security{}, o.input, sample, 0); err != nil {
		return fail(err)
	}
	unique, dups := orders.Count(sample)
	fmt.Fprintf(stdout, "embedded broker %s: wrote %d sample orders to %q (%d distinct, %d duplicates)\n",
		b.Addr(), len(sample), o.input, unique, dups)
	var st stats
	// NB: a signal cancels the demo at once; Main, above, would stop it
	// with a final checkpoint.
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := runtime.Run(ctx, buildPipeline(cfg, &st), rc); err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "orders in: %d, duplicates dropped: %d, distinct orders written: %d\n",
		st.in.Load(), st.in.Load()-st.distinct.Load(), st.distinct.Load())
	rep, err := Check(ctx, db, cfg.Sink.SinkID, sample)
	if err != nil {
		return fail(err)
	}
	fmt.Fprint(stdout, rep)
	if !rep.OK() {
		return 1
	}
	return 0
}
