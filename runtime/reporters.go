package runtime

// LagReporter is an optional interface of a Source that knows how far it is
// behind the end of its input, such as a Kafka source behind the high
// watermark of its partitions. The runtime calls SourceLag from its metrics
// goroutine, concurrently with Read, so it must be safe for concurrent use
// and quick. The result is exported as weir_source_lag_records.
type LagReporter interface {
	SourceLag() []PartitionLag
}

// PartitionLag is the lag of one partition of a source.
type PartitionLag struct {
	Partition string // for example "orders/3"
	Records   int64  // records (offsets) between the read position and the end
}

// TransactionReporter is an optional interface of a two-phase Sink that
// counts its transactions. The runtime calls Transactions from its metrics
// goroutine, concurrently with the sink's other methods, so it must be safe
// for concurrent use. The counts are exported as weir_sink_transactions_total.
type TransactionReporter interface {
	Transactions() (committed, aborted uint64)
}
