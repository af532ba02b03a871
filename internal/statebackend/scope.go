package statebackend

import (
	"fmt"
	"iter"
	"maps"

	"github.com/weirstream/weir/internal/keygroup"
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
	tables   []interface {
		prefetch(keys []K, hashes []uint64)
	}
	// hashed and hashedKey memoize hash for the key hashed last (see
	// keyHash).
	hashed    uint64
	hashedKey K
	hasHashed bool
	// preKeys and preHashes are the keys of the last Prefetch and their
	// hashes, which SetKey takes in order from preAt on (see Prefetch).
	preKeys   []K
	preHashes []uint64
	preAt     int
}

// keyHash returns hash(k), computed once for a run of calls with the same
// key: a record's state accesses (a Get, then a Put that looks the key up
// again and, at the checkpoint, its key group) all hash its key, and a key
// of a struct or string type is hashed through its encoding (keepLast over
// a two-integer key: four hashes a record, 25 ns each).
func (s *Scope[K]) keyHash(k K) uint64 {
	if !s.hasHashed || k != s.hashedKey {
		s.hashed, s.hashedKey, s.hasHashed = s.hash(k), k, true
	}
	return s.hashed
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
	return &Scope[K]{backend: b, keys: keys, hash: keygroup.Hasher(keys)}, nil
}

// SetKey makes k the current key.
func (s *Scope[K]) SetKey(k K) {
	s.key = k
	if s.preAt < len(s.preHashes) && s.preKeys[s.preAt] == k {
		s.hashed, s.hashedKey, s.hasHashed = s.preHashes[s.preAt], k, true
		s.preAt++
	}
}

// Key returns the current key.
func (s *Scope[K]) Key() K { return s.key }

// Prefetch reads the cache slots of keys in every state of the scope without
// using what it reads. Called for a group of keys before they are processed,
// it lets the CPU overlap the cache misses of the lookups, which a tight loop
// of independent loads allows and record-by-record processing does not.
//
// The keys' hashes, which place them in the cache, are kept: when SetKey
// then sets the same keys in the same order, as the runtime does, the
// lookups under each key do not hash it again. (Nexmark q18, a two-integer
// key hashed through its encoding: the touch and the record's Get each
// hashed every key.)
func (s *Scope[K]) Prefetch(keys []K) {
	if len(s.tables) == 0 {
		return
	}
	s.preKeys = append(s.preKeys[:0], keys...)
	s.preHashes = s.preHashes[:0]
	for _, k := range keys {
		s.preHashes = append(s.preHashes, s.hash(k))
	}
	s.preAt = 0
	for _, t := range s.tables {
		t.prefetch(keys, s.preHashes)
	}
}

// Value is a single value of type T per key.
type Value[K comparable, T any] struct {
	t *table[K, T]
	// tv is the value with a TTL (see WithTTL); then t is nil.
	tv    *ttlValue[K, T]
	clone func(T) T // see cloner
}

// NewValue registers a value state called name. Names must be unique within
// an operator and stable across restarts: they are how the state is found.
// Options (WithTTL) apply to this state only.
func NewValue[K comparable, T any](s *Scope[K], name string, codec Codec[T], opts ...Option) (*Value[K, T], error) {
	o, err := handleOptions(name, codec, opts)
	if err != nil {
		return nil, err
	}
	if o.ttl != nil {
		tv, err := newTTLValue(s, name, codec, o.ttl)
		return &Value[K, T]{tv: tv, clone: cloner[T]()}, err
	}
	t, err := newTable(s, name, kindValue, codec)
	if err != nil {
		return nil, err
	}
	return &Value[K, T]{t: t, clone: cloner[T]()}, nil
}

// Get returns the value for the current key and whether there is one.
//
// A value of type []byte is a copy, which the caller may keep and change.
// NB: any other value that refers to memory (a slice, a map, a pointer) is
// the cached value itself: it must not be changed (change it with Update,
// which lets fn change it in place, or Put a new one), or the change may
// miss checkpoints, or reach one taken before it.
func (v *Value[K, T]) Get() (T, bool) {
	var val T
	var ok bool
	if v.tv != nil {
		val, ok = v.tv.get()
	} else {
		val, ok = v.t.get(v.t.scope.key)
	}
	if v.clone != nil && ok {
		val = v.clone(val)
	}
	return val, ok
}

// Put sets the value for the current key.
func (v *Value[K, T]) Put(val T) {
	if v.tv != nil {
		v.tv.put(val)
		return
	}
	v.t.put(v.t.scope.key, val)
}

// Update sets the value for the current key to fn(value, whether there is
// one) and returns it. It costs one lookup where Get then Put cost two, and
// fn may change a value that refers to memory in place (a checkpoint being
// written gets the old value first). What Update returns is the cached
// value itself, even a []byte.
func (v *Value[K, T]) Update(fn func(val T, ok bool) T) T {
	if v.tv != nil {
		return v.tv.update(fn)
	}
	return v.t.update(v.t.scope.key, fn)
}

// Delete removes the value for the current key.
func (v *Value[K, T]) Delete() {
	if v.tv != nil {
		v.tv.t.delete(v.tv.t.scope.key)
		return
	}
	v.t.delete(v.t.scope.key)
}

