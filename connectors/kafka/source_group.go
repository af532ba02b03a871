package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/runtime"
)

var _ runtime.CheckpointListener = (*source[Record])(nil)

// CheckpointComplete implements runtime.CheckpointListener. With
// SourceConfig.CommitGroup set, it commits to that consumer group the
// offsets of this subtask's partitions that checkpoint id holds, so that lag
// tools see the job's progress. The runtime has one checkpoint in flight at
// a time and notifies its completion before the next barrier, so those are
// the offsets of the last Snapshot.
//
// The commit only reports: weir never reads the group's offsets back. So a
// failed commit is logged and the job goes on; the next checkpoint's commit
// brings the group up to date.
func (s *source[T]) CheckpointComplete(ctx context.Context, id uint64) error {
	if len(s.snapshotted) == 0 {
		return nil // no CommitGroup, or nothing to commit
	}
	// NB: the commit runs between two Reads: bound it, so that a
	// coordinator that does not answer delays reading by at most this.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	if err := s.commitOffsets(ctx, id); err != nil {
		s.log.Warn("kafka source: could not commit the offsets of a completed checkpoint to the consumer group "+
			"(only lag tools read them; the job keeps its offsets in its checkpoints and goes on)",
			"group", s.cfg.CommitGroup, "checkpoint", id, "err", err)
	}
	return nil
}

// snapshotOffset is a partition's next offset at the last Snapshot.
type snapshotOffset struct {
	topicPartition
	topicID [16]byte
	next    int64
}

// keepForCommit keeps the offsets of a Snapshot for CheckpointComplete.
func (s *source[T]) keepForCommit() {
	if s.cfg.CommitGroup == "" {
		return
	}
	s.snapshotted = s.snapshotted[:0]
	for _, p := range s.parts {
		s.snapshotted = append(s.snapshotted, snapshotOffset{p.topicPartition, p.topicID, p.next})
	}
}

// commitOffsets commits the snapshotted offsets to the group as a simple
// consumer (generation -1, no member id): the group has no members and
// never rebalances, and a group that has members refuses the commit.
func (s *source[T]) commitOffsets(ctx context.Context, id uint64) error {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = s.cfg.CommitGroup
	req.Generation = -1
	meta := fmt.Sprintf("weir checkpoint %d", id)
	for _, o := range s.snapshotted { // sorted by topic, as s.parts
		if n := len(req.Topics); n == 0 || req.Topics[n-1].Topic != o.topic {
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic, rt.TopicID = o.topic, o.topicID // v10+ names topics by id
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.Metadata = o.partition, o.next, &meta
		rt := &req.Topics[len(req.Topics)-1]
		rt.Partitions = append(rt.Partitions, rp)
	}
	resp, err := req.RequestWith(ctx, s.cl)
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				errs = append(errs, fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err))
			}
		}
	}
	return errors.Join(errs...)
}
