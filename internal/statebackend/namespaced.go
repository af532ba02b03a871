package statebackend

import (
	"encoding/binary"
	"fmt"
	"iter"
	"maps"
	"slices"
)

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
// Config.CacheBytes bounds the caches of all namespaces together, with
// those of the other states. A namespace whose values were all deleted stays listed by Namespaces until
// it is dropped, but a restore does not find it. With a TTL (see WithTTL),
// each key's value in each namespace has its own.
type Namespaced[K comparable, V any] struct {
	*namespaced[K, V]
	// tn is the state with a TTL (see WithTTL); then namespaced is nil.
	tn    *ttlNamespaced[K, V]
	clone func(V) V // see cloner
}

// Get returns the current key's value in namespace ns and whether there is
// one. See Value.Get about values that refer to memory.
func (n *Namespaced[K, V]) Get(ns int64) (V, bool) {
	var v V
	var ok bool
	if n.tn != nil {
		v, ok = n.tn.get(ns)
	} else {
		v, ok = n.get(ns)
	}
	if n.clone != nil && ok {
		v = n.clone(v)
	}
	return v, ok
}

// Put sets the current key's value in namespace ns, creating the namespace
// if it has none.
func (n *Namespaced[K, V]) Put(ns int64, v V) {
	if n.tn != nil {
		n.tn.put(ns, v)
		return
	}
	n.put(ns, v)
}

// Update sets the current key's value in namespace ns to fn(value, whether
// there is one), creating the namespace if it has none, and returns it. It
// costs one lookup where Get then Put cost two, and fn may change the value
// in place (a checkpoint being written gets the old value first).
func (n *Namespaced[K, V]) Update(ns int64, fn func(v V, ok bool) V) V {
	if n.tn != nil {
		return n.tn.update(ns, fn)
	}
	return n.update(ns, fn)
}

// Delete removes the current key's value in namespace ns.
func (n *Namespaced[K, V]) Delete(ns int64) {
	if n.tn != nil {
		n.tn.n.del(ns)
		return
	}
	n.del(ns)
}

// Namespaces iterates over the namespaces in ascending order. The state may
// change during the iteration: each step yields the smallest namespace
// greater than the previous one. (With a TTL, a namespace whose values all
// expired is listed until it is dropped.)
func (n *Namespaced[K, V]) Namespaces() iter.Seq[int64] {
	if n.tn != nil {
		return n.tn.n.namespaces()
	}
	return n.namespaces()
}

// All calls fn with every key's value in namespace ns, in unspecified
// order, with the key made current. fn must not change namespace ns. See
// Value.Get about values that refer to memory.
func (n *Namespaced[K, V]) All(ns int64, fn func(key K, v V)) {
	if n.clone != nil {
		inner := fn
		fn = func(k K, v V) { inner(k, n.clone(v)) }
	}
	if n.tn != nil {
		n.tn.all(ns, fn)
		return
	}
	n.all(ns, fn)
}

// Drop removes namespace ns with every key's value in it.
func (n *Namespaced[K, V]) Drop(ns int64) {
	if n.tn != nil {
		n.tn.n.drop(ns)
		return
	}
	n.drop(ns)
}

// SetPrefetch sets how many of the newest namespaces Scope.Prefetch looks
// keys up in (default 1): the number of namespaces a record usually updates,
// such as the windows a record of in-order input belongs to. Looking up
// where records will not go costs more than it saves.
func (n *Namespaced[K, V]) SetPrefetch(newest int) {
	if n.tn != nil {
		n.tn.n.setPrefetch(newest)
		return
	}
	n.setPrefetch(newest)
}

