package postgres

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
)

var stagedColumns = []string{"sink_id", "subtask", "epoch", "seq", "record"}

// stage copies the buffered records, as JSON, into StagedRowsTable, in the
// epoch's transaction on w (begun by the epoch's first records).
func (s *Sink[T]) stage(ctx context.Context) error {
	if !s.inTx {
		if _, err := s.w.Exec(ctx, "BEGIN"); err != nil {
			return fmt.Errorf("postgres: stage: %w", err)
		}
		s.inTx = true
		s.epoch = newEpochID()
	}
	rows := make([][]any, len(s.buf))
	for i, rec := range s.buf {
		js, err := json.Marshal(rec)
		if err != nil {
			// Staged mode keeps records as JSON until their checkpoint
			// completes; a record that has none cannot be staged.
			return fmt.Errorf("postgres: stage record %d of the epoch after checkpoint %d: %w",
				s.sent+int64(i), s.last, err)
		}
		rows[i] = []any{s.cfg.SinkID, s.info.Subtask, s.epoch, s.sent + int64(i), js}
	}
	if _, err := s.w.CopyFrom(ctx, pgx.Identifier{StagedRowsTable}, stagedColumns, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("postgres: stage %d records: %w", len(rows), err)
	}
	return nil
}

// newEpochID returns a random positive id for an epoch's staged rows.
func newEpochID() int64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return int64(binary.LittleEndian.Uint64(b[:]) >> 1)
}

// commitStaged applies a staged epoch to the target tables, deletes it from
// the staging tables and records the commit in CommitsTable, in one
// transaction on c.
func (s *Sink[T]) commitStaged(ctx context.Context, p pendingEpoch) (err error) {
	if _, err := s.c.Exec(ctx, "BEGIN"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = s.c.Exec(context.Background(), "ROLLBACK")
		}
	}()
	var rows int64
	err = s.c.QueryRow(ctx, "SELECT rows FROM "+StagedEpochsTable+" WHERE sink_id = $1 AND subtask = $2 AND epoch = $3 FOR UPDATE",
		s.cfg.SinkID, s.info.Subtask, p.Epoch).Scan(&rows)
	if err == pgx.ErrNoRows {
		_, _ = s.c.Exec(ctx, "ROLLBACK")
		return s.checkCommitted(ctx, p, fmt.Sprintf("staged epoch %d", p.Epoch))
	}
	if err != nil {
		return fmt.Errorf("read staged epoch %d: %w", p.Epoch, err)
	}
	recs, err := s.readStaged(ctx, p)
	if err != nil {
		return err
	}
	if rows != p.Rows || int64(len(recs)) != p.Rows {
		return fmt.Errorf("%w: checkpoint %d: staged epoch %d has %d records (recorded %d), the checkpoint promised %d",
			ErrDataLoss, p.Checkpoint, p.Epoch, len(recs), rows, p.Rows)
	}
	if err := s.app.run(ctx, s.c, "", recs, 0, p.After); err != nil {
		return err
	}
	_, err = s.c.Exec(ctx, fmt.Sprintf(
		"DELETE FROM %s WHERE sink_id = '%s' AND subtask = %d AND epoch = %d; "+
			"DELETE FROM %s WHERE sink_id = '%s' AND subtask = %d AND epoch = %d; "+
			"INSERT INTO %s (sink_id, subtask, checkpoint) VALUES ('%s', %d, %d) ON CONFLICT DO NOTHING; COMMIT",
		StagedRowsTable, s.cfg.SinkID, s.info.Subtask, p.Epoch,
		StagedEpochsTable, s.cfg.SinkID, s.info.Subtask, p.Epoch,
		CommitsTable, s.cfg.SinkID, s.info.Subtask, p.Checkpoint))
	if err != nil {
		return fmt.Errorf("commit staged epoch %d: %w", p.Epoch, err)
	}
	s.log.Debug("postgres sink: committed", "checkpoint", p.Checkpoint, "epoch", p.Epoch, "rows", p.Rows)
	return nil
}

// readStaged reads the records of a staged epoch in order.
func (s *Sink[T]) readStaged(ctx context.Context, p pendingEpoch) ([]T, error) {
	rows, err := s.c.Query(ctx, "SELECT record FROM "+StagedRowsTable+" WHERE sink_id = $1 AND subtask = $2 AND epoch = $3 ORDER BY seq",
		s.cfg.SinkID, s.info.Subtask, p.Epoch)
	if err != nil {
		return nil, fmt.Errorf("read staged epoch %d: %w", p.Epoch, err)
	}
	recs := make([]T, 0, p.Rows)
	var js []byte
	_, err = pgx.ForEachRow(rows, []any{&js}, func() error {
		var rec T
		if err := json.Unmarshal(js, &rec); err != nil {
			return fmt.Errorf("decode staged record %d: %w", len(recs), err)
		}
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read staged epoch %d: %w", p.Epoch, err)
	}
	return recs, nil
}
