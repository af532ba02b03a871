package kafka

import (
	"fmt"
	"hash/fnv"
	"sort"
)

// owner returns the subtask, of parallelism, that reads tp: partition p of a
// topic goes to subtask (h + p) mod parallelism, where h is the FNV-1a hash
// of the topic's name (Flink's KafkaTopicPartitionAssigner does the same with
// Java's string hash).
// Consecutive partitions of a topic go to consecutive subtasks, the
// partitions 0 of several topics start on different subtasks, and the owner
// depends neither on other topics nor on partitions added later, so a
// checkpoint stays restorable when partitions are added to any topic.
func owner(tp topicPartition, parallelism int) int {
	h := fnv.New32a()
	h.Write([]byte(tp.topic)) // never fails
	return int((uint64(h.Sum32()) + uint64(tp.partition)) % uint64(parallelism))
}

// assignment decides which partitions a subtask reads.
type assignment struct {
	subtask, parallelism int
	// byIndex: subtask i reads partition i of every topic, which must have
	// parallelism partitions: a task of a job spread over processes
	// (TaskInfo.Group), or an exchange's source.
	byIndex bool
	// legacy is the partition count per topic that a checkpoint of state
	// version 1 covered; nil for a job started with version 2. Version 1
	// gave entry i of the sorted list of all partitions to subtask
	// i % parallelism; those partitions keep that owner (the counts are
	// carried in every later snapshot), and partitions added since go by
	// owner.
	legacy      map[string]int32
	legacyOwner map[topicPartition]int
}

func newAssignment(subtask, parallelism int, legacy map[string]int32, byIndex bool) assignment {
	a := assignment{subtask: subtask, parallelism: parallelism, legacy: legacy, byIndex: byIndex}
	if len(legacy) == 0 || byIndex {
		a.legacy = nil
		return a
	}
	var tps []topicPartition
	for topic, n := range legacy {
		for p := range n {
			tps = append(tps, topicPartition{topic, p})
		}
	}
	sort.Slice(tps, func(i, j int) bool { return lessTP(tps[i], tps[j]) })
	a.legacyOwner = make(map[topicPartition]int, len(tps))
	for i, tp := range tps {
		a.legacyOwner[tp] = i % parallelism
	}
	return a
}

// partitionCounts returns the number of partitions of every topic of all.
func partitionCounts(all []*partition) map[string]int32 {
	out := map[string]int32{}
	for _, p := range all {
		out[p.topic]++
	}
	return out
}

// ownerOf returns the subtask that reads tp.
func (a assignment) ownerOf(tp topicPartition) int {
	if a.byIndex {
		return int(tp.partition)
	}
	if o, ok := a.legacyOwner[tp]; ok {
		return o
	}
	return owner(tp, a.parallelism)
}

func (a assignment) owns(tp topicPartition) bool { return a.ownerOf(tp) == a.subtask }

// checkRestored reports a restored partition that this subtask must not
// read: one that no longer exists (or whose topic is no longer configured),
// or one another subtask owns.
func (a assignment) checkRestored(tp topicPartition, exists bool) error {
	if !exists {
		return fmt.Errorf("kafka source: restored state has partition %s, which no longer exists or whose topic is not in SourceConfig.Topics; removing topics or partitions from a job is not supported", tp)
	}
	o := a.ownerOf(tp)
	if o == a.subtask {
		return nil
	}
	err := fmt.Errorf("kafka source: restored state of subtask %d has partition %s, which subtask %d of %d reads: restore with the parallelism the checkpoint was taken with (a Kafka source cannot change it)", a.subtask, tp, o, a.parallelism)
	if a.legacy != nil {
		err = fmt.Errorf("%w; or the checkpoint, of state version 1, was taken before partitions were added to a topic other than the last, which shifts the version-1 assignment: such a checkpoint cannot be restored", err)
	}
	return err
}

// checkCounts reports, when partitions are assigned by index, a topic whose
// partition count is not the parallelism (the job's task count): its
// partitions would not map one to one to the tasks.
func (a assignment) checkCounts(all []*partition) error {
	if !a.byIndex {
		return nil
	}
	counts := partitionCounts(all)
	topics := make([]string, 0, len(counts))
	for t := range counts {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		if n := int(counts[t]); n != a.parallelism {
			return fmt.Errorf("kafka source: %w: topic %q has %d partitions, but the job has %d tasks: "+
				"in a job spread over processes task i reads partition i of every input topic, so they must all have "+
				"one partition per task (co-partitioned); give them the same count and restart the job's members",
				ErrPartitionCount, t, n, a.parallelism)
		}
	}
	return nil
}
