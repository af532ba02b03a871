package state

import (
	"fmt"
	"iter"
)

// Scope is the keyed context of one operator subtask: the key of the record
// being processed, which every state handle created from the scope reads and
// writes. The runtime sets the key before it calls user code.
type Scope[K comparable] struct {
	backend *Backend
	keys    Codec[K]
	hash    func(K) uint64 // places keys in key groups
	// slotHash places keys in the cache's hash tables; nil means hash.
	slotHash func(K) uint64
	key      K
	keyBuf   []byte
	tables   []interface{ prefetch([]K) }
}

// NewScope returns a scope for keys of type K whose state lives in b.
func NewScope[K comparable](b *Backend, keys Codec[K]) (*Scope[K], error) {
	if keys == nil {
		keys = CodecFor[K]()
	}
	if keys == nil {
		var zero K
		return nil, fmt.Errorf("state: keys of type %T need a codec", zero)
	}
	return &Scope[K]{backend: b, keys: keys, hash: Hasher(keys)}, nil
}

// SetKey makes k the current key.
func (s *Scope[K]) SetKey(k K) { s.key = k }

// Key returns the current key.
func (s *Scope[K]) Key() K { return s.key }

// Prefetch reads the cache slots of keys in every state of the scope without
// using what it reads. Called for a group of keys before they are processed,
// it lets the CPU overlap the cache misses of the lookups, which a tight loop
// of independent loads allows and record-by-record processing does not.
func (s *Scope[K]) Prefetch(keys []K) {
	for _, t := range s.tables {
		t.prefetch(keys)
	}
}

// Value is a single value of type T per key.
type Value[K comparable, T any] struct {
	t *table[K, T]
}

// NewValue registers a value state called name. Names must be unique within
// an operator and stable across restarts: they are how the state is found.
func NewValue[K comparable, T any](s *Scope[K], name string, codec Codec[T]) (*Value[K, T], error) {
	t, err := newTable(s, name, codec)
	if err != nil {
		return nil, err
	}
	return &Value[K, T]{t: t}, nil
}

// Get returns the value for the current key and whether there is one.
// NB: a value that refers to memory (a slice, a map, a pointer) is the cached
// copy: change it only through Put, or the change may miss checkpoints.
func (v *Value[K, T]) Get() (T, bool) { return v.t.get(v.t.scope.key) }

// Put sets the value for the current key.
func (v *Value[K, T]) Put(val T) { v.t.put(v.t.scope.key, val) }

// Update sets the value for the current key to fn(value, whether there is
// one) and returns it. It costs one lookup where Get then Put cost two, and
// fn may change a value that refers to memory in place (a checkpoint being
// written gets the old value first).
func (v *Value[K, T]) Update(fn func(val T, ok bool) T) T { return v.t.update(v.t.scope.key, fn) }

// Delete removes the value for the current key.
func (v *Value[K, T]) Delete() { v.t.delete(v.t.scope.key) }

// Map is a map from UK to V per key. The entries of one key are cached and
// stored together, which suits maps of up to a few thousand entries per key.
type Map[K comparable, UK comparable, V any] struct {
	t *table[K, map[UK]V]
}

// NewMap registers a map state called name; see NewValue for naming.
func NewMap[K comparable, UK comparable, V any](s *Scope[K], name string, keys Codec[UK], values Codec[V]) (*Map[K, UK, V], error) {
	if keys == nil || values == nil {
		return nil, fmt.Errorf("state: map %q: nil codec", name)
	}
	t, err := newTable(s, name, Codec[map[UK]V](mapCodec[UK, V]{keys: keys, values: values}))
	if err != nil {
		return nil, err
	}
	return &Map[K, UK, V]{t: t}, nil
}

// Get returns the entry uk of the current key's map.
func (m *Map[K, UK, V]) Get(uk UK) (V, bool) {
	mm, _ := m.t.get(m.t.scope.key)
	v, ok := mm[uk]
	return v, ok
}

// Put sets the entry uk of the current key's map.
func (m *Map[K, UK, V]) Put(uk UK, v V) {
	mm := m.mutable()
	mm[uk] = v
}

// Delete removes the entry uk of the current key's map.
func (m *Map[K, UK, V]) Delete(uk UK) {
	mm, _ := m.t.get(m.t.scope.key)
	if _, ok := mm[uk]; !ok {
		return
	}
	mm = m.mutable()
	delete(mm, uk)
	if len(mm) == 0 {
		m.t.delete(m.t.scope.key)
	}
}

// Len returns the number of entries of the current key's map.
func (m *Map[K, UK, V]) Len() int {
	mm, _ := m.t.get(m.t.scope.key)
	return len(mm)
}

// All iterates over the current key's map in unspecified order. The map must
// not be changed during the iteration.
func (m *Map[K, UK, V]) All() iter.Seq2[UK, V] {
	mm, _ := m.t.get(m.t.scope.key)
	return func(yield func(UK, V) bool) {
		for k, v := range mm {
			if !yield(k, v) {
				return
			}
		}
	}
}

// Clear removes the current key's map.
func (m *Map[K, UK, V]) Clear() { m.t.delete(m.t.scope.key) }

// mutable returns the current key's map after marking it changed, so that
// in-place changes are captured by the next checkpoint (and the frozen value
// is encoded before it is changed).
func (m *Map[K, UK, V]) mutable() map[UK]V {
	k := m.t.scope.key
	mm, ok := m.t.get(k)
	if !ok || mm == nil {
		mm = make(map[UK]V)
	}
	m.t.put(k, mm)
	return mm
}