// namespaced is a Namespaced without TTL, or the values with their
// timestamps of one with a TTL.
type namespaced[K comparable, V any] struct {
	scope *Scope[K]
	b     *Backend
	id    uint32
	vals  Codec[V]
	// live holds the namespaces, ascending. There are few (a window
	// operator has size/slide of them, plus those kept for lateness), so a
	// linear scan finds one faster than a map.
	live []namespace[K, V]
	// dropped lists the namespaces of the current epoch's Drops whose
	// entries Pebble may hold: the next Freeze deletes their ranges.
	dropped []int64
	keyBuf  []byte
	// prefetchNewest is how many of the newest namespaces Prefetch reads.
	prefetchNewest int
	// spare is the emptied cache of the last namespace dropped, for the
	// next one created: namespaces come and go (a window a key), and a
	// large table is much cheaper to clear than to grow again.
	spare hashTable[K, V]
}

type namespace[K comparable, V any] struct {
	ns int64
	t  *table[K, V]
	// stored means Pebble may hold entries of ns: it was found at Open, or
	// its table went through a Freeze.
	stored bool
}

// NewNamespaced registers a namespaced state called name on s (see NewValue
// for naming and options) and finds the namespaces Pebble holds for it.
func NewNamespaced[K comparable, V any](s *Scope[K], name string, codec Codec[V], opts ...Option) (*Namespaced[K, V], error) {
	o, err := handleOptions(name, codec, opts)
	if err != nil {
		return nil, err
	}
	if o.ttl != nil {
		tn, err := newTTLNamespaced(s, name, codec, o.ttl)
		return &Namespaced[K, V]{tn: tn, clone: cloner[V]()}, err
	}
	n, err := newNamespaced(s, name, kindNamespaced, codec)
	return &Namespaced[K, V]{namespaced: n, clone: cloner[V]()}, err
}

func newNamespaced[K comparable, V any](s *Scope[K], name string, kind stateKind, codec Codec[V]) (*namespaced[K, V], error) {
	n := &namespaced[K, V]{scope: s, b: s.backend, vals: codec, prefetchNewest: 1}
	id, err := s.backend.register(name, kind, n)
	if err != nil {
		return nil, err
	}
	n.id = id
	s.tables = append(s.tables, n)
	if err := n.load(); err != nil {
		return nil, fmt.Errorf("state: namespaced %q: %w", name, err)
	}
	return n, nil
}

// load creates a table for each namespace Pebble holds, found by seeking
// from namespace to namespace in each key group, and loads its entries if
// they fit the cache (else they are read on demand).
func (n *namespaced[K, V]) load() error {
	if n.b.complete {
		return nil // nothing stored
	}
	found := map[int64]bool{}
	it, err := n.b.db.NewIter(nil) // one for all key groups: see allStored
	if err != nil {
		return err
	}
	for kg := 0; kg < n.b.maxParallelism; kg++ {
		prefix := n.prefix(nil, kg)
		it.SetBounds(prefix, prefixEnd(prefix))
		for valid := it.First(); valid; {
			k := it.Key()
			if len(k) < len(prefix)+8 {
				it.Close()
				return fmt.Errorf("%w: key %x has no namespace", ErrCorruptValue, k)
			}
			ns := int64(binary.BigEndian.Uint64(k[len(prefix):]) ^ (1 << 63))
			found[ns] = true
			valid = it.SeekGE(prefixEnd(k[:len(prefix)+8]))
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, ns := range slices.Sorted(maps.Keys(found)) {
		t := n.newTable(ns, false)
		err := t.warm(func(add func(K, V) error) error { return n.allStored(t, add) })
		if err != nil {
			return err
		}
		n.live = append(n.live, namespace[K, V]{ns: ns, t: t, stored: true})
	}
	return nil
}

func (n *namespaced[K, V]) newTable(ns int64, complete bool) *table[K, V] {
	t := makeTable(n.scope, n.vals)
	if n.spare.slots != nil {
		t.m, n.spare = n.spare, hashTable[K, V]{}
	}
	t.id, t.ns, t.namespaced, t.complete = n.id, ns, true, complete
	return t
}

// prefix appends [key group][state id] to dst.
func (n *namespaced[K, V]) prefix(dst []byte, kg int) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(kg))
	return binary.BigEndian.AppendUint32(dst, n.id)
}

