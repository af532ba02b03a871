package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/weirstream/weir/internal/kafkatxn"
	"github.com/weirstream/weir/runtime"
)

// slotState is where a transactional id of the pool is in its cycle:
//
//	free → writing → pending → committed → free
type slotState int

const (
	slotFree      slotState = iota
	slotWriting             // carries the current epoch's transaction
	slotPending             // pre-committed, awaiting Commit
	slotCommitted           // committed, but a completed checkpoint's state may still list it
)

// slot is one transactional id of the subtask's pool.
type slot struct {
	index int
	txid  string
	prod  *kafkatxn.Producer // nil until needed
	fresh bool               // prod's epoch has carried no transaction

	state slotState
	// For pending and committed slots: the transaction.
	checkpoint uint64 // pre-committed by PreCommit(checkpoint)
	pid        int64
	epoch      int16
	// listedUntil is the highest checkpoint whose state lists the
	// transaction. A restore from it would commit the transaction again,
	// which succeeds only while the id keeps the same epoch; so the slot is
	// reused (with a new epoch) only after a later checkpoint completes.
	listedUntil uint64
}

func (sl *slot) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("transactional_id", sl.txid),
		slog.Uint64("checkpoint", sl.checkpoint),
		slog.Int64("producer_id", sl.pid),
		slog.Int("epoch", int(sl.epoch)))
}

// exactlyOnce writes each checkpoint epoch in one transaction; see doc.go.
type exactlyOnce struct {
	topic   string
	client  *kafkago.Client
	log     *slog.Logger
	timeout time.Duration // transaction timeout
	reqTO   time.Duration
	batch   int

	slots []*slot
	cur   *slot // the slot of the current epoch, if it has one
	next  int   // where the search for a free slot starts
	bufs  [][]kafkatxn.Record
	txns  *txnCounts

	promises *promises
}

func (w *exactlyOnce) config(txid string) kafkatxn.Config {
	return kafkatxn.Config{
		Client:             w.client,
		TransactionalID:    txid,
		TransactionTimeout: w.timeout,
		RequestTimeout:     w.reqTO,
		Logger:             w.log,
	}
}

// recover commits the transactions listed in the restored state, unless the
// runtime recorded that they were committed (committed), then fences (and so
// aborts the open transactions of) every other id of the pool.
func (w *exactlyOnce) recover(ctx context.Context, restored []byte, committed bool) error {
	st, err := decodeState(restored)
	if err != nil {
		return err
	}
	if committed && len(st.Pending) > 0 {
		// NB: no EndTxn to confirm it: after transactional.id.expiration.ms
		// the broker no longer knows the ids, and cannot.
		w.log.Info("kafka sink: the transactions of the restored checkpoint were committed before the job stopped",
			"restored_checkpoint", st.Checkpoint, "transactions", len(st.Pending))
	}
	for _, p := range st.Pending {
		if !committed {
			if err := w.resumeCommit(ctx, st.Checkpoint, p); err != nil {
				return err
			}
		}
		for _, sl := range w.slots {
			if sl.txid == p.TransactionalID {
				sl.state = slotCommitted
				sl.checkpoint, sl.pid, sl.epoch = p.Checkpoint, p.ProducerID, p.Epoch
				sl.listedUntil = st.Checkpoint
			}
		}
	}
	if len(st.Pending) > len(w.slots)-2 {
		w.log.Warn("kafka sink: the restored state lists more transactions than the pool can spare; was PoolSize reduced?",
			"pending", len(st.Pending), "pool_size", len(w.slots))
	}
	for _, sl := range w.slots {
		if sl.state != slotFree {
			continue // keeps its epoch until a later checkpoint completes
		}
		p, err := kafkatxn.New(ctx, w.config(sl.txid))
		if err != nil {
			return fmt.Errorf("fence transactional id %q: %w", sl.txid, err)
		}
		sl.prod, sl.fresh = p, true
	}
	return nil
}

// resumeCommit commits a transaction listed in the restored state of
// checkpoint restored.
func (w *exactlyOnce) resumeCommit(ctx context.Context, restored uint64, p pendingTxn) error {
	if err := kafkatxn.ResumeCommit(ctx, w.config(p.TransactionalID), p.ProducerID, p.Epoch); err != nil {
		if errors.Is(err, kafkatxn.ErrFenced) || errors.Is(err, kafkatxn.ErrAborted) {
			w.log.Error("kafka sink: DATA LOSS: a transaction promised by a completed checkpoint can no longer be committed; "+
				"was the job down for longer than TransactionTimeout before it could commit it, "+
				"or does another producer use the same transactional id?",
				"restored_checkpoint", restored, "txn_checkpoint", p.Checkpoint,
				"transactional_id", p.TransactionalID, "producer_id", p.ProducerID, "epoch", p.Epoch, "err", err)
			err = fmt.Errorf("%w: %w", runtime.ErrUnrecoverable, err) // no restart brings it back
		}
		return fmt.Errorf("commit transaction %q of checkpoint %d: %w", p.TransactionalID, p.Checkpoint, err)
	}
	w.txns.committed.Add(1)
	w.log.Info("kafka sink: committed transaction of restored checkpoint",
		"restored_checkpoint", restored, "txn_checkpoint", p.Checkpoint, "transactional_id", p.TransactionalID)
	return nil
}

