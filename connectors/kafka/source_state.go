package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// sourceStateVersion is the first byte of every snapshot. Layout of version 2:
//
//	version byte, flags byte (flagBounded, or 0),
//	uvarint count, count × (uvarint len(topic), topic, varint partition,
//	varint next offset, and with flagBounded varint end offset), sorted by
//	(topic, partition),
//	uvarint count, count × (uvarint len(topic), topic, varint partitions),
//	sorted by topic: the partitions the version-1 assignment covers.
//
// Version 1, still restored, is the version byte and the first list without
// end offsets; its job assigned partitions by their index in the sorted list
// of all partitions, and did not keep the ends of a StopAtEnd source.
const sourceStateVersion = 2

// flagBounded marks the snapshot of a StopAtEnd source: the entries carry the
// end offsets captured at the job's first start.
const flagBounded = 1

// sourceState is what a snapshot holds.
type sourceState struct {
	next map[topicPartition]int64 // next offset to read of every owned partition
	// end holds, when bounded, the end offset of every entry of next.
	end     map[topicPartition]int64
	bounded bool
	// legacy is the partition count per topic that the version-1 assignment
	// covers (see assignment.legacy); nil if none.
	legacy map[string]int32
	// v1 says the snapshot is of version 1: it has neither ends nor legacy,
	// and its partitions were assigned by the version-1 rule.
	v1 bool
}

type topicPartition struct {
	topic     string
	partition int32
}

func (tp topicPartition) String() string { return fmt.Sprintf("%s/%d", tp.topic, tp.partition) }

func lessTP(a, b topicPartition) bool {
	if a.topic != b.topic {
		return a.topic < b.topic
	}
	return a.partition < b.partition
}

func sourceEncodeState(st sourceState) []byte {
	tps := make([]topicPartition, 0, len(st.next))
	for tp := range st.next {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool { return lessTP(tps[i], tps[j]) })
	var flags byte
	if st.bounded {
		flags |= flagBounded
	}
	b := []byte{sourceStateVersion, flags}
	b = binary.AppendUvarint(b, uint64(len(tps)))
	for _, tp := range tps {
		b = appendString(b, tp.topic)
		b = binary.AppendVarint(b, int64(tp.partition))
		b = binary.AppendVarint(b, st.next[tp])
		if st.bounded {
			b = binary.AppendVarint(b, st.end[tp])
		}
	}
	topics := make([]string, 0, len(st.legacy))
	for t := range st.legacy {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	b = binary.AppendUvarint(b, uint64(len(topics)))
	for _, t := range topics {
		b = appendString(b, t)
		b = binary.AppendVarint(b, int64(st.legacy[t]))
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errCorruptState = errors.New("kafka source: corrupt state")

func sourceDecodeState(b []byte) (sourceState, error) {
	if len(b) == 0 {
		return sourceState{}, fmt.Errorf("%w: empty", errCorruptState)
	}
	version := b[0]
	if version != 1 && version != sourceStateVersion {
		return sourceState{}, fmt.Errorf("kafka source: state version %d not supported (want 1 or %d): the checkpoint was written by a newer weir", version, sourceStateVersion)
	}
	r := stateReader{b: b[1:]}
	st := sourceState{v1: version == 1}
	if version >= 2 {
		flags := r.readByte()
		if flags&^flagBounded != 0 {
			return sourceState{}, fmt.Errorf("%w: unknown flags %#x", errCorruptState, flags)
		}
		st.bounded = flags&flagBounded != 0
	}
	if err := r.entries(&st); err != nil {
		return sourceState{}, err
	}
	if version >= 2 {
		if err := r.legacy(&st); err != nil {
			return sourceState{}, err
		}
	}
	if r.err != nil {
		return sourceState{}, r.err
	}
	if len(r.b) != 0 {
		return sourceState{}, fmt.Errorf("%w: %d trailing bytes", errCorruptState, len(r.b))
	}
	return st, nil
}

// stateReader reads a snapshot; after the first failure every read returns
// zero and err says what failed.
type stateReader struct {
	b   []byte
	err error
}

func (r *stateReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{errCorruptState}, args...)...)
	}
}

func (r *stateReader) readByte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// count reads a uvarint count of entries, each at least one byte long.
func (r *stateReader) count(what string) int {
	v, n := binary.Uvarint(r.b)
	if r.err != nil || n <= 0 || v > uint64(len(r.b)) {
		r.fail("bad %s count", what)
		return 0
	}
	r.b = r.b[n:]
	return int(v)
}

