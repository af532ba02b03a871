// Command postgres measures the cost of exactly-once delivery to PostgreSQL:
// the same rows inserted, on the same server, in the same run, by
//
//   - plain: a pgx program with no framework, P connections each sending
//     batches of --batch INSERTs (pgx.Batch) and committing each batch;
//   - prepared and staged: a weir job, generator → connectors/postgres with 1 s
//     checkpoints, in each exactly-once mode, parallelism P;
//
// and prints rows per second and the ratio of each mode to plain (target:
// 0.7 or more).
//
//	go run ./benchmarks/cmd/postgres [--rows N] [--parallelism P] [--batch B] [--rounds R] [--postgres-url URL]
//
// Without --postgres-url it starts a server from Debian's packages
// (internal/pgtest) with fsync on, as a production server runs; the server
// needs max_prepared_transactions > 0 for the prepared mode. Every run
// writes to a fresh table and is counted afterwards, so that a fast but
// wrong run cannot pass. Rates are rows divided by wall time from start to
// the last commit; the best of the rounds counts.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/weirstream/weir/benchmarks"
	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/connectors/postgres"
	"github.com/weirstream/weir/internal/pgtest"
	"github.com/weirstream/weir/runtime"
)

func main() {
	rows := flag.Int("rows", 1_000_000, "rows to insert per run")
	parallelism := flag.Int("parallelism", 2, "connections of the plain program, subtasks of the job")
	batch := flag.Int("batch", postgres.DefaultBatchSize, "rows per round trip, in both")
	interval := flag.Duration("checkpoint-interval", time.Second, "checkpoint interval of the job")
	rounds := flag.Int("rounds", 3, "run every contender this many times; the best counts")
	url := flag.String("postgres-url", "", "server to use; empty: start one from Debian's packages")
	only := flag.String("only", "plain,prepared,staged", "comma-separated contenders to run")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the first run of the last contender to this file")
	flag.Parse()
	if err := bench(*url, *rows, *parallelism, *batch, *interval, *rounds, strings.Split(*only, ","), *cpuProfile); err != nil {
		fmt.Fprintln(os.Stderr, "postgres bench:", err)
		os.Exit(1)
	}
}

// contender is one way of inserting the rows into table.
type contender struct {
	name string
	run  func(table string) error
}

const insert = "INSERT INTO %s (id, payload) VALUES ($1, $2)"

// row is what every contender inserts: an id and 64 bytes of payload.
type row struct {
	ID      int64  `json:"id"`
	Payload string `json:"payload"`
}

func makeRow(seq uint64) row {
	p := fmt.Sprintf("payload-%010d-", seq)
	return row{ID: int64(seq), Payload: p + strings.Repeat("x", 64-len(p))}
}

