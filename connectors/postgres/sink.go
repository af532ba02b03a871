package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/weirstream/weir/runtime"
)

// sink is one subtask's instance of the PostgreSQL sink. It implements
// runtime.Sink[T]; see the package documentation for the protocol.
type sink[T any] struct {
	cfg  SinkConfig[T]
	info runtime.TaskInfo
	log  *slog.Logger
	mode Mode // resolved: Prepared or Staged
	w    *pgx.Conn
	c    *pgx.Conn // commits, while w may be inside the next epoch
	app  *applier[T]
	err  error // sticky: the sink is broken and must be restored

	// The current epoch.
	buf  []T    // records not yet sent (Staged: the epoch's records)
	sent int64  // records of the epoch sent so far
	inTx bool   // the epoch's transaction is open on w
	last uint64 // the last checkpoint pre-committed: the epoch began after it

	pending []pendingEpoch // pre-committed, not committed, by checkpoint
	held    map[uint64][]T // the records of the held epochs in pending

	committed, aborted atomic.Uint64
	bad                atomic.Int64
}

var (
	_ runtime.Sink[int]           = (*sink[int])(nil)
	_ runtime.TransactionReporter = (*sink[int])(nil)
)

// NewSink validates cfg and returns the sink factory for runtime.To.
func NewSink[T any](cfg SinkConfig[T]) (runtime.SinkFactory[T], error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return func() (runtime.Sink[T], error) { return &sink[T]{cfg: cfg}, nil }, nil
}

// Open connects, creates the sink's tables if missing, and finishes what
// the restored state promises: it commits the epochs pre-committed at the
// restored checkpoint (unless TaskInfo.RestoredCommitted says they were),
// then rolls back every other prepared transaction of the subtask.
func (s *sink[T]) Open(ctx context.Context, info runtime.TaskInfo, restored []byte) error {
	if s.w != nil {
		return errors.New("postgres: Open called twice")
	}
	s.info = info
	// The runtime's logger names the job, operator and subtask already.
	s.log = info.Logger
	if s.cfg.Logger != nil || s.log == nil {
		s.log = cmp.Or(s.cfg.Logger, slog.Default()).With("job", info.Job, "operator", info.Operator, "subtask", info.Subtask)
	}
	s.log = s.log.With("sink_id", s.cfg.SinkID)
	s.app = newApplier(&s.cfg, info.Subtask, s.log, &s.bad)
	if err := s.open(ctx, restored); err != nil {
		s.closeConns()
		return fmt.Errorf("postgres: open subtask %d of sink %q: %w", info.Subtask, s.cfg.SinkID, err)
	}
	return nil
}

func (s *sink[T]) open(ctx context.Context, restored []byte) error {
	st, err := decodeState(restored)
	if err != nil {
		return err
	}
	if restored != nil && st.Subtask != s.info.Subtask {
		return fmt.Errorf("state of subtask %d restored into subtask %d", st.Subtask, s.info.Subtask)
	}
	cc, err := s.cfg.connConfig()
	if err != nil {
		return err
	}
	if s.w, err = pgx.ConnectConfig(ctx, cc); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if s.c, err = pgx.ConnectConfig(ctx, cc.Copy()); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if s.mode, err = s.resolveMode(ctx); err != nil {
		return err
	}
	s.log = s.log.With("mode", s.mode.String())
	s.log.Info("postgres sink: connected", "server", describe(cc))
	ddl := []string{ddlCommits}
	if s.cfg.OnBadRecord == DeadLetter {
		ddl = append(ddl, ddlDeadLetter(quoteTable(s.cfg.DeadLetterTable)))
	}
	if err := ensureTables(ctx, s.w, ddl); err != nil {
		return err
	}
	// (a) The restored checkpoint is complete: commit what it promises.
	if len(st.Pending) > 0 {
		if s.info.RestoredCommitted {
			s.log.Info("postgres sink: the epochs of the restored checkpoint were committed before the job stopped",
				"restored_checkpoint", st.Checkpoint, "epochs", len(st.Pending))
		} else if err := s.commitEpochs(ctx, st.Pending); err != nil {
			return fmt.Errorf("restore checkpoint %d: %w", st.Checkpoint, err)
		}
	}
	s.last = st.Checkpoint
	// (b) Everything else the subtask pre-committed belongs to epochs after
	// the restored checkpoint, whose records the runtime replays.
	return s.discardOthers(ctx)
}

