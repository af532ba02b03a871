package kafka

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/weirstream/weir/runtime"
)

// The checkpoint state is runtime.NewTwoPhaseSink's, with each pendingTxn
// encoded as JSON. Before, the sink wrote a sinkState as JSON; such states
// are still read (DecodeLegacyState), and tests write them.

// stateVersion is the version of the legacy checkpoint state encoding.
const stateVersion = 1

// sinkState is the checkpoint state of an exactly-once subtask: the
// transactions it pre-committed and has not committed, as of the PreCommit of
// Checkpoint.
type sinkState struct {
	Version    int          `json:"version"`
	Checkpoint uint64       `json:"checkpoint"`
	Pending    []pendingTxn `json:"pending"`
}

// pendingTxn is everything needed to commit a transaction after a restart.
type pendingTxn struct {
	Checkpoint      uint64 `json:"checkpoint"` // pre-committed by PreCommit(Checkpoint)
	Slot            int    `json:"slot"`
	TransactionalID string `json:"transactional_id"`
	ProducerID      int64  `json:"producer_id"`
	Epoch           int16  `json:"epoch"`
}

// DescribeCommittable is what weir checkpoints inspect shows of a pending
// transaction (runtime.CommittableDescriber).
func (p pendingTxn) DescribeCommittable() any {
	return struct {
		TransactionalID string `json:"transactional_id"`
		ProducerID      int64  `json:"producer_id"`
		Epoch           int16  `json:"epoch"`
	}{p.TransactionalID, p.ProducerID, p.Epoch}
}

func encodeState(st sinkState) ([]byte, error) {
	st.Version = stateVersion
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("kafka sink: encode state: %w", err)
	}
	return b, nil
}

// decodeState decodes what encodeState returned; nil or empty input is the
// empty state of a fresh start.
func decodeState(b []byte) (sinkState, error) {
	var st sinkState
	if len(b) == 0 {
		return st, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return sinkState{}, fmt.Errorf("kafka sink: decode state: %w", err)
	}
	if dec.More() {
		return sinkState{}, fmt.Errorf("kafka sink: decode state: trailing data")
	}
	if st.Version != stateVersion {
		return sinkState{}, fmt.Errorf("kafka sink: decode state: unsupported version %d", st.Version)
	}
	for _, p := range st.Pending {
		if p.TransactionalID == "" || p.ProducerID < 0 || p.Epoch < 0 || p.Checkpoint > st.Checkpoint {
			return sinkState{}, fmt.Errorf("kafka sink: decode state: invalid pending transaction %+v", p)
		}
	}
	return st, nil
}

// DecodeLegacyState decodes a state written before the sink used
// runtime.NewTwoPhaseSink, so that its checkpoints stay restorable.
func (w *txnWriter[T]) DecodeLegacyState(b []byte) (runtime.Recovery[pendingTxn], error) {
	st, err := decodeState(b)
	if err != nil {
		return runtime.Recovery[pendingTxn]{}, err
	}
	r := runtime.Recovery[pendingTxn]{Checkpoint: st.Checkpoint}
	for _, p := range st.Pending {
		r.Committables = append(r.Committables, runtime.Committable[pendingTxn]{Checkpoint: p.Checkpoint, Value: p})
	}
	return r, nil
}
