package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
	// prior are the transactional ids of the task's prior epochs in group
	// mode (runtime.TaskInfo.PriorEpochs), fenced by recover.
	prior []string
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

// recover runs after the transactions listed in the restored state are
// committed (by runtime.NewTwoPhaseSink's sink, through commit, or before the
// job stopped when committed is true): it keeps their ids out of use until
// a later checkpoint completes, then fences (and so aborts the open
// transactions of) every other id of the pool, and the ids of the task's
// prior epochs but those the state lists: their transactions are
// committed, and a restart that restores the state again commits them
// again, which a new producer epoch would refuse.
func (w *exactlyOnce) recover(ctx context.Context, r runtime.Recovery[pendingTxn], committed bool) error {
	for _, c := range r.Committables {
		if p := c.Value; p.TransactionalID == "" || p.ProducerID < 0 || p.Epoch < 0 {
			return fmt.Errorf("kafka sink: decode state: invalid pending transaction %+v", p)
		}
	}
	if committed && len(r.Committables) > 0 {
		// NB: no EndTxn to confirm it: after transactional.id.expiration.ms
		// the broker no longer knows the ids, and cannot.
		w.log.Info("kafka sink: the transactions of the restored checkpoint were committed before the job stopped",
			"restored_checkpoint", r.Checkpoint, "transactions", len(r.Committables))
	}
	for _, c := range r.Committables {
		for _, sl := range w.slots {
			if sl.txid == c.Value.TransactionalID {
				sl.state = slotCommitted
				sl.checkpoint, sl.pid, sl.epoch = c.Checkpoint, c.Value.ProducerID, c.Value.Epoch
				sl.listedUntil = r.Checkpoint
			}
		}
	}
	if len(r.Committables) > len(w.slots)-2 {
		w.log.Warn("kafka sink: the restored state lists more transactions than the pool can spare; was PoolSize reduced?",
			"pending", len(r.Committables), "pool_size", len(w.slots))
	}
	listed := map[string]bool{}
	for _, c := range r.Committables {
		listed[c.Value.TransactionalID] = true
	}
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	fence := func(txid string, keep func(*kafkatxn.Producer)) {
		wg.Go(func() {
			p, err := kafkatxn.New(ctx, w.config(txid))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("fence transactional id %q: %w", txid, err))
				return
			}
			keep(p)
		})
	}
	// NB: concurrently, as a task that moved to this member waits for it.
	for _, sl := range w.slots {
		if sl.state != slotFree {
			continue // keeps its epoch until a later checkpoint completes
		}
		fence(sl.txid, func(p *kafkatxn.Producer) { sl.prod, sl.fresh = p, true })
	}
	for _, txid := range w.prior {
		if !listed[txid] {
			fence(txid, func(p *kafkatxn.Producer) { _ = p.Close() })
		}
	}
	wg.Wait()
	return errors.Join(errs...)
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

// preCommit returns the transaction of the epoch, if it has one, as the
// committable of checkpointID.
func (w *exactlyOnce) preCommit(ctx context.Context, checkpointID uint64) ([]pendingTxn, error) {
	if w.cur != nil {
		// NB: every partition at once (kafkatxn.ProducePartitions): the
		// task waits for this flush, the synchronous part of its
		// checkpoint.
		if err := w.cur.prod.ProducePartitions(ctx, w.topic, w.bufs); err != nil {
			return nil, fmt.Errorf("kafka sink: pre-commit checkpoint %d: %w", checkpointID, err)
		}
		for p, recs := range w.bufs {
			clear(recs)
			w.bufs[p] = recs[:0]
		}
	}
	var out []pendingTxn
	if sl := w.cur; sl != nil && sl.prod.InTransaction() {
		sl.pid, sl.epoch = sl.prod.ProducerID()
		sl.state, sl.checkpoint = slotPending, checkpointID
		w.promises.add(sl.index, promised{checkpoint: checkpointID, txid: sl.txid, started: sl.prod.TransactionStarted()})
		w.cur = nil
		w.log.Debug("kafka sink: pre-committed", "txn", sl)
		out = append(out, pendingTxn{
			Checkpoint:      checkpointID,
			Slot:            sl.index,
			TransactionalID: sl.txid,
			ProducerID:      sl.pid,
			Epoch:           sl.epoch,
		})
	}
	// Every pending transaction is listed in checkpointID's state.
	for _, sl := range w.slots {
		if sl.state == slotPending {
			sl.listedUntil = max(sl.listedUntil, checkpointID)
		}
	}
	return out, nil
}

// commit commits txns, the transactions pre-committed at or before
// checkpointID (or listed in the restored state), with the producer id and
// epoch recorded at pre-commit, then frees the ids that no restorable
// checkpoint lists any more.
func (w *exactlyOnce) commit(ctx context.Context, checkpointID uint64, txns []runtime.Committable[pendingTxn]) error {
	for _, c := range txns {
		p := c.Value
		if err := kafkatxn.ResumeCommit(ctx, w.config(p.TransactionalID), p.ProducerID, p.Epoch); err != nil {
			if errors.Is(err, kafkatxn.ErrFenced) || errors.Is(err, kafkatxn.ErrAborted) {
				w.log.Error("kafka sink: DATA LOSS: a transaction promised by a completed checkpoint can no longer be committed; "+
					"was the job down for longer than TransactionTimeout before it could commit it, "+
					"or does another producer use the same transactional id?",
					"commit_checkpoint", checkpointID, "txn_checkpoint", c.Checkpoint,
					"transactional_id", p.TransactionalID, "producer_id", p.ProducerID, "epoch", p.Epoch, "err", err)
				err = fmt.Errorf("%w: %w", runtime.ErrUnrecoverable, err) // no restart brings it back
			}
			return fmt.Errorf("kafka sink: commit transaction %q of checkpoint %d: %w", p.TransactionalID, c.Checkpoint, err)
		}
		w.txns.committed.Add(1)
		for _, sl := range w.slots {
			if sl.state == slotPending && sl.txid == p.TransactionalID && sl.checkpoint == c.Checkpoint {
				sl.state = slotCommitted
				w.promises.remove(sl.index)
			}
		}
		w.log.Debug("kafka sink: committed", "commit_checkpoint", checkpointID, "txn_checkpoint", c.Checkpoint,
			"transactional_id", p.TransactionalID)
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
