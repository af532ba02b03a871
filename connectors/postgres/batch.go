package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/weirstream/weir/runtime"
)

// Batch collects the statements of a batch of records, sent to the server
// in one round trip (a pgx.Batch). SinkConfig.Apply queues a record's
// statements on it.
type Batch struct {
	b pgx.Batch
}

// Queue adds a statement with its arguments ($1, $2, …).
func (b *Batch) Queue(sql string, args ...any) {
	b.b.Queue(sql, args...)
}

func (b *Batch) len() int { return len(b.b.QueuedQueries) }

func (b *Batch) truncate(n int) {
	clear(b.b.QueuedQueries[n:])
	b.b.QueuedQueries = b.b.QueuedQueries[:n]
}

// badRecord is a record Apply rejected while a batch was built.
type badRecord struct {
	index int
	err   error
}

// applier sends records as statements into the transaction open on a
// connection, and applies the bad-record policy.
type applier[T any] struct {
	apply      func(b *Batch, rec T) error
	policy     BadRecordPolicy
	deadLetter string // quoted table name
	sinkID     string
	subtask    int
	log        *slog.Logger
	bad        *atomic.Int64

	batch    Batch
	ends     []int // per record: the end of its statements in batch
	rejected []badRecord
}

func newApplier[T any](cfg *SinkConfig[T], subtask int, log *slog.Logger, bad *atomic.Int64) *applier[T] {
	a := &applier[T]{apply: cfg.Apply, policy: cfg.OnBadRecord, sinkID: cfg.SinkID, subtask: subtask, log: log, bad: bad}
	if a.apply == nil {
		stmt, args := cfg.Statement, cfg.Args
		a.apply = func(b *Batch, rec T) error {
			b.Queue(stmt, args(rec)...)
			return nil
		}
	}
	if cfg.DeadLetterTable != "" {
		a.deadLetter = quoteTable(cfg.DeadLetterTable)
	}
	return a
}

const (
	sqlSavepoint = "SAVEPOINT weir_batch"
	sqlRelease   = "RELEASE SAVEPOINT weir_batch"
	sqlRollback  = "ROLLBACK TO SAVEPOINT weir_batch"
)

// run applies recs in the transaction open on conn, or first opens one with
// begin. pos is the position of recs[0] in its epoch and checkpoint the last
// checkpoint before it, for error messages. With the Skip and DeadLetter
// policies every round trip is wrapped in a savepoint, so that a rejected
// record can be taken out without losing the rest of the transaction.
func (a *applier[T]) run(ctx context.Context, conn *pgx.Conn, begin string, recs []T, pos int64, checkpoint uint64) error {
	for len(recs) > 0 {
		var prefix, suffix []string
		if begin != "" {
			prefix = append(prefix, begin)
		}
		if a.policy != Fail {
			prefix, suffix = append(prefix, sqlSavepoint), []string{sqlRelease}
		}
		i, stmt, err := a.send(ctx, conn, recs, prefix, suffix)
		if i < 0 && err == nil {
			return a.handleRejected(ctx, conn, recs, pos, checkpoint, len(recs))
		}
		if i < 0 {
			return err
		}
		rerr := &RecordError{Subtask: a.subtask, Checkpoint: checkpoint, Position: pos + int64(i), Statement: stmt, Err: err}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			rerr.SQLState = pgErr.Code
		}
		if stmt != "" && !permanent(err) {
			return rerr // not the record's fault: the job restarts and replays
		}
		if a.policy == Fail {
			return fmt.Errorf("%w: %w", runtime.ErrUnrecoverable, rerr)
		}
		begin = "" // the transaction is open now
		// Take the record out: undo the round trip, redo the records
		// before it, then skip or dead-letter it.
		if _, err := conn.Exec(ctx, sqlRollback); err != nil {
			return fmt.Errorf("postgres: %s: %w", sqlRollback, err)
		}
		if i > 0 {
			if j, stmt, err := a.send(ctx, conn, recs[:i], nil, nil); err != nil {
				return fmt.Errorf("postgres: record %d of the epoch after checkpoint %d, sent again after record %d was rejected: statement %q: %w",
					pos+int64(max(j, 0)), checkpoint, pos+int64(i), abbreviate(stmt), err)
			}
		}
		if err := a.handleRejected(ctx, conn, recs, pos, checkpoint, i); err != nil {
			return err
		}
		if err := a.reject(ctx, conn, recs[i], rerr); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, sqlRelease); err != nil {
			return fmt.Errorf("postgres: %s: %w", sqlRelease, err)
		}
		recs, pos = recs[i+1:], pos+int64(i)+1
	}
	return nil
}