func bench(url string, rows, parallelism, batch int, interval time.Duration, rounds int, only []string, cpuProfile string) error {
	ctx := context.Background()
	if url == "" {
		srv, err := pgtest.Start(pgtest.Options{Durable: true})
		if err != nil {
			return err
		}
		defer srv.Stop()
		if url, err = srv.CreateDB(ctx, "bench"); err != nil {
			return err
		}
	}
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer db.Close(ctx)
	contenders := []contender{
		{"plain", func(table string) error { return plain(ctx, url, table, rows, parallelism, batch) }},
		{"prepared", func(table string) error {
			return job(url, table, postgres.Prepared, rows, parallelism, batch, interval)
		}},
		{"staged", func(table string) error { return job(url, table, postgres.Staged, rows, parallelism, batch, interval) }},
	}
	contenders = slices.DeleteFunc(contenders, func(c contender) bool { return !slices.Contains(only, c.name) })
	if len(contenders) == 0 {
		return fmt.Errorf("--only %q: want some of plain, prepared, staged", only)
	}
	best := map[string]float64{}
	for round := range rounds {
		for i, c := range contenders {
			profile := ""
			if round == 0 && i == len(contenders)-1 {
				profile = cpuProfile
			}
			stop, err := benchmarks.StartCPUProfile(profile)
			if err != nil {
				return err
			}
			table := fmt.Sprintf("bench_%s_%d", c.name, round)
			if _, err := db.Exec(ctx, "CREATE TABLE "+table+" (id bigint NOT NULL, payload text NOT NULL)"); err != nil {
				return err
			}
			start := time.Now()
			if err := c.run(table); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			rate := float64(rows) / time.Since(start).Seconds()
			stop()
			var n int
			if err := db.QueryRow(ctx, "SELECT count(DISTINCT id) FROM "+table).Scan(&n); err != nil {
				return err
			}
			if n != rows {
				return fmt.Errorf("%s: table %s holds %d distinct rows, want %d", c.name, table, n, rows)
			}
			if _, err := db.Exec(ctx, "DROP TABLE "+table); err != nil {
				return err
			}
			fmt.Printf("round %d %-9s %10.0f rows/s\n", round+1, c.name+":", rate)
			best[c.name] = max(best[c.name], rate)
		}
	}
	var version string
	_ = db.QueryRow(ctx, "SHOW server_version").Scan(&version)
	fmt.Printf("machine: %s/%s, %s, %d CPUs; PostgreSQL %s; %d rows, parallelism %d, batch %d, checkpoints every %v\n",
		goruntime.GOOS, goruntime.GOARCH, benchmarks.CPUModel(), goruntime.NumCPU(), version, rows, parallelism, batch, interval)
	fmt.Printf("%-10s %12s %8s\n", "", "rows/s", "/plain")
	for _, c := range contenders {
		ratio := "-"
		if best["plain"] > 0 {
			ratio = fmt.Sprintf("%.2f", best[c.name]/best["plain"])
		}
		fmt.Printf("%-10s %12.0f %8s\n", c.name, best[c.name], ratio)
	}
	fmt.Println("target: prepared and staged >= 0.70 of plain")
	return nil
}

// plain inserts the rows with pgx alone: parallelism connections, each
// sending its share (row i to connection i mod parallelism, as the job's
// generator splits them) in batches committed one by one.
func plain(ctx context.Context, url, table string, rows, parallelism, batch int) error {
	sql := fmt.Sprintf(insert, table)
	errs := make(chan error, parallelism)
	var wg sync.WaitGroup
	for c := range parallelism {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- plainConn(ctx, url, sql, c, rows, parallelism, batch)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func plainConn(ctx context.Context, url, sql string, first, rows, stride, batch int) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	b := &pgx.Batch{}
	send := func() error {
		b.Queue("COMMIT")
		err := conn.SendBatch(ctx, b).Close()
		b = &pgx.Batch{}
		return err
	}
	for i := first; i < rows; i += stride {
		if b.Len() == 0 {
			b.Queue("BEGIN")
		}
		r := makeRow(uint64(i))
		b.Queue(sql, r.ID, r.Payload)
		if b.Len() == batch+1 {
			if err := send(); err != nil {
				return err
			}
		}
	}
	if b.Len() > 0 {
		return send()
	}
	return nil
}

// job runs generator → connectors/postgres once in mode.
func job(url, table string, mode postgres.Mode, rows, parallelism, batch int, interval time.Duration) error {
	dir, err := os.MkdirTemp("", "weir-postgres-bench-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sql := fmt.Sprintf(insert, table)
	sink, err := postgres.NewSink(postgres.SinkConfig[row]{
		URL: url, SinkID: table, Mode: mode, BatchSize: batch,
		Statement: sql,
		Args:      func(r row) []any { return []any{r.ID, r.Payload} },
	})
	if err != nil {
		return err
	}
	rowSource, err := generator.NewSource(generator.SourceConfig[row]{Record: makeRow, Count: uint64(rows)})
	if err != nil {
		return err
	}
	p := runtime.NewPipeline("postgres-bench")
	in := runtime.From(p, "rows", rowSource)
	runtime.To(in, "sink", sink)
	return runtime.Run(context.Background(), p, runtime.Config{
		CheckpointDir:      dir,
		CheckpointInterval: interval,
		Parallelism:        parallelism,
		Logger:             slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
}
