package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/weirstream/weir/internal/pgtest"
	"github.com/weirstream/weir/internal/testcert"
	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/weirtest/conformance"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// connect opens a connection for the test's own queries.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func exec(t *testing.T, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := c.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func queryInt(t *testing.T, c *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := c.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// crash drops an instance as kill -9 drops a process: its connections die
// without a word, and the server rolls back what was not prepared.
func crash[T any](s *sink[T]) {
	for _, c := range []*pgx.Conn{s.w, s.c} {
		if c != nil {
			c.PgConn().Conn().Close()
		}
	}
}

// opened opens an instance of cfg as subtask sub of 1.
func opened[T any](t *testing.T, cfg SinkConfig[T], sub int, restored []byte, committed bool) *sink[T] {
	t.Helper()
	s, err := newSinkInstance(cfg)
	if err != nil {
		t.Fatal(err)
	}
	info := runtime.TaskInfo{Job: "test", Operator: "sink", Subtask: sub, Parallelism: sub + 1, RestoredCommitted: committed,
		Logger: slog.New(slog.DiscardHandler)}
	if err := s.Open(t.Context(), info, restored); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func write[T any](t *testing.T, s *sink[T], recs ...T) {
	t.Helper()
	for _, r := range recs {
		if err := s.Write(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func preCommit[T any](t *testing.T, s *sink[T], id uint64) []byte {
	t.Helper()
	st, err := s.PreCommit(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func commit[T any](t *testing.T, s *sink[T], id uint64) {
	t.Helper()
	if err := s.Commit(t.Context(), id); err != nil {
		t.Fatal(err)
	}
}

// increments is a sink config whose records add to a counter: a
// non-idempotent write, applied twice if anything is.
type increment struct {
	Key string `json:"key"`
	N   int64  `json:"n"`
}

func incrementConfig(url, id string, mode Mode) SinkConfig[increment] {
	return SinkConfig[increment]{
		URL: url, SinkID: id, Mode: mode, BatchSize: 2,
		Apply: func(b *Batch, r increment) error {
			b.Queue("INSERT INTO counters (key, n) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET n = counters.n + excluded.n", r.Key, r.N)
			return nil
		},
	}
}

func counters(t *testing.T, url string) *pgx.Conn {
	c := connect(t, url)
	exec(t, c, "CREATE TABLE counters (key text PRIMARY KEY, n bigint NOT NULL)")
	return c
}

func counter(t *testing.T, c *pgx.Conn, key string) int64 {
	t.Helper()
	return queryInt(t, c, "SELECT coalesce((SELECT n FROM counters WHERE key = $1), 0)", key)
}

func prepared(t *testing.T, c *pgx.Conn) []string {
	t.Helper()
	rows, err := c.Query(t.Context(), "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() ORDER BY gid")
	if err != nil {
		t.Fatal(err)
	}
	gids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return gids
}

// TestPreparedCommitAbortRestore follows prepared transactions through
// pre-commit (durable, invisible), commit, and the two restores: one from
// a checkpoint whose epoch was prepared but not committed (Open commits
// it), one where a later epoch was prepared for a checkpoint that never
// completed (Open rolls it back).
func TestPreparedCommitAbortRestore(t *testing.T) {
	url := pgtest.DB(t)
	db := counters(t, url)
	cfg := incrementConfig(url, "t1", Prepared)

	s := opened(t, cfg, 0, nil, false)
	write(t, s, increment{"a", 1}, increment{"a", 2}, increment{"b", 5})
	st1 := preCommit(t, s, 1)
	if got := prepared(t, db); len(got) != 1 || got[0] != "t1-0-1" {
		t.Fatalf("prepared transactions after PreCommit(1): %v, want [t1-0-1]", got)
	}
	if n := counter(t, db, "a"); n != 0 {
		t.Fatalf("a = %d before Commit(1), want 0 (pre-committed data must be invisible)", n)
	}
	commit(t, s, 1)
	if a, b := counter(t, db, "a"), counter(t, db, "b"); a != 3 || b != 5 {
		t.Fatalf("after Commit(1): a = %d, b = %d, want 3, 5", a, b)
	}
	commit(t, s, 1) // idempotent
	if got := prepared(t, db); len(got) != 0 {
		t.Fatalf("prepared transactions after Commit(1): %v", got)
	}

	// Epoch 2 prepared, then a crash before checkpoint 2 completes.
	write(t, s, increment{"a", 10})
	preCommit(t, s, 2)
	crash(s)

	// Restore from checkpoint 1 (complete and committed): epoch 2 must be
	// rolled back, its record replayed.
	s = opened(t, cfg, 0, st1, true)
	if got := prepared(t, db); len(got) != 0 {
		t.Fatalf("prepared transactions after restoring checkpoint 1: %v, want none", got)
	}
	if _, aborted := s.Transactions(); aborted != 1 {
		t.Fatalf("%d transactions rolled back at Open, want 1", aborted)
	}
	if a := counter(t, db, "a"); a != 3 {
		t.Fatalf("a = %d after restoring checkpoint 1, want 3", a)
	}
	write(t, s, increment{"a", 10})
	st3 := preCommit(t, s, 3)
	crash(s) // checkpoint 3 completes, the process dies before Commit(3)

	// Restore from checkpoint 3, whose Commit never ran: Open commits it.
	s = opened(t, cfg, 0, st3, false)
	if a := counter(t, db, "a"); a != 13 {
		t.Fatalf("a = %d after restoring checkpoint 3, want 13", a)
	}
	// The same restore again (a crash right after the commit, before the
	// runtime recorded it): committed already, nothing applied twice.
	crash(s)
	s = opened(t, cfg, 0, st3, false)
	if a := counter(t, db, "a"); a != 13 {
		t.Fatalf("a = %d after restoring checkpoint 3 twice, want 13", a)
	}
	if got := prepared(t, db); len(got) != 0 {
		t.Fatalf("prepared transactions left: %v", got)
	}
}

// held decodes a state and returns its held (Staged) epochs with their
// records.
func held(t *testing.T, st []byte) map[uint64][]increment {
	t.Helper()
	dec, err := decodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64][]increment{}
	for _, p := range dec.Pending {
		if p.Mode != Staged {
			continue
		}
		recs, err := decodeRecords[increment](p)
		if err != nil {
			t.Fatal(err)
		}
		out[p.Checkpoint] = recs
	}
	return out
}

// noStagingTables checks that the sink keeps no staging tables: a held
// epoch is in the checkpoint, not in the database.
func noStagingTables(t *testing.T, c *pgx.Conn) {
	t.Helper()
	if n := queryInt(t, c, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'weir_%' AND tablename <> 'weir_commits'"); n != 0 {
		t.Fatalf("%d weir_* tables besides weir_commits", n)
	}
}

// TestStagedIdempotent shows that a held epoch is applied once however
// often it is committed: by Commit, again by Commit, and again by the Open
// of a restore that does not know the Commit returned.
func TestStagedIdempotent(t *testing.T) {
	url := pgtest.DB(t)
	db := counters(t, url)
	cfg := incrementConfig(url, "t2", Staged)

	s := opened(t, cfg, 0, nil, false)
	write(t, s, increment{"a", 1}, increment{"a", 2}, increment{"b", 5})
	st := preCommit(t, s, 1)
	want := []increment{{"a", 1}, {"a", 2}, {"b", 5}}
	if got := held(t, st); len(got) != 1 || fmt.Sprint(got[1]) != fmt.Sprint(want) {
		t.Fatalf("the state of PreCommit(1) holds %v, want checkpoint 1: %v", got, want)
	}
	if a := counter(t, db, "a"); a != 0 {
		t.Fatalf("a = %d before Commit(1), want 0", a)
	}
	noStagingTables(t, db)
	commit(t, s, 1)
	commit(t, s, 1)
	crash(s)
	for range 2 {
		s = opened(t, cfg, 0, st, false)
		crash(s)
	}
	if a, b := counter(t, db, "a"), counter(t, db, "b"); a != 3 || b != 5 {
		t.Fatalf("after Commit(1), Commit(1) and two restores: a = %d, b = %d, want 3, 5", a, b)
	}
	if n := queryInt(t, db, "SELECT checkpoint FROM weir_commits WHERE sink_id = 't2' AND subtask = 0"); n != 1 {
		t.Fatalf("weir_commits says checkpoint %d, want 1", n)
	}

	// A held epoch of a checkpoint that never completed leaves no trace.
	s = opened(t, cfg, 0, st, true)
	write(t, s, increment{"a", 100})
	preCommit(t, s, 2)
	crash(s)
	s = opened(t, cfg, 0, st, true)
	if a := counter(t, db, "a"); a != 3 {
		t.Fatalf("a = %d, want 3", a)
	}
	noStagingTables(t, db)
}

// TestStagedPartlyCommitted: checkpoint 3's state holds epochs 2 and 3
// (Commit(2) came after the barrier of 3); Commit(2) applied epoch 2, and
// the job crashed before Commit(3). The restore of checkpoint 3 must apply
// epoch 3 and not epoch 2 again.
func TestStagedPartlyCommitted(t *testing.T) {
	url := pgtest.DB(t)
	db := counters(t, url)
	cfg := incrementConfig(url, "t10", Staged)
	s := opened(t, cfg, 0, nil, false)
	write(t, s, increment{"a", 1})
	preCommit(t, s, 1)
	commit(t, s, 1)
	write(t, s, increment{"a", 10})
	preCommit(t, s, 2)
	write(t, s, increment{"a", 100})
	st3 := preCommit(t, s, 3)
	if got := held(t, st3); len(got) != 2 || len(got[2]) != 1 || len(got[3]) != 1 {
		t.Fatalf("the state of PreCommit(3) holds %v, want epochs 2 and 3", got)
	}
	commit(t, s, 2)
	if a := counter(t, db, "a"); a != 11 {
		t.Fatalf("a = %d after Commit(2), want 11", a)
	}
	crash(s)
	s = opened(t, cfg, 0, st3, false)
	if a := counter(t, db, "a"); a != 111 {
		t.Fatalf("a = %d after restoring checkpoint 3, want 111 (each epoch once)", a)
	}
	crash(s)
	s = opened(t, cfg, 0, st3, false)
	if a := counter(t, db, "a"); a != 111 {
		t.Fatalf("a = %d after restoring checkpoint 3 again, want 111", a)
	}
}

// TestStagedRecordNotJSON: Staged mode keeps records as JSON; one that has
// none fails PreCommit with an error naming it, not later.
func TestStagedRecordNotJSON(t *testing.T) {
	url := pgtest.DB(t)
	type bad struct{ C chan int }
	cfg := SinkConfig[bad]{URL: url, SinkID: "t11", Mode: Staged, Statement: "SELECT 1", Args: func(bad) []any { return nil }}
	s := opened(t, cfg, 0, nil, false)
	write(t, s, bad{}, bad{})
	_, err := s.PreCommit(t.Context(), 1)
	if err == nil || !strings.Contains(err.Error(), "record 0 of the epoch after checkpoint 0") || !strings.Contains(err.Error(), "JSON") {
		t.Fatalf("PreCommit = %v, want an error naming record 0 and JSON", err)
	}
	t.Log(err)
}

// TestPreparedStagesBehindPendingEpoch: when a checkpoint fails, the next
// barrier finds the previous epoch still prepared, holding the lock on a
// row the new epoch increments. Sending the new epoch would wait for a
// Commit that only this goroutine can make; the sink stages it instead,
// and one Commit applies both in order.
func TestPreparedStagesBehindPendingEpoch(t *testing.T) {
	url := pgtest.DB(t)
	db := counters(t, url)
	cfg := incrementConfig(url, "t3", Prepared)
	cfg.StatementTimeout = 5 * time.Second // a wait for the lock fails instead of hanging
	s := opened(t, cfg, 0, nil, false)
	write(t, s, increment{"a", 1})
	preCommit(t, s, 1) // checkpoint 1 fails: no Commit(1)
	write(t, s, increment{"a", 2}, increment{"a", 3})
	st := preCommit(t, s, 2)
	if got := held(t, st); len(got) != 1 || len(got[2]) != 2 {
		t.Fatalf("the state of PreCommit(2) holds %v, want epoch 2 (2 records)", got)
	}
	commit(t, s, 2)
	if a := counter(t, db, "a"); a != 6 {
		t.Fatalf("a = %d after Commit(2), want 6", a)
	}
	// And the same from a restore of checkpoint 2 before its Commit.
	write(t, s, increment{"a", 10})
	preCommit(t, s, 3)
	write(t, s, increment{"a", 20})
	st = preCommit(t, s, 4)
	crash(s)
	s = opened(t, cfg, 0, st, false)
	if a := counter(t, db, "a"); a != 36 {
		t.Fatalf("a = %d after restoring checkpoint 4, want 36", a)
	}
	if got := prepared(t, db); len(got) != 0 {
		t.Fatalf("prepared transactions left: %v", got)
	}
}

// TestDataLoss: a prepared transaction a complete checkpoint promised,
// rolled back behind the sink's back, is reported, not ignored. (A held
// epoch cannot be lost that way: it is in the checkpoint.)
func TestDataLoss(t *testing.T) {
	url := pgtest.DB(t)
	db := counters(t, url)
	cfg := incrementConfig(url, "t4", Prepared)
	s := opened(t, cfg, 0, nil, false)
	write(t, s, increment{"x", 1})
	st := preCommit(t, s, 1)
	crash(s)
	exec(t, db, "ROLLBACK PREPARED '"+cfg.SinkID+"-0-1'")
	s, _ = newSinkInstance(cfg)
	err := s.Open(t.Context(), runtime.TaskInfo{Subtask: 0, Parallelism: 1, Logger: slog.New(slog.DiscardHandler)}, st)
	if !errors.Is(err, ErrDataLoss) || !errors.Is(err, runtime.ErrUnrecoverable) {
		t.Fatalf("Open = %v, want ErrDataLoss wrapping runtime.ErrUnrecoverable", err)
	}
	t.Log(err)
}

// TestNoPreparedTransactions runs a server with max_prepared_transactions
// = 0: Prepared mode says what to do, Auto falls back to Staged.
func TestNoPreparedTransactions(t *testing.T) {
	pgtest.Shared(t) // skip without PostgreSQL
	srv, err := pgtest.Start(pgtest.Options{Settings: map[string]string{"max_prepared_transactions": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	url, err := srv.CreateDB(t.Context(), "noprep")
	if err != nil {
		t.Fatal(err)
	}
	counters(t, url)
	s, _ := newSinkInstance(incrementConfig(url, "t5", Prepared))
	err = s.Open(t.Context(), runtime.TaskInfo{Parallelism: 1, Logger: slog.New(slog.DiscardHandler)}, nil)
	if !errors.Is(err, ErrNoPreparedTransactions) {
		t.Fatalf("Open in Prepared mode = %v, want ErrNoPreparedTransactions", err)
	}
	if !strings.Contains(err.Error(), "max_prepared_transactions") || !strings.Contains(err.Error(), "Staged") {
		t.Fatalf("the error does not say what to do: %v", err)
	}
	s = opened(t, incrementConfig(url, "t5", Auto), 0, nil, false)
	if s.mode != Staged {
		t.Fatalf("Auto picked %v, want staged", s.mode)
	}
}

// order is a record for the bad-record tests: amounts must be positive.
type order struct {
	ID     string `json:"id"`
	Amount int64  `json:"amount"`
}

func badRecordSetup(t *testing.T, policy BadRecordPolicy) (SinkConfig[order], *pgx.Conn) {
	url := pgtest.DB(t)
	db := connect(t, url)
	exec(t, db, "CREATE TABLE orders (id text PRIMARY KEY, amount bigint NOT NULL CHECK (amount > 0))")
	cfg := SinkConfig[order]{URL: url, SinkID: "t6", Mode: Prepared, BatchSize: 4, OnBadRecord: policy,
		Statement: "INSERT INTO orders (id, amount) VALUES ($1, $2)",
		Args:      func(o order) []any { return []any{o.ID, o.Amount} }}
	if policy == DeadLetter {
		cfg.DeadLetterTable = "orders_dead"
	}
	return cfg, db
}

var someOrders = []order{{"o1", 1}, {"o2", -5}, {"o3", 3}, {"o1", 7}, {"o4", 4}, {"o5", 5}}

// TestBadRecordFail: a constraint violation stops the sink with an error
// naming the record's position and the statement; a restart cannot help.
func TestBadRecordFail(t *testing.T) {
	cfg, _ := badRecordSetup(t, Fail)
	s := opened(t, cfg, 0, nil, false)
	var err error
	for _, o := range someOrders {
		if err = s.Write(t.Context(), o); err != nil {
			break
		}
	}
	if err == nil {
		_, err = s.PreCommit(t.Context(), 1)
	}
	var rerr *RecordError
	if !errors.As(err, &rerr) || !errors.Is(err, runtime.ErrUnrecoverable) {
		t.Fatalf("err = %v, want a *RecordError wrapping runtime.ErrUnrecoverable", err)
	}
	if rerr.Position != 1 || rerr.SQLState != "23514" || !strings.Contains(err.Error(), "INSERT INTO orders") {
		t.Fatalf("err = %v (position %d, SQLSTATE %s), want record 1, 23514 and the statement", err, rerr.Position, rerr.SQLState)
	}
	t.Log(err)
}

// TestBadRecordSkip and TestBadRecordDeadLetter: the rejected records
// (a check violation, a duplicate key) are taken out of the transaction,
// the others are committed, once.
func TestBadRecordSkip(t *testing.T) {
	cfg, db := badRecordSetup(t, Skip)
	s := opened(t, cfg, 0, nil, false)
	write(t, s, someOrders...)
	preCommit(t, s, 1)
	commit(t, s, 1)
	if n := queryInt(t, db, "SELECT count(*) FROM orders"); n != 4 {
		t.Fatalf("%d orders, want 4", n)
	}
	if n := queryInt(t, db, "SELECT amount FROM orders WHERE id = 'o1'"); n != 1 {
		t.Fatalf("o1 has amount %d, want the first copy's 1", n)
	}
	if s.BadRecords() != 2 {
		t.Fatalf("BadRecords() = %d, want 2", s.BadRecords())
	}
}

func TestBadRecordDeadLetter(t *testing.T) {
	cfg, db := badRecordSetup(t, DeadLetter)
	s := opened(t, cfg, 0, nil, false)
	write(t, s, someOrders...)
	st := preCommit(t, s, 1)
	crash(s) // the dead letters are committed with the epoch, by the restore
	s = opened(t, cfg, 0, st, false)
	if n := queryInt(t, db, "SELECT count(*) FROM orders"); n != 4 {
		t.Fatalf("%d orders, want 4", n)
	}
	rows, err := db.Query(t.Context(), "SELECT position, sqlstate, record->>'id' FROM orders_dead ORDER BY position")
	if err != nil {
		t.Fatal(err)
	}
	type dead struct {
		Pos   int64
		State string
		ID    string
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[dead])
	if err != nil {
		t.Fatal(err)
	}
	want := []dead{{1, "23514", "o2"}, {3, "23505", "o1"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dead letters %v, want %v", got, want)
	}
}

// TestApplyError: a record Apply rejects follows the policy too.
func TestApplyError(t *testing.T) {
	cfg, db := badRecordSetup(t, Skip)
	cfg.Statement, cfg.Args = "", nil
	cfg.Apply = func(b *Batch, o order) error {
		if o.ID == "o3" {
			return errors.New("no o3 please")
		}
		b.Queue("INSERT INTO orders (id, amount) VALUES ($1, $2) ON CONFLICT DO NOTHING", o.ID, max(o.Amount, 1))
		return nil
	}
	s := opened(t, cfg, 0, nil, false)
	write(t, s, someOrders...)
	preCommit(t, s, 1)
	commit(t, s, 1)
	if n := queryInt(t, db, "SELECT count(*) FROM orders"); n != 4 || s.BadRecords() != 1 {
		t.Fatalf("%d orders and %d bad records, want 4 and 1", n, s.BadRecords())
	}
}

// syncBuffer is a log destination safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestPassword: the password comes from the URL, a file or PGPASSWORD,
// and appears in no log line and no error.
func TestPassword(t *testing.T) {
	url := pgtest.DB(t)
	counters(t, url)
	bare := strings.Replace(url, ":"+pgtest.Password+"@", "@", 1)
	pwFile := t.TempDir() + "/pw"
	if err := os.WriteFile(pwFile, []byte(pgtest.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongFile := t.TempDir() + "/wrong"
	if err := os.WriteFile(wrongFile, []byte("not-the-"+pgtest.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	try := func(cfg SinkConfig[increment]) error {
		cfg.Logger = log
		s, err := newSinkInstance(cfg)
		if err != nil {
			return err
		}
		defer s.Close()
		if err := s.Open(t.Context(), runtime.TaskInfo{Parallelism: 1}, nil); err != nil {
			return err
		}
		if err := s.Write(t.Context(), increment{"a", 1}); err != nil {
			return err
		}
		_, err = s.PreCommit(t.Context(), 1)
		return err
	}
	cfg := incrementConfig(url, "t7", Prepared)
	if err := try(cfg); err != nil {
		t.Fatalf("password in the URL: %v", err)
	}
	cfg.URL, cfg.PasswordFile = bare, pwFile
	if err := try(cfg); err != nil {
		t.Fatalf("password file: %v", err)
	}
	cfg.PasswordFile = ""
	t.Setenv("PGPASSWORD", pgtest.Password)
	if err := try(cfg); err != nil {
		t.Fatalf("PGPASSWORD: %v", err)
	}
	cfg.PasswordFile = wrongFile
	err := try(cfg)
	if err == nil {
		t.Fatal("a wrong password in the file was accepted")
	}
	t.Log(err)
	cfg.URL, cfg.PasswordFile = strings.Replace(url, pgtest.Password, "not-the-"+pgtest.Password, 1), ""
	err2 := try(cfg)
	if err2 == nil {
		t.Fatal("a wrong password in the URL was accepted")
	}
	// A URL that does not parse: the error quotes it, redacted.
	cfg.URL = "postgres://postgres:" + pgtest.Password + "@127.0.0.1:notaport/db"
	_, err3 := newSinkInstance(cfg)
	if err3 == nil {
		t.Fatal("a URL with a bad port was accepted")
	}
	for _, text := range []string{err.Error(), err2.Error(), err3.Error(), logs.String()} {
		if strings.Contains(text, pgtest.Password) {
			t.Fatalf("the password appears in:\n%s", text)
		}
	}
	if !strings.Contains(logs.String(), "connected") {
		t.Fatalf("no connection was logged:\n%s", logs.String())
	}
}

// TestTLSRequired: sslmode=require against a server without TLS fails at
// Open, naming the problem, rather than falling back to plain text.
func TestTLSRequired(t *testing.T) {
	url := pgtest.DB(t)
	counters(t, url)
	cfg := incrementConfig(strings.Replace(url, "sslmode=disable", "sslmode=require", 1), "t8", Prepared)
	s, _ := newSinkInstance(cfg)
	err := s.Open(t.Context(), runtime.TaskInfo{Parallelism: 1, Logger: slog.New(slog.DiscardHandler)}, nil)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "tls") {
		t.Fatalf("Open with sslmode=require against a server without TLS: %v, want a TLS error", err)
	}
	t.Log(err)
}

// TestTLSVerifyFull: with sslmode=verify-full the sink talks TLS to a
// server whose certificate the given root signed, says so in its log, and
// refuses a server that another root would vouch for.
func TestTLSVerifyFull(t *testing.T) {
	pgtest.Shared(t) // skip without PostgreSQL
	dir, other := t.TempDir(), t.TempDir()
	cert, otherCert := testcert.Write(t, dir), testcert.Write(t, other)
	srv, err := pgtest.Start(pgtest.Options{TLSCert: cert.Cert, TLSKey: cert.Key})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	url, err := srv.CreateDB(t.Context(), "tls")
	if err != nil {
		t.Fatal(err)
	}
	counters(t, url)
	var logs syncBuffer
	cfg := incrementConfig(strings.Replace(url, "sslmode=disable", "sslmode=verify-full&sslrootcert="+cert.Cert, 1), "t9", Prepared)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := opened(t, cfg, 0, nil, false)
	write(t, s, increment{"a", 1})
	preCommit(t, s, 1)
	commit(t, s, 1)
	if !strings.Contains(logs.String(), "server.tls=true") {
		t.Fatalf("the log does not say TLS is on:\n%s", logs.String())
	}
	var ssl bool
	if err := s.c.QueryRow(t.Context(), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
		t.Fatalf("pg_stat_ssl says ssl = %v (%v) for the sink's connection", ssl, err)
	}
	cfg.URL = strings.Replace(url, "sslmode=disable", "sslmode=verify-full&sslrootcert="+otherCert.Cert, 1)
	s, _ = newSinkInstance(cfg)
	err = s.Open(t.Context(), runtime.TaskInfo{Parallelism: 1}, nil)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Open against a server the root does not vouch for: %v, want a certificate error", err)
	}
	t.Log(err)
}

// TestConfigErrors: a bad config fails at construction, naming the field.
func TestConfigErrors(t *testing.T) {
	ok := incrementConfig("postgres://localhost/x", "id", Auto)
	for name, c := range map[string]struct {
		mut  func(*SinkConfig[increment])
		want string
	}{
		"no sink id":   {func(c *SinkConfig[increment]) { c.SinkID = "" }, "SinkID"},
		"bad sink id":  {func(c *SinkConfig[increment]) { c.SinkID = "a'b" }, "SinkID"},
		"no statement": {func(c *SinkConfig[increment]) { c.Apply = nil }, "Statement"},
		"both":         {func(c *SinkConfig[increment]) { c.Statement = "x"; c.Args = func(increment) []any { return nil } }, "not both"},
		"dead letter":  {func(c *SinkConfig[increment]) { c.OnBadRecord = DeadLetter }, "DeadLetterTable"},
		"bad url":      {func(c *SinkConfig[increment]) { c.URL = "postgres://a:b@[::1" }, "URL"},
		"batch":        {func(c *SinkConfig[increment]) { c.BatchSize = -1 }, "BatchSize"},
	} {
		cfg := ok
		c.mut(&cfg)
		if _, err := newSinkInstance(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: New = %v, want an error naming %s", name, err, c.want)
		}
	}
	if _, err := newSinkInstance(ok); err != nil {
		t.Fatal(err)
	}
}

// conformanceSuite runs the shared sink suite against the real server.
func conformanceSuite(t *testing.T, mode Mode) {
	url := pgtest.DB(t)
	db := connect(t, url)
	exec(t, db, "CREATE TABLE conformance (dest text NOT NULL, rec text NOT NULL)")
	records := make([]string, 200)
	for i := range records {
		records[i] = fmt.Sprintf("r-%04d", i)
	}
	// Instances of earlier incarnations, whose connections a crash must
	// cut (the suite drops them, as kill -9 drops a process).
	var (
		mu    sync.Mutex
		alive []*sink[string]
		calls int
	)
	const parallelism = 2
	conformance.TestSink(t, conformance.SinkSuite[string]{
		New: func(dest string) (runtime.Sink[string], error) {
			mu.Lock()
			defer mu.Unlock()
			if calls%parallelism == 0 {
				for _, s := range alive {
					crash(s)
				}
				alive = nil
			}
			calls++
			s, err := newSinkInstance(SinkConfig[string]{URL: url, SinkID: dest, Mode: mode, BatchSize: 3,
				Statement: "INSERT INTO conformance (dest, rec) VALUES ($1, $2)",
				Args:      func(r string) []any { return []any{dest, r} }})
			if err == nil {
				alive = append(alive, s)
			}
			return s, err
		},
		ReadCommitted: func(dest string) ([]string, error) {
			rows, err := db.Query(context.Background(), "SELECT rec FROM conformance WHERE dest = $1", dest)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, pgx.RowTo[string])
		},
		Records:     records,
		AtLeastOnce: mode == AtLeastOnce,
		Parallelism: parallelism,
		Seed:        testseed.Seed(t),
	})
	mu.Lock()
	for _, s := range alive {
		crash(s)
	}
	mu.Unlock()
	if got := prepared(t, db); len(got) != 0 && mode != AtLeastOnce {
		// Only the last schedule's prepared epochs of a crash may remain;
		// the suite ends each schedule with a clean stop.
		t.Fatalf("prepared transactions left: %v", got)
	}
}

// The suites run in parallel, each on its own database: most of their time
// is round trips.
func TestConformancePrepared(t *testing.T)    { t.Parallel(); conformanceSuite(t, Prepared) }
func TestConformanceStaged(t *testing.T)      { t.Parallel(); conformanceSuite(t, Staged) }
func TestConformanceAtLeastOnce(t *testing.T) { t.Parallel(); conformanceSuite(t, AtLeastOnce) }

// newSinkInstance makes one sink instance of cfg, as the runtime does for a
// subtask.
func newSinkInstance[T any](cfg SinkConfig[T]) (*sink[T], error) {
	newSink, err := NewSink(cfg)
	if err != nil {
		return nil, err
	}
	s, err := newSink()
	if err != nil {
		return nil, err
	}
	return s.(*sink[T]), nil
}
