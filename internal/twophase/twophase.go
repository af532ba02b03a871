// Package twophase is the checkpoint state format of the sinks that
// runtime.NewTwoPhaseSink builds: the runtime writes and restores it, and
// tools (weir checkpoints inspect) read it to show each pending commit
// without knowing the sink, from the human form the runtime keeps beside
// each committable.
package twophase

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// Magic starts every state. It differs from the first byte of the formats
// that sinks used before they used the helper (1 for the file sink, '{' for
// JSON), so that the runtime can tell them apart.
const Magic = 0xC7

// version 2 added each committable's description; version 1 states are
// still read.
const version = 2

// ErrCorrupt is wrapped when bytes that start with Magic do not decode.
var ErrCorrupt = errors.New("two-phase sink state: corrupt")

// State is the state of one sink subtask, as of the PreCommit of
// Checkpoint.
type State struct {
	Subtask    uint64
	Checkpoint uint64
	// Pending are the committables prepared and not committed, in the order
	// they were prepared.
	Pending []Pending
	// WriterState is what the writer returned with them.
	WriterState []byte
}

// Pending is one committable.
type Pending struct {
	// Checkpoint is the checkpoint that prepared it.
	Checkpoint uint64
	// Value is its encoding by the sink's codec.
	Value []byte
	// Description is its human form, a JSON value (runtime's
	// CommittableDescriber); nil if the committable has none or the state
	// is of version 1.
	Description json.RawMessage
}

// Is reports whether b is a state of this format (or a damaged one).
func Is(b []byte) bool { return len(b) > 0 && b[0] == Magic }

// Append appends the encoding of st to b:
//
//	magic byte, version byte, uvarint subtask, uvarint checkpoint,
//	uvarint count, per committable: uvarint checkpoint,
//	    uvarint length + codec bytes, uvarint length + description,
//	uvarint length + writer state
func Append(b []byte, st *State) []byte {
	b = append(b, Magic, version)
	b = binary.AppendUvarint(b, st.Subtask)
	b = binary.AppendUvarint(b, st.Checkpoint)
	b = binary.AppendUvarint(b, uint64(len(st.Pending)))
	for _, p := range st.Pending {
		b = binary.AppendUvarint(b, p.Checkpoint)
		b = appendBytes(b, p.Value)
		b = appendBytes(b, p.Description)
	}
	return appendBytes(b, st.WriterState)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// Decode decodes what Append wrote (or version 1 of the format). The
// returned slices alias b.
func Decode(b []byte) (*State, error) {
	if !Is(b) {
		return nil, fmt.Errorf("%w: not a two-phase sink state", ErrCorrupt)
	}
	if len(b) < 2 || b[1] < 1 || b[1] > version {
		return nil, fmt.Errorf("%w: unknown version", ErrCorrupt)
	}
	described := b[1] >= 2
	d := decoder{b: b[2:]}
	st := &State{Subtask: d.uvarint(), Checkpoint: d.uvarint()}
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return nil, fmt.Errorf("%w: %d committables in %d bytes", ErrCorrupt, n, len(d.b))
	}
	for range n {
		p := Pending{Checkpoint: d.uvarint(), Value: d.bytes()}
		if described {
			if p.Description = d.bytes(); len(p.Description) == 0 {
				p.Description = nil
			}
		}
		if d.err != nil {
			break
		}
		if p.Checkpoint > st.Checkpoint {
			return nil, fmt.Errorf("%w: committable of checkpoint %d in the state of checkpoint %d", ErrCorrupt, p.Checkpoint, st.Checkpoint)
		}
		st.Pending = append(st.Pending, p)
	}
	st.WriterState = d.bytes()
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, d.err)
	}
	return st, nil
}

// decoder reads uvarints and length-prefixed byte strings, keeping the
// first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.err = errors.New("truncated")
	}
	if d.err != nil {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