// send queues prefix, the statements of recs and suffix in one batch and
// reads the results. On an error it returns the index of the record whose
// statement failed (with that statement), or -1 if another statement or
// the connection failed. On success it returns -1 and nil; the records
// Apply rejected are left in a.rejected.
func (a *applier[T]) send(ctx context.Context, conn *pgx.Conn, recs []T, prefix, suffix []string) (int, string, error) {
	a.batch.truncate(0)
	a.ends = a.ends[:0]
	a.rejected = a.rejected[:0]
	for _, s := range prefix {
		a.batch.Queue(s)
	}
	for i, r := range recs {
		n := a.batch.len()
		if err := a.apply(&a.batch, r); err != nil {
			a.batch.truncate(n)
			if a.policy == Fail {
				return i, "", err
			}
			a.rejected = append(a.rejected, badRecord{index: i, err: err})
		}
		a.ends = append(a.ends, a.batch.len())
	}
	for _, s := range suffix {
		a.batch.Queue(s)
	}
	queued := a.batch.b.QueuedQueries
	br := conn.SendBatch(ctx, &a.batch.b)
	failed, err := -1, error(nil)
	for j := range queued {
		if _, err = br.Exec(); err != nil {
			failed = j
			break
		}
	}
	cerr := br.Close()
	if err == nil && cerr != nil {
		return -1, "", fmt.Errorf("postgres: send batch: %w", cerr)
	}
	if err == nil {
		return -1, "", nil
	}
	stmt := queued[failed].SQL
	// The record whose statements include the failed one.
	i := sort.Search(len(a.ends), func(i int) bool { return a.ends[i] > failed })
	if failed < len(prefix) || i == len(recs) {
		return -1, stmt, fmt.Errorf("postgres: statement %q: %w", stmt, err)
	}
	return i, stmt, err
}

// handleRejected skips or dead-letters the records Apply rejected in the
// last send, among the first n records of recs.
func (a *applier[T]) handleRejected(ctx context.Context, conn *pgx.Conn, recs []T, pos int64, checkpoint uint64, n int) error {
	for _, r := range a.rejected {
		if r.index >= n {
			break
		}
		rerr := &RecordError{Subtask: a.subtask, Checkpoint: checkpoint, Position: pos + int64(r.index), Err: r.err}
		if err := a.reject(ctx, conn, recs[r.index], rerr); err != nil {
			return err
		}
	}
	a.rejected = a.rejected[:0]
	return nil
}

// reject skips or dead-letters one record.
func (a *applier[T]) reject(ctx context.Context, conn *pgx.Conn, rec T, rerr *RecordError) error {
	a.bad.Add(1)
	a.log.Warn("postgres sink: bad record "+a.policyVerb(), "err", rerr)
	if a.policy != DeadLetter {
		return nil
	}
	js, err := json.Marshal(rec)
	if err != nil {
		js, _ = json.Marshal(fmt.Sprintf("%+v", rec))
	}
	_, err = conn.Exec(ctx, "INSERT INTO "+a.deadLetter+
		" (sink_id, subtask, checkpoint, position, statement, sqlstate, error, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
		a.sinkID, a.subtask, int64(rerr.Checkpoint), rerr.Position, rerr.Statement, rerr.SQLState, rerr.Err.Error(), string(js))
	if err != nil {
		return fmt.Errorf("postgres: dead-letter %v: %w", rerr, err)
	}
	return nil
}

func (a *applier[T]) policyVerb() string {
	if a.policy == DeadLetter {
		return "dead-lettered"
	}
	return "skipped"
}

// permanent reports an error that the same record would meet again: a data
// exception (class 22) or an integrity constraint violation (class 23).
func permanent(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return len(pgErr.Code) == 5 && (pgErr.Code[:2] == "22" || pgErr.Code[:2] == "23")
}
