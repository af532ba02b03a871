package kafka

import (
	"sync/atomic"

	"github.com/weirstream/weir/runtime"
)

var (
	_ runtime.TransactionReporter = (*sink[Message])(nil)
	_ runtime.TransactionReporter = (*txnWriter[Message])(nil)
)

// txnCounts counts the transactions of an exactly-once sink.
type txnCounts struct {
	committed, aborted atomic.Uint64
}

// Transactions returns how many Kafka transactions the sink committed
// (including those of a restored checkpoint committed by Open) and aborted
// (the open transaction on Close). At-least-once sinks report zeros. The
// runtime exports them as weir_sink_transactions_total; it is safe to call
// from any goroutine.
func (s *sink[T]) Transactions() (committed, aborted uint64) {
	return s.txns.committed.Load(), s.txns.aborted.Load()
}

// Transactions is the sink's, for the runtime (see txnWriter.CheckPromise).
func (w *txnWriter[T]) Transactions() (committed, aborted uint64) {
	return (*sink[T])(w).Transactions()
}
