package kafka

import (
	"fmt"

	"github.com/weirstream/weir/runtime"
)

// Redistribute implements runtime.Rescalable: the offsets of all old
// subtasks are merged, and the subtask keeps those of the partitions it
// owns at its parallelism (see owner), so each partition resumes where it
// stood, in one subtask. A partition in no old state starts at its earliest
// offset, as after any restore. A checkpoint that assigns partitions by the
// rule of state version 1 cannot be rescaled.
func (s *source[T]) Redistribute(info runtime.TaskInfo, old [][]byte) ([]byte, error) {
	a := newAssignment(info.Subtask, info.Parallelism, nil, s.byIndex(info))
	merged := sourceState{next: map[topicPartition]int64{}, end: map[topicPartition]int64{}}
	for i, b := range old {
		if b == nil {
			continue
		}
		st, err := sourceDecodeState(b)
		if err != nil {
			return nil, fmt.Errorf("kafka source: state of old subtask %d: %w", i, err)
		}
		if st.v1 || st.legacy != nil {
			return nil, fmt.Errorf("kafka source: the checkpoint assigns partitions by the rule of state version 1, which depends on the parallelism: restore it with the parallelism it was taken with, and rescale from a later checkpoint")
		}
		merged.bounded = merged.bounded || st.bounded
		for tp, off := range st.next {
			if !a.owns(tp) {
				continue
			}
			merged.next[tp] = off
			if st.bounded {
				merged.end[tp] = st.end[tp]
			}
		}
	}
	return sourceEncodeState(merged), nil
}