// resolveMode checks that the server allows prepared transactions for
// Prepared mode, and picks the mode for Auto.
func (s *sink[T]) resolveMode(ctx context.Context) (Mode, error) {
	var n int
	if err := s.c.QueryRow(ctx, "SELECT current_setting('max_prepared_transactions')::int").Scan(&n); err != nil {
		return 0, fmt.Errorf("read max_prepared_transactions: %w", err)
	}
	switch {
	case s.cfg.Mode == Staged || s.cfg.Mode == AtLeastOnce:
		return s.cfg.Mode, nil
	case n > 0:
		return Prepared, nil
	case s.cfg.Mode == Prepared:
		return 0, ErrNoPreparedTransactions
	}
	s.log.Info("postgres sink: the server does not allow prepared transactions (max_prepared_transactions = 0); using Staged mode")
	return Staged, nil
}

// Write buffers rec and sends the buffer when it holds BatchSize records.
// In Staged mode nothing is sent before Commit: the epoch is held in
// memory. In Prepared mode nothing is sent while an earlier epoch is
// prepared and not committed: its transaction may hold locks on the rows
// the next epoch changes, and only Commit, on this goroutine, releases
// them.
func (s *sink[T]) Write(ctx context.Context, rec T) error {
	if err := s.usable(); err != nil {
		return err
	}
	s.buf = append(s.buf, rec)
	if len(s.buf) >= s.cfg.BatchSize && s.canSend() {
		return s.fail(s.flush(ctx))
	}
	return nil
}

func (s *sink[T]) canSend() bool {
	return s.mode == AtLeastOnce || (s.mode == Prepared && len(s.pending) == 0)
}

// flush sends the buffered records as statements into the epoch's
// transaction.
func (s *sink[T]) flush(ctx context.Context) error {
	if len(s.buf) == 0 {
		return nil
	}
	begin := ""
	if !s.inTx {
		begin = "BEGIN"
	}
	s.inTx = true
	if err := s.app.run(ctx, s.w, begin, s.buf, s.sent, s.last); err != nil {
		return err
	}
	s.sent += int64(len(s.buf))
	clear(s.buf)
	s.buf = s.buf[:0]
	return nil
}

// PreCommit makes the epoch durable and invisible: in Prepared mode it
// sends the buffered records, records the commit in CommitsTable and
// prepares the transaction as '<SinkID>-<subtask>-<checkpointID>'; in
// Staged mode it holds the records in the returned state, which the
// runtime stores with the checkpoint. An epoch without records
// pre-commits nothing. The returned state lists every pre-committed epoch
// not yet committed, with the records of the held ones.
func (s *sink[T]) PreCommit(ctx context.Context, checkpointID uint64) ([]byte, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	if checkpointID <= s.last && s.last != 0 {
		return nil, s.fail(fmt.Errorf("postgres: PreCommit(%d) after PreCommit(%d): checkpoint ids must increase", checkpointID, s.last))
	}
	if err := s.preCommit(ctx, checkpointID); err != nil {
		return nil, s.fail(fmt.Errorf("postgres: pre-commit checkpoint %d: %w", checkpointID, err))
	}
	s.sent = 0
	s.last = checkpointID
	st, err := encodeState(sinkState{Subtask: s.info.Subtask, Checkpoint: checkpointID, Pending: s.pending})
	return st, s.fail(err)
}

// preCommit ends the epoch: it holds it in the checkpoint (Staged, or
// Prepared behind a prepared epoch), or sends and seals its transaction.
func (s *sink[T]) preCommit(ctx context.Context, checkpointID uint64) error {
	switch {
	case len(s.buf) > 0 && s.mode == Staged:
		return s.hold(checkpointID)
	case len(s.buf) > 0 && !s.canSend():
		// NB: the epoch's statements could wait forever for locks the
		// prepared epoch holds (see Write): a checkpoint failed, or its
		// Commit comes after this barrier. Hold this epoch as Staged mode
		// does; its Commit applies it after committing the prepared one.
		s.log.Info("postgres sink: the previous epoch is still prepared; holding this one in the checkpoint",
			"checkpoint", checkpointID, "prepared", s.pending[0].Checkpoint, "records", len(s.buf))
		return s.hold(checkpointID)
	}
	if err := s.flush(ctx); err != nil {
		return err
	}
	if s.inTx {
		return s.seal(ctx, checkpointID)
	}
	return nil
}

