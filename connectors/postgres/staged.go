package postgres

import (
	"context"
	"fmt"
)

// hold pre-commits the buffered records in the checkpoint (Staged): it
// encodes them for the state PreCommit returns, which the runtime stores
// durably with the checkpoint, and keeps them in memory for Commit. The
// database sees nothing until Commit.
func (s *sink[T]) hold(checkpointID uint64) error {
	wal, err := encodeRecords(s.buf, s.sent, s.last)
	if err != nil {
		return err
	}
	p := pendingEpoch{Mode: Staged, Checkpoint: checkpointID, After: s.last, Rows: int64(len(s.buf)), Bytes: int64(len(wal)), wal: wal}
	if s.held == nil {
		s.held = map[uint64][]T{}
	}
	// The buffer is the epoch's now; the next epoch gets a new one.
	s.held[checkpointID], s.buf = s.buf, nil
	s.pending = append(s.pending, p)
	s.log.Debug("postgres sink: pre-committed", "checkpoint", checkpointID, "rows", p.Rows, "as", "held", "bytes", p.Bytes)
	return nil
}

// commitHeld applies held epochs (consecutive, in checkpoint order) in one
// transaction on c, which also adds the newest one's checkpoint to
// CommitsTable. The epochs whose checkpoint CommitsTable covers already
// were applied by an earlier attempt (a Commit whose return the runtime
// did not record before a crash) and are skipped: CommitsTable grows with
// each commit, in the same transaction as the epochs it covers. The
// INSERT has no ON CONFLICT: a concurrent attempt at the same epochs (an
// instance of an earlier incarnation still alive) fails on the primary key
// instead of applying them twice.
func (s *sink[T]) commitHeld(ctx context.Context, epochs []pendingEpoch) (err error) {
	var done int64
	if err := s.c.QueryRow(ctx, "SELECT coalesce(max(checkpoint), 0) FROM "+CommitsTable+" WHERE sink_id = $1 AND subtask = $2",
		s.cfg.SinkID, s.info.Subtask).Scan(&done); err != nil {
		return fmt.Errorf("read %s: %w", CommitsTable, err)
	}
	for len(epochs) > 0 && int64(epochs[0].Checkpoint) <= done {
		s.log.Info("postgres sink: the held epoch was committed before", "checkpoint", epochs[0].Checkpoint, "committed", done)
		delete(s.held, epochs[0].Checkpoint)
		epochs = epochs[1:]
	}
	if len(epochs) == 0 {
		return nil
	}
	begin := "BEGIN"
	defer func() {
		if err != nil && begin == "" {
			_, _ = s.c.Exec(context.Background(), "ROLLBACK")
		}
	}()
	for _, p := range epochs {
		recs, err := s.heldRecords(p)
		if err != nil {
			return err
		}
		if err := s.app.run(ctx, s.c, begin, recs, 0, p.After); err != nil {
			begin = "" // run may have begun the transaction: roll it back
			return fmt.Errorf("apply the held epoch of checkpoint %d: %w", p.Checkpoint, err)
		}
		begin = ""
	}
	newest := epochs[len(epochs)-1].Checkpoint
	if _, err = s.c.Exec(ctx, fmt.Sprintf("INSERT INTO %s (sink_id, subtask, checkpoint) VALUES ('%s', %d, %d); COMMIT",
		CommitsTable, s.cfg.SinkID, s.info.Subtask, newest)); err != nil {
		return fmt.Errorf("commit the held epochs up to checkpoint %d: %w", newest, err)
	}
	for _, p := range epochs {
		delete(s.held, p.Checkpoint)
		s.log.Debug("postgres sink: committed", "checkpoint", p.Checkpoint, "rows", p.Rows)
	}
	return nil
}

// heldRecords returns the records of a held epoch: those kept in memory
// since its PreCommit, or after a restore those of the checkpoint.
func (s *sink[T]) heldRecords(p pendingEpoch) ([]T, error) {
	if recs, ok := s.held[p.Checkpoint]; ok {
		return recs, nil
	}
	return decodeRecords[T](p)
}