// appendNamespace appends ns with its sign bit flipped, so that byte order
// is numeric order.
func appendNamespace(dst []byte, ns int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(ns)^(1<<63))
}

// prefixEnd returns the smallest key greater than every key that starts
// with prefix, or nil if there is none (prefix is all 0xff).
func prefixEnd(prefix []byte) []byte {
	end := slices.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i]++; end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// find returns the index of ns in live, or -1.
func (n *namespaced[K, V]) find(ns int64) int {
	for i := len(n.live) - 1; i >= 0; i-- { // new namespaces are hit most
		if n.live[i].ns == ns {
			return i
		}
	}
	return -1
}

func (n *namespaced[K, V]) get(ns int64) (V, bool) {
	if i := n.find(ns); i >= 0 {
		return n.live[i].t.get(n.scope.key)
	}
	var zero V
	return zero, false
}

func (n *namespaced[K, V]) put(ns int64, v V) {
	i := n.find(ns)
	if i < 0 {
		i = n.add(ns)
	}
	n.live[i].t.put(n.scope.key, v)
}

func (n *namespaced[K, V]) update(ns int64, fn func(v V, ok bool) V) V {
	i := n.find(ns)
	if i < 0 {
		i = n.add(ns)
	}
	return n.live[i].t.update(n.scope.key, fn)
}

func (n *namespaced[K, V]) del(ns int64) {
	if i := n.find(ns); i >= 0 {
		n.live[i].t.delete(n.scope.key)
	}
}

// add creates namespace ns and returns its index in live.
func (n *namespaced[K, V]) add(ns int64) int {
	i, _ := slices.BinarySearchFunc(n.live, ns, func(l namespace[K, V], ns int64) int {
		switch {
		case l.ns < ns:
			return -1
		case l.ns > ns:
			return 1
		}
		return 0
	})
	// NB: Pebble holds nothing of ns that counts: a namespace it held was
	// found at Open and is live, or was dropped, and its range deletion
	// reaches Pebble before any entry of the new table can be evicted
	// (which would make the table read Pebble again).
	n.live = slices.Insert(n.live, i, namespace[K, V]{ns: ns, t: n.newTable(ns, true)})
	return i
}

func (n *namespaced[K, V]) namespaces() iter.Seq[int64] {
	return func(yield func(int64) bool) {
		for i := 0; i < len(n.live); {
			ns := n.live[i].ns
			if !yield(ns) {
				return
			}
			for i = 0; i < len(n.live) && n.live[i].ns <= ns; i++ {
			}
		}
	}
}

func (n *namespaced[K, V]) all(ns int64, fn func(key K, v V)) {
	i := n.find(ns)
	if i < 0 {
		return
	}
	t := n.live[i].t
	if !n.b.complete && !t.complete {
		err := n.allStored(t, func(k K, v V) error {
			n.scope.key = k
			fn(k, v)
			return nil
		})
		if err != nil {
			n.b.fail(fmt.Errorf("state: read %q: %w", n.b.names[n.id], err))
			return
		}
	}
	for _, s := range t.m.slots {
		if s.e.mark&occupied != 0 && !s.e.deleted() {
			n.scope.key = s.k
			fn(s.k, s.e.val)
		}
	}
}