func (w *exactlyOnce) write(ctx context.Context, partition int, m Message) error {
	if w.cur == nil {
		if err := w.acquire(ctx); err != nil {
			return err
		}
	}
	w.bufs[partition] = append(w.bufs[partition], kafkatxn.Record{
		Key: m.Key, Value: m.Value, Headers: m.Headers, Time: m.Time,
	})
	if len(w.bufs[partition]) >= w.batch {
		return w.flush(ctx, partition)
	}
	return nil
}

// acquire makes a free slot the current one, with a producer epoch that has
// carried no transaction.
func (w *exactlyOnce) acquire(ctx context.Context) error {
	var pending []uint64
	for _, sl := range w.slots {
		if sl.state == slotPending {
			pending = append(pending, sl.checkpoint)
		}
	}
	// NB: at most len(slots)-2 transactions may be listed in a state, so
	// that after restoring it two slots are free: one for the epoch after
	// the restore and one for the epoch after that, before the restored
	// ones can be reused.
	if len(pending) > len(w.slots)-3 {
		return fmt.Errorf("%w: transactions of checkpoints %v are pending and the pool has %d transactional ids; "+
			"checkpoints keep failing to complete (or raise PoolSize)", ErrTooManyPending, pending, len(w.slots))
	}
	for i := range w.slots {
		sl := w.slots[(w.next+i)%len(w.slots)]
		if sl.state != slotFree {
			continue
		}
		if !sl.fresh {
			if sl.prod != nil {
				_ = sl.prod.Close()
				sl.prod = nil
			}
			p, err := kafkatxn.New(ctx, w.config(sl.txid))
			if err != nil {
				return fmt.Errorf("kafka sink: start transaction: %w", err)
			}
			sl.prod = p
		}
		sl.fresh = false
		sl.state = slotWriting
		w.cur = sl
		w.next = (sl.index + 1) % len(w.slots)
		return nil
	}
	return fmt.Errorf("%w: no free transactional id in a pool of %d (pending checkpoints %v)",
		ErrTooManyPending, len(w.slots), pending)
}

func (w *exactlyOnce) flush(ctx context.Context, partition int) error {
	recs := w.bufs[partition]
	if len(recs) == 0 {
		return nil
	}
	if err := w.cur.prod.Produce(ctx, w.topic, partition, recs); err != nil {
		return fmt.Errorf("kafka sink: %w", err)
	}
	clear(recs)
	w.bufs[partition] = recs[:0]
	return nil
}

func (w *exactlyOnce) preCommit(ctx context.Context, checkpointID uint64) ([]byte, error) {
	for p := range w.bufs {
		if err := w.flush(ctx, p); err != nil {
			return nil, fmt.Errorf("kafka sink: pre-commit checkpoint %d: %w", checkpointID, err)
		}
	}
	if sl := w.cur; sl != nil && sl.prod.InTransaction() {
		sl.pid, sl.epoch = sl.prod.ProducerID()
		sl.state, sl.checkpoint = slotPending, checkpointID
		w.promises.add(sl.index, promised{checkpoint: checkpointID, txid: sl.txid, started: sl.prod.TransactionStarted()})
		w.cur = nil
		w.log.Debug("kafka sink: pre-committed", "txn", sl)
	}
	st := sinkState{Checkpoint: checkpointID}
	for _, sl := range w.slots {
		if sl.state == slotPending {
			sl.listedUntil = max(sl.listedUntil, checkpointID)
			st.Pending = append(st.Pending, pendingTxn{
				Checkpoint:      sl.checkpoint,
				Slot:            sl.index,
				TransactionalID: sl.txid,
				ProducerID:      sl.pid,
				Epoch:           sl.epoch,
			})
		}
	}
	return encodeState(st)
}

func (w *exactlyOnce) commit(ctx context.Context, checkpointID uint64) error {
	for _, sl := range w.slots {
		if sl.state != slotPending || sl.checkpoint > checkpointID {
			continue
		}
		if err := kafkatxn.ResumeCommit(ctx, w.config(sl.txid), sl.pid, sl.epoch); err != nil {
			if errors.Is(err, kafkatxn.ErrFenced) || errors.Is(err, kafkatxn.ErrAborted) {
				w.log.Error("kafka sink: DATA LOSS: a pre-committed transaction of a completed checkpoint can no longer be committed",
					"commit_checkpoint", checkpointID, "txn", sl, "err", err)
				err = fmt.Errorf("%w: %w", runtime.ErrUnrecoverable, err)
			}
			return fmt.Errorf("kafka sink: commit checkpoint %d: %w", checkpointID, err)
		}
		sl.state = slotCommitted
		w.promises.remove(sl.index)
		w.txns.committed.Add(1)
		w.log.Debug("kafka sink: committed", "commit_checkpoint", checkpointID, "txn", sl)
	}
	for _, sl := range w.slots {
		if sl.state == slotCommitted && sl.listedUntil < checkpointID {
			sl.state = slotFree
		}
	}
	return nil
}

func (w *exactlyOnce) close() {
	if sl := w.cur; sl != nil && sl.prod != nil && sl.prod.InTransaction() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := sl.prod.Abort(ctx); err != nil {
			w.log.Debug("kafka sink: abort on close failed; the next Open or the transaction timeout aborts it",
				"transactional_id", sl.txid, "err", err)
		} else {
			w.txns.aborted.Add(1)
		}
		cancel()
	}
	for _, sl := range w.slots {
		if sl.prod != nil {
			_ = sl.prod.Close()
			sl.prod = nil
		}
	}
	w.cur = nil
}
