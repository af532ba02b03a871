package kafka

import (
	"reflect"
	"testing"
)

func TestSourceStateRoundTrip(t *testing.T) {
	for _, st := range []sourceState{
		{next: map[topicPartition]int64{}},
		{next: map[topicPartition]int64{{"a", 0}: 0}},
		{next: map[topicPartition]int64{{"orders", 2}: 17, {"orders", 0}: 1 << 40, {"b", 1}: 5}},
		{next: map[topicPartition]int64{}, end: map[topicPartition]int64{}, bounded: true},
		{
			next:    map[topicPartition]int64{{"orders", 2}: 17, {"b", 1}: 5},
			end:     map[topicPartition]int64{{"orders", 2}: 20, {"b", 1}: 5},
			bounded: true,
			legacy:  map[string]int32{"orders": 3, "b": 2},
		},
		{next: map[topicPartition]int64{{"orders", 4}: 1}, legacy: map[string]int32{"orders": 3}},
	} {
		enc := sourceEncodeState(st)
		if enc[0] != sourceStateVersion {
			t.Fatalf("version byte %d", enc[0])
		}
		got, err := sourceDecodeState(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, st) {
			t.Fatalf("round trip: got %+v, want %+v", got, st)
		}
		if string(sourceEncodeState(got)) != string(enc) {
			t.Fatal("encoding is not deterministic")
		}
	}
}

// TestStateDecodesVersion1 decodes snapshots written by the version-1
// encoder, byte for byte.
func TestStateDecodesVersion1(t *testing.T) {
	for enc, want := range map[string]map[topicPartition]int64{
		"\x01\x03\x01a\x00\x04\x01a\x04\x04\x01b\x02\x04":                        {{"a", 0}: 2, {"a", 2}: 2, {"b", 1}: 2},
		"\x01\x03\x01b\x02\n\x06orders\x00\x80\x80\x80\x80\x80@\x06orders\x04\"": {{"orders", 2}: 17, {"orders", 0}: 1 << 40, {"b", 1}: 5},
		"\x01\x00": {},
	} {
		got, err := sourceDecodeState([]byte(enc))
		if err != nil {
			t.Fatalf("%q: %v", enc, err)
		}
		if !got.v1 || got.bounded || got.end != nil || got.legacy != nil || !reflect.DeepEqual(got.next, want) {
			t.Errorf("%q decoded to %+v, want version 1 with offsets %v", enc, got, want)
		}
	}
}

func TestStateRejectsCorruption(t *testing.T) {
	good := sourceEncodeState(sourceState{
		next: map[topicPartition]int64{{"orders", 1}: 42, {"x", 0}: 7}, end: map[topicPartition]int64{{"orders", 1}: 50, {"x", 0}: 7},
		bounded: true, legacy: map[string]int32{"orders": 2},
	})
	goodV1 := []byte("\x01\x02\x01a\x02\x04\x01b\x00\x04")
	bad := [][]byte{
		nil,
		{},
		{3},                                      // unknown version
		{sourceStateVersion},                     // no flags
		{sourceStateVersion, 0},                  // no count
		{sourceStateVersion, 0, 5},               // count larger than payload
		{sourceStateVersion, 4, 0, 0},            // unknown flag
		{sourceStateVersion, 0, 0},               // no version-1 section
		{sourceStateVersion, 0, 0, 1, 1, 'a', 0}, // version-1 topic without partitions
		{1},                                      // version 1 without count
		append(append([]byte{}, good...), 0),     // trailing byte
		good[:len(good)-1],                       // truncated
		append(append([]byte{}, goodV1...), 0),
		goodV1[:len(goodV1)-1],
	}
	for i, b := range bad {
		if _, err := sourceDecodeState(b); err == nil {
			t.Errorf("case %d (%x): decoded without error", i, b)
		}
	}
}

// TestDescribeSourceState decodes the snapshots of every version the source
// restores into the positions tools show.
func TestDescribeSourceState(t *testing.T) {
	end := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name string
		b    []byte
		want SourceState
	}{
		{"version 1", []byte("\x01\x03\x01a\x00\x04\x01a\x04\x04\x01b\x02\x04"), SourceState{Version: 1,
			Offsets: []PartitionOffset{{"a", 0, 2, nil}, {"a", 2, 2, nil}, {"b", 1, 2, nil}}}},
		{"version 2 with version-1 topics", sourceEncodeState(sourceState{next: map[topicPartition]int64{{"orders", 1}: 120, {"orders", 0}: 7},
			legacy: map[string]int32{"old": 3}}), SourceState{Version: 2,
			Offsets: []PartitionOffset{{"orders", 0, 7, nil}, {"orders", 1, 120, nil}}}},
		{"stopping at the end", sourceEncodeState(sourceState{next: map[topicPartition]int64{{"b", 0}: 4, {"a", 3}: 9},
			end: map[topicPartition]int64{{"b", 0}: 10, {"a", 3}: 9}, bounded: true}), SourceState{Version: 2,
			Offsets: []PartitionOffset{{"a", 3, 9, end(9)}, {"b", 0, 4, end(10)}}}},
		{"empty", sourceEncodeState(sourceState{next: map[topicPartition]int64{}}), SourceState{Version: 2, Offsets: []PartitionOffset{}}},
	} {
		got, ok := DescribeSourceState(tc.b)
		if !ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, ok, tc.want)
		}
	}
	good := sourceEncodeState(sourceState{next: map[topicPartition]int64{{"a", 0}: 1}})
	for _, bad := range [][]byte{nil, {3, 0, 0, 0}, append(good, 0), good[:len(good)-1]} {
		if st, ok := DescribeSourceState(bad); ok {
			t.Errorf("%q described as %+v; want not a Kafka source state", bad, st)
		}
	}
}
