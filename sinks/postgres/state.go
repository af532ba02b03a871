package postgres

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// stateVersion is the version of the checkpoint state encoding.
const stateVersion = 1

// sinkState is the checkpoint state of a subtask: the epochs it
// pre-committed and has not committed, as of the PreCommit of Checkpoint.
type sinkState struct {
	Version    int            `json:"version"`
	Subtask    int            `json:"subtask"`
	Checkpoint uint64         `json:"checkpoint"`
	Pending    []pendingEpoch `json:"pending"`
}

// pendingEpoch is a pre-committed epoch.
type pendingEpoch struct {
	Mode       Mode   `json:"mode"`       // Prepared or Staged
	Checkpoint uint64 `json:"checkpoint"` // pre-committed by PreCommit(Checkpoint)
	After      uint64 `json:"after"`      // the checkpoint before the epoch (for error messages)
	Epoch      int64  `json:"epoch,omitempty"`
	Rows       int64  `json:"rows"`
}

func encodeState(st sinkState) ([]byte, error) {
	st.Version = stateVersion
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("postgres: encode state: %w", err)
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
		return sinkState{}, fmt.Errorf("postgres: decode state: %w", err)
	}
	if dec.More() {
		return sinkState{}, fmt.Errorf("postgres: decode state: trailing data")
	}
	if st.Version != stateVersion {
		return sinkState{}, fmt.Errorf("postgres: decode state: unsupported version %d", st.Version)
	}
	for i, p := range st.Pending {
		if (p.Mode != Prepared && p.Mode != Staged) || p.Checkpoint > st.Checkpoint || p.Rows < 0 ||
			(i > 0 && p.Checkpoint <= st.Pending[i-1].Checkpoint) {
			return sinkState{}, fmt.Errorf("postgres: decode state: invalid pending epoch %+v", p)
		}
	}
	return st, nil
}
