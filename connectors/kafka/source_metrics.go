package kafka

import "github.com/weirstream/weir/runtime"

var _ runtime.LagReporter = (*source[Record])(nil)

// SourceLag returns, for every partition of the subtask that has been
// fetched from, how many offsets the read position is behind the partition's
// high watermark (under read_committed its last stable offset: records of
// open transactions are not readable yet) as of the last fetch. The runtime exports it as
// weir_source_lag_records; it is safe to call from any goroutine.
//
// NB: offsets, not records the job will see. Offsets that hold no record
// count too: a transaction's commit or abort marker, the records of aborted
// transactions and, on a repartition topic, the watermark markers of an
// event-time exchange (runtime.ExchangeRecord.Marker, one per sending task
// and checkpoint, consumed by the runtime). Telling them apart would take
// reading them, so, aborted transactions aside, the lag of a repartition
// topic exceeds the records left by at most two offsets (a watermark
// marker and a commit marker) per sending task and checkpoint not yet
// read; a source that has read everything reports 0 all the same.
func (s *source[T]) SourceLag() []runtime.PartitionLag {
	s.partsMu.Lock()
	parts := s.parts
	s.partsMu.Unlock()
	out := make([]runtime.PartitionLag, 0, len(parts))
	for _, p := range parts {
		if lag := p.lag.Load(); lag >= 0 {
			out = append(out, runtime.PartitionLag{Partition: p.topicPartition.String(), Records: lag})
		}
	}
	return out
}
