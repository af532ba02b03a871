package kafka

import (
	"context"
	"errors"
	"fmt"
	"iter"

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
//
// An exchange's source (SourceConfig.purge) also deletes the records below
// the offsets of the checkpoint completed before id (purgeRead says why not
// id's). A failed purge is logged too: the next one covers it.
func (s *source[T]) CheckpointComplete(ctx context.Context, id uint64) error {
	if len(s.snapshotted) == 0 {
		return nil // no CommitGroup nor purge, or nothing to commit
	}
	// NB: the requests run between two Reads: bound them, so that a
	// broker that does not answer delays reading by at most this.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	if s.cfg.CommitGroup != "" {
		if err := s.commitOffsets(ctx, id); err != nil {
			s.log.Warn("kafka source: could not commit the offsets of a completed checkpoint to the consumer group "+
				"(only lag tools read them; the job keeps its offsets in its checkpoints and goes on)",
				"group", s.cfg.CommitGroup, "checkpoint", id, "err", err)
		}
	}
	if s.cfg.purge {
		if err := s.purgeRead(ctx, s.purgeTo); err != nil {
			s.log.Warn("kafka source: could not delete the repartition records a completed checkpoint has read "+
				"(they take room until the next checkpoint's purge)", "checkpoint", id, "err", err)
		}
		s.purgeTo = append(s.purgeTo[:0], s.snapshotted...)
	}
	return nil
}

// purgeRead deletes the records below the offsets to. NB: those are the
// offsets of the checkpoint completed before the one completing now, not of
// this one, though both are durable: a member that lost the task but has
// not noticed yet (paused past its session, a zombie) can complete at most
// one more checkpoint (the next one's runtime.Config BeforeManifest sees
// the new owner's epoch), and the new owner may have restored from the
// checkpoint before it; purging to that one is safe for both. A restore
// from an older checkpoint finds its records deleted, which Read reports
// (OffsetOutOfRange), never skips.
func (s *source[T]) purgeRead(ctx context.Context, to []snapshotOffset) error {
	req := kmsg.NewPtrDeleteRecordsRequest()
	req.TimeoutMillis = int32(s.cfg.DialTimeout.Milliseconds())
	for run := range byTopic(to) {
		rt := kmsg.NewDeleteRecordsRequestTopic()
		rt.Topic = run[0].topic
		for _, o := range run {
			if o.next > 0 {
				rp := kmsg.NewDeleteRecordsRequestTopicPartition()
				rp.Partition, rp.Offset = o.partition, o.next
				rt.Partitions = append(rt.Partitions, rp)
			}
		}
		if len(rt.Partitions) > 0 {
			req.Topics = append(req.Topics, rt)
		}
	}
	if len(req.Topics) == 0 {
		return nil
	}
	return s.requestPartitions(ctx, req)
}

// snapshotOffset is a partition's next offset at the last Snapshot.
type snapshotOffset struct {
	topicPartition
	topicID [16]byte
	next    int64
}

// keepForCommit keeps the offsets of a Snapshot for CheckpointComplete.
func (s *source[T]) keepForCommit() {
	if s.cfg.CommitGroup == "" && !s.cfg.purge {
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
	for run := range byTopic(s.snapshotted) {
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic, rt.TopicID = run[0].topic, run[0].topicID // v10+ names topics by id
		for _, o := range run {
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.Metadata = o.partition, o.next, &meta
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return s.requestPartitions(ctx, req)
}

// byTopic yields the runs of offs of one topic each; offs are sorted by
// topic, as source.parts.
func byTopic(offs []snapshotOffset) iter.Seq[[]snapshotOffset] {
	return func(yield func([]snapshotOffset) bool) {
		for len(offs) > 0 {
			n := 1
			for n < len(offs) && offs[n].topic == offs[0].topic {
				n++
			}
			if !yield(offs[:n]) {
				return
			}
			offs = offs[n:]
		}
	}
}

// requestPartitions sends req, a request about partitions of several
// topics (DeleteRecords, OffsetCommit), and returns the errors of the
// partitions its response reports, each named topic/partition, joined.
func (s *source[T]) requestPartitions(ctx context.Context, req kmsg.Request) error {
	resp, err := s.cl.Request(ctx, req)
	if err != nil {
		return err
	}
	var errs []error
	add := func(topic string, partition int32, code int16) {
		if err := kerr.ErrorForCode(code); err != nil {
			errs = append(errs, fmt.Errorf("%s/%d: %w", topic, partition, err))
		}
	}
	switch resp := resp.(type) {
	case *kmsg.DeleteRecordsResponse:
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				add(t.Topic, p.Partition, p.ErrorCode)
			}
		}
	case *kmsg.OffsetCommitResponse:
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				add(t.Topic, p.Partition, p.ErrorCode)
			}
		}
	default:
		return fmt.Errorf("kafka source: %T: unexpected response %T", req, resp)
	}
	return errors.Join(errs...)
}