func (r *stateReader) varint() (int64, bool) {
	v, n := binary.Varint(r.b)
	if r.err != nil || n <= 0 {
		return 0, false
	}
	r.b = r.b[n:]
	return v, true
}

func (r *stateReader) topic(entry int) string {
	l, n := binary.Uvarint(r.b)
	if r.err != nil || n <= 0 || l > uint64(len(r.b)-n) {
		r.fail("entry %d: bad topic length", entry)
		return ""
	}
	s := string(r.b[n : n+int(l)])
	r.b = r.b[n+int(l):]
	return s
}

// partition reads a varint partition number.
func (r *stateReader) partition() (int32, bool) {
	p, ok := r.varint()
	if !ok || p < 0 || p > 1<<31-1 {
		return 0, false
	}
	return int32(p), true
}

func (r *stateReader) entries(st *sourceState) error {
	n := r.count("partition")
	st.next = make(map[topicPartition]int64, n)
	if st.bounded {
		st.end = make(map[topicPartition]int64, n)
	}
	for i := range n {
		topic := r.topic(i)
		p, ok1 := r.partition()
		off, ok2 := r.varint()
		end, ok3 := off, true
		if st.bounded {
			end, ok3 = r.varint()
		}
		if r.err != nil {
			return r.err
		}
		if !ok1 || !ok2 || !ok3 || off < 0 || end < 0 {
			return fmt.Errorf("%w: entry %d (%s): bad partition or offset", errCorruptState, i, topic)
		}
		tp := topicPartition{topic, p}
		if _, dup := st.next[tp]; dup {
			return fmt.Errorf("%w: %s listed twice", errCorruptState, tp)
		}
		st.next[tp] = off
		if st.bounded {
			st.end[tp] = end
		}
	}
	return r.err
}

func (r *stateReader) legacy(st *sourceState) error {
	n := r.count("version-1 topic")
	for i := range n {
		topic := r.topic(i)
		count, ok := r.partition()
		if r.err != nil {
			return r.err
		}
		if !ok || count == 0 {
			return fmt.Errorf("%w: version-1 topic %q: bad partition count", errCorruptState, topic)
		}
		if st.legacy == nil {
			st.legacy = make(map[string]int32, n)
		}
		if _, dup := st.legacy[topic]; dup {
			return fmt.Errorf("%w: version-1 topic %q listed twice", errCorruptState, topic)
		}
		st.legacy[topic] = count
	}
	return r.err
}

// SourceState is a Kafka source subtask's checkpointed position as tools
// show it (weir checkpoints inspect): every snapshot version decodes to it,
// so that the tools need not know the layout.
type SourceState struct {
	// Version is the snapshot's format version (1 or 2).
	Version int `json:"version"`
	// Offsets are the subtask's partitions, sorted by topic and partition.
	Offsets []PartitionOffset `json:"offsets"`
}

// PartitionOffset is where a source stands in one partition.
type PartitionOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Next is the offset of the next record to read.
	Next int64 `json:"next_offset"`
	// End is where a StopAtEnd source stops (the partition's end at the
	// job's first start); nil for a source that reads on.
	End *int64 `json:"end_offset,omitempty"`
}

// DescribeSourceState decodes the state a Kafka source's subtask left in a
// checkpoint; ok is false if b is not one. The snapshot does not name its
// subtask: a tool that guesses the format of an operator's state relies on
// the strict decoding (every byte accounted for).
func DescribeSourceState(b []byte) (st SourceState, ok bool) {
	s, err := sourceDecodeState(b)
	if err != nil {
		return st, false
	}
	st = SourceState{Version: sourceStateVersion, Offsets: make([]PartitionOffset, 0, len(s.next))}
	if s.v1 {
		st.Version = 1
	}
	for tp, next := range s.next {
		o := PartitionOffset{Topic: tp.topic, Partition: tp.partition, Next: next}
		if s.bounded {
			end := s.end[tp]
			o.End = &end
		}
		st.Offsets = append(st.Offsets, o)
	}
	sort.Slice(st.Offsets, func(i, j int) bool {
		a, b := st.Offsets[i], st.Offsets[j]
		return lessTP(topicPartition{a.Topic, a.Partition}, topicPartition{b.Topic, b.Partition})
	})
	return st, true
}