// seal ends the epoch's transaction on w: it prepares it (Prepared) or
// commits it (AtLeastOnce).
func (s *sink[T]) seal(ctx context.Context, checkpointID uint64) error {
	sql := "COMMIT"
	if s.mode == Prepared {
		// NB: SinkID is restricted to characters that need no quoting.
		sql = fmt.Sprintf("INSERT INTO %s (sink_id, subtask, checkpoint) VALUES ('%s', %d, %d); PREPARE TRANSACTION '%s'",
			CommitsTable, s.cfg.SinkID, s.info.Subtask, checkpointID, s.gid(checkpointID))
	}
	if _, err := s.w.Exec(ctx, sql); err != nil {
		return err
	}
	s.inTx = false
	if s.mode == AtLeastOnce {
		s.committed.Add(1)
		return nil
	}
	p := pendingEpoch{Mode: Prepared, Checkpoint: checkpointID, After: s.last, Rows: s.sent}
	s.pending = append(s.pending, p)
	s.log.Debug("postgres sink: pre-committed", "checkpoint", checkpointID, "rows", p.Rows, "as", "prepared")
	return nil
}

// gid names the prepared transaction of a checkpoint.
func (s *sink[T]) gid(checkpoint uint64) string {
	return fmt.Sprintf("%s-%d-%d", s.cfg.SinkID, s.info.Subtask, checkpoint)
}

// Commit makes visible every epoch pre-committed at or before checkpointID.
// It is idempotent: a held epoch whose checkpoint CommitsTable covers is
// not applied again, and an epoch whose prepared transaction is gone
// counts as committed if CommitsTable says so, and is ErrDataLoss
// otherwise.
func (s *sink[T]) Commit(ctx context.Context, checkpointID uint64) error {
	if err := s.usable(); err != nil {
		return err
	}
	i := 0
	for i < len(s.pending) && s.pending[i].Checkpoint <= checkpointID {
		i++
	}
	if i == 0 {
		return nil
	}
	if err := s.commitEpochs(ctx, s.pending[:i]); err != nil {
		return s.fail(fmt.Errorf("postgres: commit checkpoint %d: %w", checkpointID, err))
	}
	s.pending = slices.Delete(s.pending, 0, i)
	if len(s.buf) >= s.cfg.BatchSize && s.canSend() {
		return s.fail(s.flush(ctx))
	}
	return nil
}

// commitEpochs commits pre-committed epochs, in checkpoint order (each
// prepared one on its own, each run of held ones in one transaction), and
// then forgets the commit records they superseded.
func (s *sink[T]) commitEpochs(ctx context.Context, epochs []pendingEpoch) error {
	for i := 0; i < len(epochs); {
		if epochs[i].Mode == Prepared {
			if err := s.commitPrepared(ctx, epochs[i]); err != nil {
				return err
			}
			s.committed.Add(1)
			i++
			continue
		}
		j := i + 1
		for j < len(epochs) && epochs[j].Mode == Staged {
			j++
		}
		if err := s.commitHeld(ctx, epochs[i:j]); err != nil {
			return err
		}
		s.committed.Add(uint64(j - i))
		i = j
	}
	newest := epochs[len(epochs)-1].Checkpoint
	if _, err := s.c.Exec(ctx, "DELETE FROM "+CommitsTable+" WHERE sink_id = $1 AND subtask = $2 AND checkpoint < $3",
		s.cfg.SinkID, s.info.Subtask, int64(newest)); err != nil {
		return fmt.Errorf("forget old commit records: %w", err)
	}
	return nil
}

