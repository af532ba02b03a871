package state

import (
	"iter"

	"github.com/weirstream/weir/internal/statebackend"
)

// The handles are defined over their implementation in internal/statebackend
// with the same underlying types, so that converting a pointer is free and
// each method below compiles to a direct call of the implementation's.

// Scope is the keyed context of one operator subtask: the key of the record
// being processed, which every state handle created from the scope reads and
// writes. The runtime sets the key before it calls user code.
type Scope[K comparable] statebackend.Scope[K]

func (s *Scope[K]) impl() *statebackend.Scope[K] { return (*statebackend.Scope[K])(s) }

// Key returns the current key.
func (s *Scope[K]) Key() K { return s.impl().Key() }

// Value is a single value of type T per key.
type Value[K comparable, T any] statebackend.Value[K, T]

// NewValue registers a value state called name. Names must be unique within
// an operator and stable across restarts: they are how the state is found.
// Options (WithTTL) apply to this state only.
func NewValue[K comparable, T any](s *Scope[K], name string, codec Codec[T], opts ...Option) (*Value[K, T], error) {
	v, err := statebackend.NewValue(s.impl(), name, statebackend.Codec[T](codec), implOptions(opts)...)
	return (*Value[K, T])(v), err
}

func (v *Value[K, T]) impl() *statebackend.Value[K, T] { return (*statebackend.Value[K, T])(v) }

// Get returns the value for the current key and whether there is one.
//
// A value of type []byte is a copy, which the caller may keep and change.
// NB: any other value that refers to memory (a slice, a map, a pointer) is
// the cached value itself: it must not be changed (change it with Update,
// which lets fn change it in place, or Put a new one), or the change may
// miss checkpoints, or reach one taken before it.
func (v *Value[K, T]) Get() (T, bool) { return v.impl().Get() }

// Put sets the value for the current key.
func (v *Value[K, T]) Put(val T) { v.impl().Put(val) }

// Update sets the value for the current key to fn(value, whether there is
// one) and returns it. It costs one lookup where Get then Put cost two, and
// fn may change a value that refers to memory in place (a checkpoint being
// written gets the old value first). What Update returns is the cached
// value itself, even a []byte.
func (v *Value[K, T]) Update(fn func(val T, ok bool) T) T { return v.impl().Update(fn) }

// Delete removes the value for the current key.
func (v *Value[K, T]) Delete() { v.impl().Delete() }

// Map is a map from UK to V per key. The entries of one key are cached and
// stored together, which suits maps of up to a few thousand entries per key.
// With a TTL (see WithTTL), each entry has its own.
type Map[K comparable, UK comparable, V any] statebackend.Map[K, UK, V]

// NewMap registers a map state called name; see NewValue for naming and
// options.
func NewMap[K comparable, UK comparable, V any](s *Scope[K], name string, keys Codec[UK], values Codec[V], opts ...Option) (*Map[K, UK, V], error) {
	m, err := statebackend.NewMap(s.impl(), name, statebackend.Codec[UK](keys), statebackend.Codec[V](values), implOptions(opts)...)
	return (*Map[K, UK, V])(m), err
}

func (m *Map[K, UK, V]) impl() *statebackend.Map[K, UK, V] { return (*statebackend.Map[K, UK, V])(m) }

// Get returns the entry uk of the current key's map. See Value.Get about
// values that refer to memory: a []byte is a copy, any other is the cached
// value, which must not be changed.
func (m *Map[K, UK, V]) Get(uk UK) (V, bool) { return m.impl().Get(uk) }

// Put sets the entry uk of the current key's map.
func (m *Map[K, UK, V]) Put(uk UK, v V) { m.impl().Put(uk, v) }

// Delete removes the entry uk of the current key's map.
func (m *Map[K, UK, V]) Delete(uk UK) { m.impl().Delete(uk) }

// Len returns the number of entries of the current key's map.
func (m *Map[K, UK, V]) Len() int { return m.impl().Len() }

// All iterates over the current key's map in unspecified order. The map must
// not be changed during the iteration. See Get about values that refer to
// memory.
func (m *Map[K, UK, V]) All() iter.Seq2[UK, V] { return m.impl().All() }

// Clear removes the current key's map.
func (m *Map[K, UK, V]) Clear() { m.impl().Clear() }

// List is a list of values of type T per key, for state that grows by
// appends: the records of a key buffered until a timer fires, the events
// of a session.
//
// Appending costs no rewrite of the list. In the cache a key's list is a
// slice that Add appends to; a checkpoint writes only the elements appended
// since the previous one, as a Pebble merge operand that Pebble's default
// merger concatenates with the list it holds (elements are stored
// length-prefixed, back to back, so that concatenated lists are a list).
// Update and Clear, which replace the list, write it whole (or delete it).
// An Add to a key whose list is not cached reads the list from Pebble first,
// as every state kind does on a cache miss. (A blind append, a merge
// operand for a list the cache does not hold, would spare that read, but a
// later read could not tell which of the cached elements Pebble already
// holds while a checkpoint is in flight.)
//
// With a TTL (see WithTTL), each element has its own, from its Add or the
// list's Update; a read with OnReadAndWrite restarts all of them, which
// rewrites the list.
type List[K comparable, T any] statebackend.List[K, T]

