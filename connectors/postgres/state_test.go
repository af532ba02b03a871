package postgres

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestStateRoundTrip: held epochs and prepared ones survive the encoding,
// each held epoch with its own records.
func TestStateRoundTrip(t *testing.T) {
	recs2 := []increment{{"a", 1}, {"line\nbreak", 2}}
	recs3 := []increment{{"<b>", 3}}
	var pending []pendingEpoch
	pending = append(pending, pendingEpoch{Mode: Prepared, Checkpoint: 1, Rows: 7})
	for i, recs := range [][]increment{recs2, recs3} {
		wal, err := encodeRecords(recs, 0, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, pendingEpoch{Mode: Staged, Checkpoint: uint64(i + 2), After: uint64(i + 1),
			Rows: int64(len(recs)), Bytes: int64(len(wal)), wal: wal})
	}
	b, err := encodeState(sinkState{Subtask: 1, Checkpoint: 3, Pending: pending})
	if err != nil {
		t.Fatal(err)
	}
	st, err := decodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	if st.Subtask != 1 || st.Checkpoint != 3 || len(st.Pending) != 3 || st.Pending[0].Mode != Prepared || st.Pending[0].Rows != 7 {
		t.Fatalf("decoded %+v", st)
	}
	for i, want := range [][]increment{recs2, recs3} {
		got, err := decodeRecords[increment](st.Pending[i+1])
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("epoch %d holds %v, want %v", i+2, got, want)
		}
	}
}

// TestStateErrors: a state that does not add up is an error, never fewer
// records; a version 1 state with a staged epoch says what to do.
func TestStateErrors(t *testing.T) {
	wal, _ := encodeRecords([]increment{{"a", 1}, {"b", 2}}, 0, 0)
	good, err := encodeState(sinkState{Checkpoint: 1, Pending: []pendingEpoch{{Mode: Staged, Checkpoint: 1, Rows: 2, Bytes: int64(len(wal)), wal: wal}}})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		state []byte
		want  string
	}{
		"truncated":  {good[:len(good)-3], "invalid pending epoch"},
		"trailing":   {append(append([]byte{}, good...), `{"key":"c"}`+"\n"...), "after the last held epoch"},
		"version 1":  {[]byte(`{"version":1,"subtask":0,"checkpoint":4,"pending":[{"mode":2,"checkpoint":4,"after":3,"epoch":99,"rows":5}]}`), "earlier version"},
		"version 3":  {[]byte(`{"version":3,"subtask":0,"checkpoint":4,"pending":[]}` + "\n"), "unsupported version 3"},
		"rows wrong": {[]byte(strings.Replace(string(good), `"rows":2`, `"rows":3`, 1)), "holds 2 records, its header says 3"},
	} {
		st, err := decodeState(c.state)
		if err == nil && len(st.Pending) == 1 {
			_, err = decodeRecords[increment](st.Pending[0])
		}
		if !errors.Is(err, errStateFormat) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.want)
		}
	}
	// A version 1 state with prepared epochs only is read as before.
	st, err := decodeState([]byte(`{"version":1,"subtask":0,"checkpoint":4,"pending":[{"mode":1,"checkpoint":4,"after":3,"rows":5}]}`))
	if err != nil || len(st.Pending) != 1 || st.Pending[0].Rows != 5 {
		t.Fatalf("version 1 state: %+v, %v", st, err)
	}
}
