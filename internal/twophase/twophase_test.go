package twophase

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	st := &State{Subtask: 3, Checkpoint: 9, WriterState: []byte("ws"), Pending: []Pending{
		{Checkpoint: 8, Value: []byte("a"), Description: json.RawMessage(`{"staged":"pending-8"}`)},
		{Checkpoint: 9, Value: []byte("b")},
	}}
	b := Append(nil, st)
	got, err := Decode(b)
	if err != nil || !reflect.DeepEqual(got, st) {
		t.Fatalf("Decode(Append(%+v)) = %+v, %v", st, got, err)
	}
	for i := range len(b) {
		if _, err := Decode(b[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("state cut at %d: err = %v, want ErrCorrupt", i, err)
		}
	}
	if _, err := Decode(append(b, 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("state with a trailing byte: err = %v, want ErrCorrupt", err)
	}
}

// TestVersion1 checks that states written before descriptions were kept
// still decode: the bytes are those runtime.NewTwoPhaseSink wrote then.
func TestVersion1(t *testing.T) {
	b := []byte{Magic, 1, 3, 9, 1, 8} // subtask 3, checkpoint 9, one committable of checkpoint 8
	b = binary.AppendUvarint(b, 1)
	b = append(b, 'a')
	b = binary.AppendUvarint(b, 2)
	b = append(b, "ws"...)
	want := &State{Subtask: 3, Checkpoint: 9, WriterState: []byte("ws"), Pending: []Pending{{Checkpoint: 8, Value: []byte("a")}}}
	if got, err := Decode(b); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("version 1 state decoded as %+v, %v; want %+v", got, err, want)
	}
}

func TestRefusesCommittableOfLaterCheckpoint(t *testing.T) {
	b := Append(nil, &State{Checkpoint: 2, Pending: []Pending{{Checkpoint: 3}}})
	if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
}