// NewList registers a list state called name whose elements codec encodes;
// see NewValue for naming and options.
func NewList[K comparable, T any](s *Scope[K], name string, codec Codec[T], opts ...Option) (*List[K, T], error) {
	l, err := statebackend.NewList(s.impl(), name, statebackend.Codec[T](codec), implOptions(opts)...)
	return (*List[K, T])(l), err
}

func (l *List[K, T]) impl() *statebackend.List[K, T] { return (*statebackend.List[K, T])(l) }

// Add appends v to the current key's list.
func (l *List[K, T]) Add(v T) { l.impl().Add(v) }

// AddAll appends vs to the current key's list.
func (l *List[K, T]) AddAll(vs []T) { l.impl().AddAll(vs) }

// All iterates over the current key's list in order. Elements added during
// the iteration are not visited. See Value.Get about elements that refer to
// memory; elements of type []byte are copies.
func (l *List[K, T]) All() iter.Seq[T] { return l.impl().All() }

// Len returns the length of the current key's list.
func (l *List[K, T]) Len() int { return l.impl().Len() }

// Update replaces the current key's list with a copy of vs; an empty vs
// clears it.
func (l *List[K, T]) Update(vs []T) { l.impl().Update(vs) }

// Clear removes the current key's list.
func (l *List[K, T]) Clear() { l.impl().Clear() }

// Namespaced is a value of type V per key and namespace, where a namespace
// is an int64 shared by many keys: for event-time windows, the start of a
// window that every key has. It is the state of work that is done a
// namespace at a time rather than a key at a time: All visits every key's
// value in a namespace, and Drop forgets a whole namespace at once, which
// for windows replaces a timer and a deletion per key and window with a map
// walk and a few range deletions per window.
//
// In memory each live namespace has a cache of its own, so dropping one is
// O(1); in Pebble its entries are stored under
//
//	[key group][state id][namespace, sign bit flipped][key]
//
// so that a namespace is one key range per key group, which Drop deletes
// with range deletions in the next checkpoint.
//
// The state cache bound (see the package doc) covers the caches of all
// namespaces together, with those of the other states. A namespace whose
// values were all deleted stays listed by Namespaces until it is dropped,
// but a restore does not find it. With a TTL (see WithTTL), each key's
// value in each namespace has its own.
type Namespaced[K comparable, V any] statebackend.Namespaced[K, V]

// NewNamespaced registers a namespaced state called name on s (see NewValue
// for naming and options) and finds the namespaces Pebble holds for it.
func NewNamespaced[K comparable, V any](s *Scope[K], name string, codec Codec[V], opts ...Option) (*Namespaced[K, V], error) {
	n, err := statebackend.NewNamespaced(s.impl(), name, statebackend.Codec[V](codec), implOptions(opts)...)
	return (*Namespaced[K, V])(n), err
}

func (n *Namespaced[K, V]) impl() *statebackend.Namespaced[K, V] {
	return (*statebackend.Namespaced[K, V])(n)
}

// Get returns the current key's value in namespace ns and whether there is
// one. See Value.Get about values that refer to memory.
func (n *Namespaced[K, V]) Get(ns int64) (V, bool) { return n.impl().Get(ns) }

// Put sets the current key's value in namespace ns, creating the namespace
// if it has none.
func (n *Namespaced[K, V]) Put(ns int64, v V) { n.impl().Put(ns, v) }

// Update sets the current key's value in namespace ns to fn(value, whether
// there is one), creating the namespace if it has none, and returns it. It
// costs one lookup where Get then Put cost two, and fn may change the value
// in place (a checkpoint being written gets the old value first).
func (n *Namespaced[K, V]) Update(ns int64, fn func(v V, ok bool) V) V {
	return n.impl().Update(ns, fn)
}

// Delete removes the current key's value in namespace ns.
func (n *Namespaced[K, V]) Delete(ns int64) { n.impl().Delete(ns) }

// Namespaces iterates over the namespaces in ascending order. The state may
// change during the iteration: each step yields the smallest namespace
// greater than the previous one. (With a TTL, a namespace whose values all
// expired is listed until it is dropped.)
func (n *Namespaced[K, V]) Namespaces() iter.Seq[int64] { return n.impl().Namespaces() }

// All calls fn with every key's value in namespace ns, in unspecified
// order, with the key made current. fn must not change namespace ns. See
// Value.Get about values that refer to memory.
func (n *Namespaced[K, V]) All(ns int64, fn func(key K, v V)) { n.impl().All(ns, fn) }

// Drop removes namespace ns with every key's value in it.
func (n *Namespaced[K, V]) Drop(ns int64) { n.impl().Drop(ns) }

// SetPrefetch sets how many of the newest namespaces the runtime looks the
// keys of a group of records up in, before it processes them (default 1): the number of namespaces a record usually updates,
// such as the windows a record of in-order input belongs to. Looking up
// where records will not go costs more than it saves.
func (n *Namespaced[K, V]) SetPrefetch(newest int) { n.impl().SetPrefetch(newest) }