// EachChanged calls f with each key whose value was set since the last
// barrier and still has one, and that value. It is for operators that emit
// their state's changes once per checkpoint, at the barrier
// (operators.KeepLastAtCheckpoints): the table knows the keys its next
// snapshot writes, so that costs nothing per record. f must not change the
// state. A value with a TTL keeps no such list: EachChanged panics.
//
// The order is the table's, not the order of the changes: when many keys
// changed, a walk over every slot in memory order is cheaper than a lookup
// per changed key, which misses the CPU cache (q18's 586,000 changed keys:
// 0.29 s of CPU by lookups, about 0.01 s by the walk). The walk is also
// taken when a key set in the interval was deleted (see deleteAt): set
// again, it is listed twice.
func (v *Value[K, T]) EachChanged(f func(K, T)) {
	if v.tv != nil {
		panic("statebackend: EachChanged of a value with a TTL")
	}
	t := v.t
	if len(t.dirty) > t.m.len()/4 || t.vanished > 0 {
		for i := range t.m.slots {
			if s := &t.m.slots[i]; t.m.used(i) {
				v.changed(s.k, &s.e, f)
			}
		}
		return
	}
	for _, k := range t.dirty {
		if i := t.m.find(k); i >= 0 { // else set and deleted since the barrier (see deleteAt)
			v.changed(k, &t.m.slots[i].e, f)
		}
	}
}

// changed calls f with k and e's value if e was set in the current epoch.
func (v *Value[K, T]) changed(k K, e *entry[T], f func(K, T)) {
	if e.epoch != v.t.b.epoch || e.deleted() {
		return
	}
	val := e.val
	if v.clone != nil {
		val = v.clone(val)
	}
	f(k, val)
}

// Map is a map from UK to V per key. The entries of one key are cached and
// stored together, which suits maps of up to a few thousand entries per key.
// With a TTL (see WithTTL), each entry has its own.
type Map[K comparable, UK comparable, V any] struct {
	t *table[K, map[UK]V]
	// tm is the map with a TTL; then t is nil.
	tm    *ttlMap[K, UK, V]
	clone func(V) V // see cloner
}

// NewMap registers a map state called name; see NewValue for naming and
// options.
func NewMap[K comparable, UK comparable, V any](s *Scope[K], name string, keys Codec[UK], values Codec[V], opts ...Option) (*Map[K, UK, V], error) {
	if keys == nil || values == nil {
		return nil, fmt.Errorf("state: map %q: nil codec", name)
	}
	o, err := handleOptions(name, values, opts)
	if err != nil {
		return nil, err
	}
	if o.ttl != nil {
		tm, err := newTTLMap(s, name, keys, values, o.ttl)
		return &Map[K, UK, V]{tm: tm, clone: cloner[V]()}, err
	}
	t, err := newTable(s, name, kindMap, Codec[map[UK]V](mapCodec[UK, V]{keys: keys, values: values}))
	if err != nil {
		return nil, err
	}
	return &Map[K, UK, V]{t: t, clone: cloner[V]()}, nil
}

// Get returns the entry uk of the current key's map. See Value.Get about
// values that refer to memory: a []byte is a copy, any other is the cached
// value, which must not be changed.
func (m *Map[K, UK, V]) Get(uk UK) (V, bool) {
	var v V
	var ok bool
	if m.tm != nil {
		v, ok = m.tm.get(uk)
	} else {
		mm, _ := m.t.get(m.t.scope.key)
		v, ok = mm[uk]
	}
	if m.clone != nil && ok {
		v = m.clone(v)
	}
	return v, ok
}

// Put sets the entry uk of the current key's map.
func (m *Map[K, UK, V]) Put(uk UK, v V) {
	if m.tm != nil {
		m.tm.put(uk, v)
		return
	}
	mutableMap(m.t)[uk] = v
}

// Delete removes the entry uk of the current key's map.
func (m *Map[K, UK, V]) Delete(uk UK) {
	if m.tm != nil {
		deleteFromMap(m.tm.t, uk)
		return
	}
	deleteFromMap(m.t, uk)
}

// Len returns the number of entries of the current key's map.
func (m *Map[K, UK, V]) Len() int {
	if m.tm != nil {
		return len(m.tm.live())
	}
	mm, _ := m.t.get(m.t.scope.key)
	return len(mm)
}

// All iterates over the current key's map in unspecified order. The map must
// not be changed during the iteration. See Get about values that refer to
// memory.
func (m *Map[K, UK, V]) All() iter.Seq2[UK, V] {
	var seq iter.Seq2[UK, V]
	if m.tm != nil {
		seq = m.tm.all()
	} else {
		mm, _ := m.t.get(m.t.scope.key)
		seq = maps.All(mm)
	}
	if m.clone == nil {
		return seq
	}
	return func(yield func(UK, V) bool) {
		for uk, v := range seq {
			if !yield(uk, m.clone(v)) {
				return
			}
		}
	}
}

// Clear removes the current key's map.
func (m *Map[K, UK, V]) Clear() {
	if m.tm != nil {
		m.tm.t.delete(m.tm.t.scope.key)
		return
	}
	m.t.delete(m.t.scope.key)
}
