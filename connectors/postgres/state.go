package postgres

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// The checkpoint state of a subtask is a header, one line of JSON (a
// sinkState), followed by the records of its held epochs, in order: Bytes
// bytes each, one JSON value a line (JSON Lines; encoding/json escapes
// newlines inside strings, so a record is one line). Version 1, written by
// earlier versions of the sink, is the header alone: its staged epochs
// were in the database (weir_staged_rows).
const stateVersion = 2

// sinkState is the checkpoint state of a subtask: the epochs it
// pre-committed and has not committed, as of the PreCommit of Checkpoint.
type sinkState struct {
	Version    int            `json:"version"`
	Subtask    int            `json:"subtask"`
	Checkpoint uint64         `json:"checkpoint"`
	Pending    []pendingEpoch `json:"pending"`
}

// pendingEpoch is a pre-committed epoch: a prepared transaction (Mode
// Prepared) or records held in the checkpoint (Mode Staged).
type pendingEpoch struct {
	Mode       Mode   `json:"mode"`       // Prepared or Staged
	Checkpoint uint64 `json:"checkpoint"` // pre-committed by PreCommit(Checkpoint)
	After      uint64 `json:"after"`      // the checkpoint before the epoch (for error messages)
	Rows       int64  `json:"rows"`
	Bytes      int64  `json:"bytes,omitempty"` // Staged: the length of wal
	// Epoch named the staged rows of a version 1 state; it is read only
	// to say that such a state needs the earlier version.
	Epoch int64 `json:"epoch,omitempty"`

	wal []byte // Staged: the epoch's records as JSON Lines
}

var errStateFormat = errors.New("postgres: decode state")

// encodeRecords returns recs as JSON Lines. pos is the position of recs[0]
// in its epoch and after the checkpoint before it, for the error message.
func encodeRecords[T any](recs []T, pos int64, after uint64) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			// Staged mode keeps records as JSON in the checkpoint until it
			// completes; a record that has none cannot be kept.
			return nil, fmt.Errorf("postgres: record %d of the epoch after checkpoint %d cannot be kept in the checkpoint as JSON: %w",
				pos+int64(i), after, err)
		}
	}
	return buf.Bytes(), nil
}

// decodeRecords decodes the JSON Lines of a held epoch.
func decodeRecords[T any](p pendingEpoch) ([]T, error) {
	recs := make([]T, 0, p.Rows)
	dec := json.NewDecoder(bytes.NewReader(p.wal))
	for dec.More() {
		var rec T
		if err := dec.Decode(&rec); err != nil {
			return nil, fmt.Errorf("%w: record %d of the epoch of checkpoint %d: %w", errStateFormat, len(recs), p.Checkpoint, err)
		}
		recs = append(recs, rec)
	}
	if int64(len(recs)) != p.Rows {
		return nil, fmt.Errorf("%w: the epoch of checkpoint %d holds %d records, its header says %d",
			errStateFormat, p.Checkpoint, len(recs), p.Rows)
	}
	return recs, nil
}

func encodeState(st sinkState) ([]byte, error) {
	st.Version = stateVersion
	header, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("postgres: encode state: %w", err)
	}
	n := len(header) + 1
	for _, p := range st.Pending {
		n += len(p.wal)
	}
	b := make([]byte, 0, n)
	b = append(append(b, header...), '\n')
	for _, p := range st.Pending {
		b = append(b, p.wal...)
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
	header, rest, _ := bytes.Cut(b, []byte{'\n'})
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return sinkState{}, fmt.Errorf("%w: %w", errStateFormat, err)
	}
	if dec.More() {
		return sinkState{}, fmt.Errorf("%w: trailing data", errStateFormat)
	}
	if st.Version != stateVersion && st.Version != 1 {
		return sinkState{}, fmt.Errorf("%w: unsupported version %d", errStateFormat, st.Version)
	}
	for i := range st.Pending {
		p := &st.Pending[i]
		if st.Version == 1 && p.Mode == Staged {
			return sinkState{}, fmt.Errorf("%w: checkpoint %d promises an epoch staged in weir_staged_rows by an earlier version of the sink, "+
				"which this version does not read: restore the checkpoint with the earlier version, let one more checkpoint complete, then upgrade",
				errStateFormat, st.Checkpoint)
		}
		if (p.Mode != Prepared && p.Mode != Staged) || p.Checkpoint > st.Checkpoint || p.Rows < 0 || p.Epoch != 0 ||
			(p.Mode == Prepared) != (p.Bytes == 0) || p.Bytes < 0 || p.Bytes > int64(len(rest)) ||
			(i > 0 && p.Checkpoint <= st.Pending[i-1].Checkpoint) {
			return sinkState{}, fmt.Errorf("%w: invalid pending epoch %+v", errStateFormat, *p)
		}
		p.wal, rest = rest[:p.Bytes:p.Bytes], rest[p.Bytes:]
	}
	if len(rest) > 0 {
		return sinkState{}, fmt.Errorf("%w: %d bytes after the last held epoch", errStateFormat, len(rest))
	}
	return st, nil
}
