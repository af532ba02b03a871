package statebackend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// ErrKindChanged is returned when a state is registered as another kind of
// state than the one stored under its name (a Value as a List, a state
// without TTL with one): its stored bytes would be misread.
var ErrKindChanged = errors.New("state: state registered as another kind than it was stored as")

// stateKind is the kind of a state, as far as it decides how its values are
// stored.
type stateKind uint8

const (
	kindValue stateKind = iota + 1
	kindMap
	kindList
	kindNamespaced
	kindTimers
	// kindTTL is set with the kind of a state with a TTL, whose values
	// carry timestamps.
	kindTTL stateKind = 1 << 7
)

func (k stateKind) String() string {
	var b strings.Builder
	switch k &^ kindTTL {
	case kindValue:
		b.WriteString("Value")
	case kindMap:
		b.WriteString("Map")
	case kindList:
		b.WriteString("List")
	case kindNamespaced:
		b.WriteString("Namespaced")
	case kindTimers:
		b.WriteString("Timers")
	default:
		fmt.Fprintf(&b, "kind %d", uint8(k&^kindTTL))
	}
	if k&kindTTL != 0 {
		b.WriteString(" with TTL")
	}
	return b.String()
}

type kindRecord struct {
	id   uint32
	kind stateKind
}

// kindKey returns the Pebble key of the kind of state id: [0xff][0][id],
// outside every key group (which keeps full snapshots, which replace the key
// groups' range, from deleting it).
func kindKey(id uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{0xff, 0}, id)
}

// checkKind fails if Pebble holds state id, called name, as another kind;
// else it makes sure the next snapshot records kind. (A state stored before
// kinds were recorded is taken as it is registered.)
func (b *Backend) checkKind(id uint32, name string, kind stateKind) error {
	if !b.complete { // else the database started empty
		raw, found, err := b.get(kindKey(id))
		switch {
		case err != nil:
			return fmt.Errorf("state: %q: read its kind: %w", name, err)
		case found:
			stored := stateKind(0)
			if len(raw) == 1 {
				stored = stateKind(raw[0])
			}
			if stored != kind {
				return fmt.Errorf("%w: %q is stored as a %v and registered as a %v: a state that changes kind needs a new name", ErrKindChanged, name, stored, kind)
			}
			return nil
		}
	}
	b.newKinds = append(b.newKinds, kindRecord{id: id, kind: kind})
	return nil
}

// writeKinds adds the kinds of the states registered since the last
// snapshot to the frozen epoch's delta.
func (b *Backend) writeKinds() {
	for _, k := range b.newKinds {
		b.delta.add(kindKey(k.id), func(dst []byte) []byte { return append(dst, byte(k.kind)) }, false)
	}
	b.newKinds = b.newKinds[:0]
}