// allStored calls fn with the entries of t that Pebble holds and the cache
// does not (the cache is newer, tombstones included), until fn fails.
//
// One iterator serves every key group, its bounds set to one after the
// other: an iterator each opened every table of L0 for every key group
// (128 by default), at each watermark that fires windows not cached whole.
// (Under the race detector, which records a stack trace at each opening,
// that made a restarted window job of a 1 KiB cache take minutes, 5 ms
// checkpoints piling tables up in L0 meanwhile.) The iterator is not the
// one of Backend.get: fn may read the state, which moves that one.
func (n *namespaced[K, V]) allStored(t *table[K, V], fn func(key K, v V) error) (err error) {
	it, err := n.b.db.NewIter(nil)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := it.Close(); err == nil {
			err = cerr
		}
	}()
	for kg := 0; kg < n.b.maxParallelism; kg++ {
		// NB: new bounds each time: Pebble keeps them until the next
		// SetBounds, which compares the old ones with the new.
		lower := appendNamespace(n.prefix(nil, kg), t.ns)
		it.SetBounds(lower, prefixEnd(lower))
		skip := len(lower)
		for it.First(); it.Valid(); it.Next() {
			k, err := n.scope.keys.Decode(it.Key()[skip:])
			if err != nil {
				return err
			}
			if t.m.find(k) >= 0 {
				continue
			}
			raw, err := it.ValueAndErr()
			if err != nil {
				return err
			}
			v, err := n.vals.Decode(raw)
			if err != nil {
				return err
			}
			if err := fn(k, v); err != nil {
				return err
			}
		}
		if err := it.Error(); err != nil {
			return err
		}
	}
	return nil
}

func (n *namespaced[K, V]) drop(ns int64) {
	i := n.find(ns)
	if i < 0 {
		return
	}
	l := n.live[i]
	if n.b.frozenEpoch != 0 {
		// The checkpoint being written still needs the namespace as it
		// was at the barrier: encode what is left of it first.
		l.t.drainSome(int(^uint(0) >> 1))
	}
	n.live = slices.Delete(n.live, i, i+1)
	l.t.m.reset()
	n.spare = l.t.m
	if l.stored {
		n.dropped = append(n.dropped, ns)
	}
}

// warmSome implements tableOps: a namespace's table is loaded whole when
// it is first used.
func (n *namespaced[K, V]) warmSome(int) (int, bool) { return 0, true }

// cachedAll reports whether every namespace is cached whole: restored ones
// that fitted the cache at Open, and those created since, until they evict.
func (n *namespaced[K, V]) cachedAll() bool {
	for _, l := range n.live {
		if !l.t.complete {
			return false
		}
	}
	return true
}

func (n *namespaced[K, V]) setPrefetch(newest int) { n.prefetchNewest = max(newest, 0) }

func (n *namespaced[K, V]) prefetch(keys []K, hashes []uint64) {
	for i := max(len(n.live)-n.prefetchNewest, 0); i < len(n.live); i++ {
		n.live[i].t.prefetch(keys, hashes)
	}
}

// freeze freezes every namespace and turns the epoch's Drops into range
// deletions in its delta (Backend.Freeze has installed the frozen epoch's
// delta): one per key group, as the key group leads the Pebble key.
func (n *namespaced[K, V]) freeze() {
	for i := range n.live {
		n.live[i].t.freeze()
		n.live[i].stored = true
	}
	for _, ns := range n.dropped {
		for kg := 0; kg < n.b.maxParallelism; kg++ {
			n.keyBuf = appendNamespace(n.prefix(n.keyBuf[:0], kg), ns)
			n.b.delta.deleteRange(n.keyBuf, prefixEnd(n.keyBuf))
		}
	}
	n.dropped = n.dropped[:0]
}

func (n *namespaced[K, V]) applied(epoch uint32) {
	for _, l := range n.live {
		l.t.applied(epoch)
	}
}

func (n *namespaced[K, V]) drainSome(budget int) (used int, done bool) {
	done = true
	for _, l := range n.live {
		// NB: with the budget spent, drainSome(0) still reports whether a
		// table is done.
		u, d := l.t.drainSome(budget - used)
		used += u
		done = done && d
	}
	return used, done
}

func (n *namespaced[K, V]) changed() int {
	sum := 0
	for _, l := range n.live {
		sum += l.t.changed()
	}
	return sum
}

func (n *namespaced[K, V]) entries() int {
	sum := 0
	for _, l := range n.live {
		sum += l.t.entries()
	}
	return sum
}

func (n *namespaced[K, V]) evict(bytes int64) (freed int64) {
	for _, l := range n.live {
		if freed += l.t.evict(bytes - freed); freed >= bytes {
			break
		}
	}
	return freed
}
