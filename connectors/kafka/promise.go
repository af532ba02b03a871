package kafka

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/weirstream/weir/runtime"
)

// ErrTransactionTimeout is wrapped by the error with which an exactly-once
// sink declines a checkpoint whose transactions are too close to the
// transaction timeout to be promised, and by the errors of its later Writes
// and PreCommits: the job must restart from its previous checkpoint.
var ErrTransactionTimeout = errors.New("kafka sink: a pre-committed transaction is too close to its transaction timeout")

var (
	_ runtime.PromiseChecker = (*sink[Message])(nil)
	_ runtime.PromiseChecker = (*txnWriter[Message])(nil)
)

// CheckPromise implements runtime.PromiseChecker. In exactly-once mode it
// declines checkpoint checkpointID if a transaction that checkpoint would
// promise has been open for so long that less than ExpectedRestartTime is
// left before the broker aborts it (TransactionTimeout after it began): a
// completed checkpoint must leave time to commit its transactions, even
// after a crash and a restart. The sink then fails its next Write and
// PreCommit with an error wrapping ErrTransactionTimeout. It is safe for
// concurrent use.
func (s *sink[T]) CheckPromise(checkpointID uint64) error {
	if s.promises == nil {
		return nil // at least once: nothing expires
	}
	return s.promises.check(checkpointID, time.Now())
}

// CheckPromise is the sink's, for the runtime, which finds the optional
// interfaces of a sink built by runtime.NewTwoPhaseSink on its writer.
func (w *txnWriter[T]) CheckPromise(checkpointID uint64) error {
	return (*sink[T])(w).CheckPromise(checkpointID)
}

// promises tracks when the pending transactions of an exactly-once sink
// began, for CheckPromise. The sink's goroutine updates it and the
// coordinator's goroutine checks it.
type promises struct {
	timeout time.Duration // the transaction timeout
	margin  time.Duration // time that must be left to commit after a restart

	mu       sync.Mutex
	pending  map[int]promised // by slot index
	declined error            // sticky once a checkpoint was declined
}

// promised is a pending transaction.
type promised struct {
	checkpoint uint64 // pre-committed by PreCommit(checkpoint)
	txid       string
	started    time.Time // kafkatxn.Producer.TransactionStarted
}

func newPromises(timeout, margin time.Duration) *promises {
	return &promises{timeout: timeout, margin: margin, pending: make(map[int]promised)}
}

// add records the transaction that slot pre-committed.
func (p *promises) add(slot int, txn promised) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending[slot] = txn
}

// remove forgets the transaction of slot once it is committed.
func (p *promises) remove(slot int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.pending, slot)
}

// check declines checkpointID if one of the transactions it would promise
// is too old, and makes the refusal sticky.
func (p *promises) check(checkpointID uint64, now time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.declined != nil {
		return p.declined
	}
	for _, txn := range p.pending {
		if txn.checkpoint > checkpointID {
			continue
		}
		if age := sinceStart(txn.started, now); age+p.margin >= p.timeout {
			p.declined = fmt.Errorf("%w: transaction %q pre-committed for checkpoint %d has been open for %v, and the broker aborts it "+
				"after TransactionTimeout %v: less than ExpectedRestartTime %v would be left to commit it; declining checkpoint %d, "+
				"the job must restart from its previous checkpoint (was the process paused or stalled? otherwise raise TransactionTimeout)",
				ErrTransactionTimeout, txn.txid, txn.checkpoint, age.Round(time.Millisecond), p.timeout, p.margin, checkpointID)
			return p.declined
		}
	}
	return nil
}

// err returns the error of a declined checkpoint, or nil (also for the nil
// promises of an at-least-once sink).
func (p *promises) err() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.declined
}

// sinceStart returns the time elapsed since start, by the monotonic clock or
// by the wall clock, whichever says more: a paused virtual machine may stop
// its monotonic clock while the broker's clock keeps counting, and the wall
// clock catches up when the guest resyncs it. (A wall clock stepped forward
// can make the sink decline needlessly: that costs a restart, not data.)
func sinceStart(start, now time.Time) time.Duration {
	return max(now.Sub(start), now.Round(0).Sub(start.Round(0)))
}
