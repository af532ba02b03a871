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
	// legacy is the partition count per topic that a checkpoint of state
	// version 1 covered; nil for a job started with version 2. Version 1
	// gave entry i of the sorted list of all partitions to subtask
	// i % parallelism; those partitions keep that owner (the counts are
	// carried in every later snapshot), and partitions added since go by
	// owner.
	legacy      map[string]int32
	legacyOwner map[topicPartition]int
}

func newAssignment(subtask, parallelism int, legacy map[string]int32) assignment {
	a := assignment{subtask: subtask, parallelism: parallelism, legacy: legacy}
	if len(legacy) == 0 {
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