func (s *sink[T]) commitPrepared(ctx context.Context, p pendingEpoch) error {
	gid := s.gid(p.Checkpoint)
	var found bool
	err := s.c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = $1 AND database = current_database())", gid).Scan(&found)
	if err != nil {
		return err
	}
	if !found {
		return s.checkCommitted(ctx, p, "prepared transaction "+gid)
	}
	if _, err := s.c.Exec(ctx, "COMMIT PREPARED '"+gid+"'"); err != nil {
		return fmt.Errorf("COMMIT PREPARED '%s': %w", gid, err)
	}
	s.log.Debug("postgres sink: committed", "checkpoint", p.Checkpoint, "gid", gid)
	return nil
}

// checkCommitted explains a missing pre-committed epoch: committed before
// (CommitsTable holds its checkpoint or a later one) or lost.
func (s *sink[T]) checkCommitted(ctx context.Context, p pendingEpoch, what string) error {
	var ok bool
	err := s.c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+CommitsTable+" WHERE sink_id = $1 AND subtask = $2 AND checkpoint >= $3)",
		s.cfg.SinkID, s.info.Subtask, int64(p.Checkpoint)).Scan(&ok)
	if err != nil {
		return err
	}
	if ok {
		return nil // committed by an earlier attempt
	}
	s.log.Error("postgres sink: DATA LOSS: an epoch promised by a completed checkpoint can no longer be committed; "+
		"did someone roll back or delete it?", "checkpoint", p.Checkpoint, "missing", what, "rows", p.Rows)
	return fmt.Errorf("%w: checkpoint %d: %s (%d records) is gone and %s has no record of its commit",
		ErrDataLoss, p.Checkpoint, what, p.Rows, CommitsTable)
}

// discardOthers rolls back the subtask's prepared transactions: at Open,
// after the promised ones were committed, all that is left belongs to
// checkpoints that never completed. (Held epochs need no discarding: they
// were in the state of those checkpoints, and nowhere else.)
func (s *sink[T]) discardOthers(ctx context.Context) error {
	prefix := fmt.Sprintf("%s-%d-", s.cfg.SinkID, s.info.Subtask)
	rows, err := s.c.Query(ctx, "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, $1)", prefix)
	if err != nil {
		return fmt.Errorf("list prepared transactions: %w", err)
	}
	gids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list prepared transactions: %w", err)
	}
	for _, gid := range gids {
		if !isDigits(gid[len(prefix):]) {
			continue // another sink's, whose SinkID extends ours
		}
		if _, err := s.c.Exec(ctx, "ROLLBACK PREPARED '"+gid+"'"); err != nil {
			return fmt.Errorf("ROLLBACK PREPARED '%s': %w", gid, err)
		}
		s.aborted.Add(1)
		s.log.Info("postgres sink: rolled back the prepared transaction of a checkpoint that did not complete", "gid", gid)
	}
	return nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// Close releases the connections. It rolls back the current epoch's
// transaction (its records were never pre-committed) and leaves prepared
// transactions for the next Open.
func (s *sink[T]) Close() error {
	if s.w != nil && s.inTx {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := s.w.Exec(ctx, "ROLLBACK"); err == nil {
			s.aborted.Add(1)
		}
		cancel()
		s.inTx = false
	}
	s.closeConns()
	if s.err == nil {
		s.err = errors.New("postgres: sink closed")
	}
	return nil
}

func (s *sink[T]) closeConns() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range []*pgx.Conn{s.w, s.c} {
		if c != nil {
			_ = c.Close(ctx)
		}
	}
}

func (s *sink[T]) usable() error {
	if s.err != nil {
		return s.err
	}
	if s.w == nil {
		return errors.New("postgres: sink not open")
	}
	return nil
}

// fail makes err sticky: after a failed statement the epoch's transaction
// is aborted, and only a restore continues correctly.
func (s *sink[T]) fail(err error) error {
	if err != nil && s.err == nil {
		s.err = err
	}
	return err
}

// Transactions returns how many epochs the sink committed (including those
// of a restored checkpoint committed by Open) and rolled back or discarded.
// The runtime exports them as weir_sink_transactions_total; it is safe to
// call from any goroutine.
func (s *sink[T]) Transactions() (committed, aborted uint64) {
	return s.committed.Load(), s.aborted.Load()
}

// BadRecords returns how many records the sink skipped or dead-lettered
// (OnBadRecord). A restored job counts the records it replays again. It is
// safe to call from any goroutine.
func (s *sink[T]) BadRecords() int64 { return s.bad.Load() }
