package kafka

import (
	"reflect"
	"testing"
)

func TestStateRoundTrip(t *testing.T) {
	for _, m := range []map[topicPartition]int64{
		{},
		{{"a", 0}: 0},
		{{"orders", 2}: 17, {"orders", 0}: 1 << 40, {"b", 1}: 5},
	} {
		enc := encodeState(m)
		if enc[0] != stateVersion {
			t.Fatalf("version byte %d", enc[0])
		}
		got, err := decodeState(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip: got %v, want %v", got, m)
		}
		if string(encodeState(got)) != string(enc) {
			t.Fatal("encoding is not deterministic")
		}
	}
}

func TestStateRejectsCorruption(t *testing.T) {
	good := encodeState(map[topicPartition]int64{{"orders", 1}: 42, {"x", 0}: 7})
	bad := [][]byte{
		nil,
		{},
		{2},                                  // unknown version
		{stateVersion},                       // no count
		{stateVersion, 5},                    // count larger than payload
		append(append([]byte{}, good...), 0), // trailing byte
		good[:len(good)-1],                   // truncated
	}
	for i, b := range bad {
		if _, err := decodeState(b); err == nil {
			t.Errorf("case %d (%x): decoded without error", i, b)
		}
	}
}
