package kafka

import (
	"reflect"
	"testing"
)

func TestSinkStateRoundTrip(t *testing.T) {
	st := sinkState{Checkpoint: 7, Pending: []pendingTxn{
		{Checkpoint: 6, Slot: 1, TransactionalID: "p-0-1", ProducerID: 42, Epoch: 3},
		{Checkpoint: 7, Slot: 2, TransactionalID: "p-0-2", ProducerID: 43, Epoch: 0},
	}}
	b, err := encodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	st.Version = stateVersion
	if !reflect.DeepEqual(got, st) {
		t.Fatalf("got %+v, want %+v", got, st)
	}
	if st, err := decodeState(nil); err != nil || len(st.Pending) != 0 {
		t.Fatalf("empty state: %+v %v", st, err)
	}
	for _, bad := range []string{
		`{"version":2,"checkpoint":1}`,
		`{"version":1,"checkpoint":1,"pending":[{"checkpoint":2,"transactional_id":"x"}]}`,
		`{"version":1,"checkpoint":1,"pending":[{"checkpoint":1,"transactional_id":""}]}`,
		`{"version":1,"checkpoint":1,"extra":0}`,
		`{"version":1} {}`,
		`not json`,
	} {
		if _, err := decodeState([]byte(bad)); err == nil {
			t.Errorf("decoded %s", bad)
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	b, _ := encodeState(sinkState{Checkpoint: 3, Pending: []pendingTxn{{Checkpoint: 2, TransactionalID: "a-0-0", ProducerID: 1}}})
	f.Add(b)
	f.Add([]byte(`{"version":1,"checkpoint":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeState(b)
		if err != nil {
			return
		}
		again, err := encodeState(st)
		if err != nil {
			t.Fatal(err)
		}
		st2, err := decodeState(again)
		if err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if len(b) > 0 && !reflect.DeepEqual(st, st2) {
			t.Fatalf("round trip: %+v vs %+v", st, st2)
		}
	})
}

// TestLegacyState: a state written before the sink used
// runtime.NewTwoPhaseSink decodes into the same pending transactions.
func TestLegacyState(t *testing.T) {
	p := pendingTxn{Checkpoint: 2, Slot: 1, TransactionalID: "a-0-1", ProducerID: 7, Epoch: 3}
	b, err := encodeState(sinkState{Checkpoint: 3, Pending: []pendingTxn{p}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := (&txnWriter[Message]{}).DecodeLegacyState(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Fresh || r.Checkpoint != 3 || len(r.Committables) != 1 || r.Committables[0].Checkpoint != 2 || r.Committables[0].Value != p {
		t.Fatalf("DecodeLegacyState = %+v", r)
	}
}
