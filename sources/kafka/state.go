package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// stateVersion is the first byte of every snapshot. Layout of version 1:
//
//	version byte, uvarint count, count × (uvarint len(topic), topic,
//	varint partition, varint next offset), sorted by (topic, partition).
const stateVersion = 1

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

func encodeState(next map[topicPartition]int64) []byte {
	tps := make([]topicPartition, 0, len(next))
	for tp := range next {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool { return lessTP(tps[i], tps[j]) })
	b := []byte{stateVersion}
	b = binary.AppendUvarint(b, uint64(len(tps)))
	for _, tp := range tps {
		b = binary.AppendUvarint(b, uint64(len(tp.topic)))
		b = append(b, tp.topic...)
		b = binary.AppendVarint(b, int64(tp.partition))
		b = binary.AppendVarint(b, next[tp])
	}
	return b
}

var errCorruptState = errors.New("kafka source: corrupt state")

func decodeState(b []byte) (map[topicPartition]int64, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", errCorruptState)
	}
	if b[0] != stateVersion {
		return nil, fmt.Errorf("kafka source: state version %d not supported (want %d)", b[0], stateVersion)
	}
	b = b[1:]
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	sv := func() (int64, bool) {
		v, n := binary.Varint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	count, ok := uv()
	if !ok || count > uint64(len(b)) {
		return nil, fmt.Errorf("%w: bad count", errCorruptState)
	}
	out := make(map[topicPartition]int64, count)
	for i := uint64(0); i < count; i++ {
		l, ok := uv()
		if !ok || l > uint64(len(b)) {
			return nil, fmt.Errorf("%w: entry %d: bad topic length", errCorruptState, i)
		}
		topic := string(b[:l])
		b = b[l:]
		p, ok1 := sv()
		off, ok2 := sv()
		if !ok1 || !ok2 || p < 0 || p > 1<<31-1 || off < 0 {
			return nil, fmt.Errorf("%w: entry %d (%s): bad partition or offset", errCorruptState, i, topic)
		}
		tp := topicPartition{topic, int32(p)}
		if _, dup := out[tp]; dup {
			return nil, fmt.Errorf("%w: %s listed twice", errCorruptState, tp)
		}
		out[tp] = off
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errCorruptState, len(b))
	}
	return out, nil
}
