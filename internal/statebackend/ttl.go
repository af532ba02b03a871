package statebackend

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"iter"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// TTLUpdate says which accesses restart the time to live of a value with a
// TTL (see WithTTL).
type TTLUpdate uint8

const (
	// OnCreateAndWrite restarts it when the value is written (Flink's
	// UpdateType.OnCreateAndWrite).
	OnCreateAndWrite TTLUpdate = iota + 1
	// OnReadAndWrite restarts it when the value is read or written (Flink's
	// UpdateType.OnReadAndWrite). A read then writes the value's new
	// timestamp, which the next checkpoint stores.
	OnReadAndWrite
)

func (u TTLUpdate) String() string {
	switch u {
	case OnCreateAndWrite:
		return "OnCreateAndWrite"
	case OnReadAndWrite:
		return "OnReadAndWrite"
	}
	return fmt.Sprintf("TTLUpdate(%d)", uint8(u))
}

// WithTTL gives every value of a state a time to live, with Flink's
// semantics: each value (each entry of a Map, each element of a List)
// carries the processing time (the wall clock, Config.Now) of its last
// update as update defines it, and expires ttl after it. An expired value
// is never returned: reads see it absent. Expired values are removed from
// memory and from Pebble by a cleanup that runs with each checkpoint with
// bounded work (see Backend.Drain), and by reads that meet them.
//
// A value with a TTL is stored with its 8-byte timestamp; states without
// one store none and pay nothing. The timestamps are checkpointed with the
// values, so a TTL measures wall-clock time across restarts: a job
// restored from a checkpoint taken an hour ago finds every value with a TTL
// under an hour expired. Adding or removing a TTL changes how a state is
// stored: it needs a new state name (registering a restored state with a
// TTL it was not stored with, or without one it was, fails with
// ErrKindChanged).
func WithTTL(ttl time.Duration, update TTLUpdate) Option {
	return func(o *options) { o.ttl = &ttlPolicy{ttl: ttl, update: update} }
}

// ttlPolicy is the TTL of one state handle.
type ttlPolicy struct {
	ttl    time.Duration
	update TTLUpdate
	ms     int64        // ttl in milliseconds
	now    func() int64 // processing time in Unix milliseconds
}

func (p *ttlPolicy) validate() error {
	switch {
	case p.ttl < time.Millisecond:
		return fmt.Errorf("TTL %v is below the 1ms resolution of processing time: give a TTL of at least 1ms", p.ttl)
	case p.update != OnCreateAndWrite && p.update != OnReadAndWrite:
		return fmt.Errorf("TTL update %v: use state.OnCreateAndWrite or state.OnReadAndWrite", p.update)
	}
	p.ms = p.ttl.Milliseconds()
	return nil
}

// bind makes p read the clock of b.
func (p *ttlPolicy) bind(b *Backend) *ttlPolicy {
	now := b.cfg.Now
	p.now = func() int64 { return now().UnixMilli() }
	return p
}

func (p *ttlPolicy) expired(at, now int64) bool { return now-at >= p.ms }

func (p *ttlPolicy) onRead() bool { return p.update == OnReadAndWrite }

// stamped is a value with the processing time its time to live counts from.
type stamped[T any] struct {
	v  T
	at int64 // Unix milliseconds
}

// stampedCodec stores a stamped value as its time (8 bytes, big-endian)
// followed by the value.
type stampedCodec[T any] struct{ vals Codec[T] }

func (c stampedCodec[T]) Append(dst []byte, s stamped[T]) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.at))
	return c.vals.Append(dst, s.v)
}

func (c stampedCodec[T]) Decode(src []byte) (stamped[T], error) {
	if len(src) < 8 {
		return stamped[T]{}, fmt.Errorf("%w: value with TTL of %d bytes has no timestamp", ErrCorruptValue, len(src))
	}
	v, err := c.vals.Decode(src[8:])
	return stamped[T]{v: v, at: int64(binary.BigEndian.Uint64(src))}, err
}

// ttlValue is a Value with a TTL.
type ttlValue[K comparable, T any] struct {
	t *table[K, stamped[T]]
	p *ttlPolicy
}

func newTTLValue[K comparable, T any](s *Scope[K], name string, codec Codec[T], p *ttlPolicy) (*ttlValue[K, T], error) {
	t, err := newTable(s, name, kindValue|kindTTL, Codec[stamped[T]](stampedCodec[T]{codec}))
	if err != nil {
		return nil, err
	}
	v := &ttlValue[K, T]{t: t, p: p.bind(s.backend)}
	s.backend.cleaners = append(s.backend.cleaners, &ttlCleaner[K, stamped[T]]{
		b: s.backend, id: t.id, p: v.p,
		tables: func() []*table[K, stamped[T]] { return []*table[K, stamped[T]]{t} },
		stored: tableKey(t),
		trim: func(s stamped[T], now int64) (stamped[T], bool, bool) {
			return s, !v.p.expired(s.at, now), false
		},
	})
	return v, nil
}

// NB: ttlMap.get and ttlNamespaced.get repeat this read on purpose: one
// function for the three, taking the delete and the write-back as
// closures, cost 33 more instructions a Get with OnCreateAndWrite and 50
// with OnReadAndWrite, about 10% of the Get (BenchmarkTTLGet under
// cachegrind).
func (v *ttlValue[K, T]) get() (T, bool) {
	var zero T
	k := v.t.scope.key
	s, ok := v.t.get(k)
	if !ok {
		return zero, false
	}
	now := v.p.now()
	if v.p.expired(s.at, now) {
		v.t.delete(k)
		return zero, false
	}
	if v.p.onRead() && s.at != now {
		v.t.put(k, stamped[T]{v: s.v, at: now})
	}
	return s.v, true
}

func (v *ttlValue[K, T]) put(val T) { v.t.put(v.t.scope.key, stamped[T]{v: val, at: v.p.now()}) }

func (v *ttlValue[K, T]) update(fn func(val T, ok bool) T) T {
	now := v.p.now()
	s := v.t.update(v.t.scope.key, func(s stamped[T], ok bool) stamped[T] {
		if ok && v.p.expired(s.at, now) {
			s, ok = stamped[T]{}, false
		}
		return stamped[T]{v: fn(s.v, ok), at: now}
	})
	return s.v
}

// ttlMap is a Map with a TTL per entry.
type ttlMap[K comparable, UK comparable, V any] struct {
	t *table[K, map[UK]stamped[V]]
	p *ttlPolicy
}

func newTTLMap[K comparable, UK comparable, V any](s *Scope[K], name string, keys Codec[UK], values Codec[V], p *ttlPolicy) (*ttlMap[K, UK, V], error) {
	codec := mapCodec[UK, stamped[V]]{keys: keys, values: stampedCodec[V]{values}}
	t, err := newTable(s, name, kindMap|kindTTL, Codec[map[UK]stamped[V]](codec))
	if err != nil {
		return nil, err
	}
	m := &ttlMap[K, UK, V]{t: t, p: p.bind(s.backend)}
	s.backend.cleaners = append(s.backend.cleaners, &ttlCleaner[K, map[UK]stamped[V]]{
		b: s.backend, id: t.id, p: m.p,
		tables: func() []*table[K, map[UK]stamped[V]] { return []*table[K, map[UK]stamped[V]]{t} },
		stored: tableKey(t),
		trim:   m.trim,
	})
	return m, nil
}

// trim returns mm without its expired entries (a new map if any expired),
// whether any are left and whether any expired.
func (m *ttlMap[K, UK, V]) trim(mm map[UK]stamped[V], now int64) (map[UK]stamped[V], bool, bool) {
	live := 0
	for _, s := range mm {
		if !m.p.expired(s.at, now) {
			live++
		}
	}
	if live == len(mm) {
		return mm, live > 0, false
	}
	kept := make(map[UK]stamped[V], live)
	for uk, s := range mm {
		if !m.p.expired(s.at, now) {
			kept[uk] = s
		}
	}
	return kept, live > 0, true
}

func (m *ttlMap[K, UK, V]) get(uk UK) (V, bool) {
	var zero V
	mm, _ := m.t.get(m.t.scope.key)
	s, ok := mm[uk]
	if !ok {
		return zero, false
	}
	now := m.p.now()
	if m.p.expired(s.at, now) {
		deleteFromMap(m.t, uk)
		return zero, false
	}
	if m.p.onRead() && s.at != now {
		mutableMap(m.t)[uk] = stamped[V]{v: s.v, at: now}
	}
	return s.v, true
}

func (m *ttlMap[K, UK, V]) put(uk UK, v V) {
	mutableMap(m.t)[uk] = stamped[V]{v: v, at: m.p.now()}
}

// live returns the current key's map without expired entries (after
// restarting their TTL if reads do), and the time it was read.
func (m *ttlMap[K, UK, V]) live() map[UK]stamped[V] {
	mm, ok := m.t.get(m.t.scope.key)
	if !ok {
		return nil
	}
	now := m.p.now()
	kept, left, trimmed := m.trim(mm, now)
	switch {
	case !left:
		m.t.delete(m.t.scope.key)
		return nil
	case trimmed:
		m.t.put(m.t.scope.key, kept)
	}
	if m.p.onRead() && m.stale(kept, now) {
		kept = mutableMap(m.t)
		for uk, s := range kept {
			kept[uk] = stamped[V]{v: s.v, at: now}
		}
	}
	return kept
}

// stale reports whether a read at now must restart the TTL of an entry of
// mm.
func (m *ttlMap[K, UK, V]) stale(mm map[UK]stamped[V], now int64) bool {
	for _, s := range mm {
		if s.at != now {
			return true
		}
	}
	return false
}

func (m *ttlMap[K, UK, V]) all() iter.Seq2[UK, V] {
	mm := m.live()
	return func(yield func(UK, V) bool) {
		for uk, s := range mm {
			if !yield(uk, s.v) {
				return
			}
		}
	}
}

// ttlList is a List with a TTL per element.
type ttlList[K comparable, T any] struct {
	t     *table[K, listVal[stamped[T]]]
	p     *ttlPolicy
	clone func(T) T
}

func newTTLList[K comparable, T any](s *Scope[K], name string, codec Codec[T], p *ttlPolicy) (*ttlList[K, T], error) {
	t, err := newTable(s, name, kindList|kindTTL, Codec[listVal[stamped[T]]](listCodec[stamped[T]]{elems: stampedCodec[T]{codec}}))
	if err != nil {
		return nil, err
	}
	l := &ttlList[K, T]{t: t, p: p.bind(s.backend), clone: cloner[T]()}
	s.backend.cleaners = append(s.backend.cleaners, &ttlCleaner[K, listVal[stamped[T]]]{
		b: s.backend, id: t.id, p: l.p,
		tables: func() []*table[K, listVal[stamped[T]]] { return []*table[K, listVal[stamped[T]]]{t} },
		stored: tableKey(t),
		trim:   l.trim,
	})
	return l, nil
}

// trim returns lv without its expired elements (written whole by the next
// checkpoint, if any expired), whether any are left and whether any
// expired.
func (l *ttlList[K, T]) trim(lv listVal[stamped[T]], now int64) (listVal[stamped[T]], bool, bool) {
	live := 0
	for _, s := range lv.elems {
		if !l.p.expired(s.at, now) {
			live++
		}
	}
	if live == len(lv.elems) {
		return lv, live > 0, false
	}
	kept := make([]stamped[T], 0, live)
	for _, s := range lv.elems {
		if !l.p.expired(s.at, now) {
			kept = append(kept, s)
		}
	}
	return listVal[stamped[T]]{elems: kept, from: -1, epoch: l.t.b.epoch}, live > 0, true
}

func (l *ttlList[K, T]) add(vs ...T) {
	now := l.p.now()
	elems := make([]stamped[T], len(vs))
	for i, v := range vs {
		elems[i] = stamped[T]{v: v, at: now}
	}
	appendList(l.t, elems...)
}

// live returns the current key's list without expired elements, after
// restarting their TTL if reads do.
func (l *ttlList[K, T]) live() []stamped[T] {
	k := l.t.scope.key
	lv, ok := l.t.get(k)
	if !ok {
		return nil
	}
	now := l.p.now()
	kept, left, trimmed := l.trim(lv, now)
	if !left {
		l.t.delete(k)
		return nil
	}
	if l.p.onRead() {
		fresh := make([]stamped[T], len(kept.elems))
		for i, s := range kept.elems {
			fresh[i] = stamped[T]{v: s.v, at: now}
		}
		replaceList(l.t, fresh)
		return fresh
	}
	if trimmed {
		l.t.put(k, kept)
	}
	return kept.elems
}

func (l *ttlList[K, T]) all() iter.Seq[T] {
	elems := l.live()
	return func(yield func(T) bool) {
		for _, s := range elems {
			v := s.v
			if l.clone != nil {
				v = l.clone(v)
			}
			if !yield(v) {
				return
			}
		}
	}
}

func (l *ttlList[K, T]) len() int { return len(l.live()) }

func (l *ttlList[K, T]) update(vs []T) {
	now := l.p.now()
	elems := make([]stamped[T], len(vs))
	for i, v := range vs {
		elems[i] = stamped[T]{v: v, at: now}
	}
	replaceList(l.t, elems)
}

// ttlNamespaced is a Namespaced with a TTL per key and namespace.
type ttlNamespaced[K comparable, V any] struct {
	n *namespaced[K, stamped[V]]
	p *ttlPolicy
}

func newTTLNamespaced[K comparable, V any](s *Scope[K], name string, codec Codec[V], p *ttlPolicy) (*ttlNamespaced[K, V], error) {
	n, err := newNamespaced(s, name, kindNamespaced|kindTTL, Codec[stamped[V]](stampedCodec[V]{codec}))
	if err != nil {
		return nil, err
	}
	tn := &ttlNamespaced[K, V]{n: n, p: p.bind(s.backend)}
	var tabs []*table[K, stamped[V]]
	s.backend.cleaners = append(s.backend.cleaners, &ttlCleaner[K, stamped[V]]{
		b: s.backend, id: n.id, p: tn.p,
		tables: func() []*table[K, stamped[V]] {
			tabs = tabs[:0]
			for _, l := range n.live {
				tabs = append(tabs, l.t)
			}
			return tabs
		},
		stored: func(suffix []byte) (*table[K, stamped[V]], K, bool) {
			var zero K
			if len(suffix) < 8 {
				return nil, zero, false
			}
			i := n.find(int64(binary.BigEndian.Uint64(suffix) ^ (1 << 63)))
			if i < 0 {
				return nil, zero, false // dropped: its range deletion is on its way
			}
			k, err := s.keys.Decode(suffix[8:])
			return n.live[i].t, k, err == nil
		},
		trim: func(s stamped[V], now int64) (stamped[V], bool, bool) {
			return s, !tn.p.expired(s.at, now), false
		},
	})
	return tn, nil
}

func (tn *ttlNamespaced[K, V]) get(ns int64) (V, bool) {
	var zero V
	s, ok := tn.n.get(ns)
	if !ok {
		return zero, false
	}
	now := tn.p.now()
	if tn.p.expired(s.at, now) {
		tn.n.del(ns)
		return zero, false
	}
	if tn.p.onRead() && s.at != now {
		tn.n.put(ns, stamped[V]{v: s.v, at: now})
	}
	return s.v, true
}

func (tn *ttlNamespaced[K, V]) put(ns int64, v V) { tn.n.put(ns, stamped[V]{v: v, at: tn.p.now()}) }

func (tn *ttlNamespaced[K, V]) update(ns int64, fn func(v V, ok bool) V) V {
	now := tn.p.now()
	s := tn.n.update(ns, func(s stamped[V], ok bool) stamped[V] {
		if ok && tn.p.expired(s.at, now) {
			s, ok = stamped[V]{}, false
		}
		return stamped[V]{v: fn(s.v, ok), at: now}
	})
	return s.v
}

// all calls fn with every key's unexpired value in namespace ns; with
// OnReadAndWrite it then restarts their TTL.
func (tn *ttlNamespaced[K, V]) all(ns int64, fn func(key K, v V)) {
	now := tn.p.now()
	var read []K
	tn.n.all(ns, func(k K, s stamped[V]) {
		if tn.p.expired(s.at, now) {
			return
		}
		if tn.p.onRead() && s.at != now {
			read = append(read, k)
		}
		fn(k, s.v)
	})
	// NB: not during the walk, which a write of an uncached key could
	// disturb.
	for _, k := range read {
		tn.n.scope.key = k
		tn.n.update(ns, func(s stamped[V], _ bool) stamped[V] { return stamped[V]{v: s.v, at: now} })
	}
}

// tableKey resolves the Pebble keys of t's state (without key group and
// state id) for a ttlCleaner.
func tableKey[K comparable, V any](t *table[K, V]) func(suffix []byte) (*table[K, V], K, bool) {
	return func(suffix []byte) (*table[K, V], K, bool) {
		k, err := t.scope.keys.Decode(suffix)
		return t, k, err == nil
	}
}

// cleaner removes expired values of one state with a TTL, a bounded number
// per checkpoint.
type cleaner interface {
	// startPass starts the cleanup of the checkpoint just frozen.
	startPass()
	// cleanSome does up to budget units of the pass's work and reports
	// how many it did and whether the pass is over.
	cleanSome(budget int) (used int, done bool)
}

// Each checkpoint's cleanup of a state looks at up to
// max(ttlCleanupMin, cached entries/ttlCleanupShare) cache slots and as many
// entries Pebble holds that are not cached, so that a full pass over a
// cached state takes at most ttlCleanupShare checkpoints.
const (
	ttlCleanupMin   = 1024
	ttlCleanupShare = 32
)

// ttlCleaner is the cleaner of a state whose cached values have type V.
// Cached values are changed or deleted in the current epoch; values that
// only Pebble holds are rewritten or deleted in the frozen epoch's delta,
// which cannot hold them already (what a delta holds is cached until
// Pebble has it).
type ttlCleaner[K comparable, V any] struct {
	b  *Backend
	id uint32
	p  *ttlPolicy
	// tables returns the state's caches (one per namespace of a
	// Namespaced state).
	tables func() []*table[K, V]
	// stored resolves a Pebble key without its key group and state id to
	// its cache and key; false means skip it.
	stored func(suffix []byte) (*table[K, V], K, bool)
	// trim returns v without its expired parts (a new value, if any
	// expired), whether anything is left, and whether anything expired.
	trim func(v V, now int64) (kept V, left, trimmed bool)

	now        int64 // of the pass
	slotsLeft  int
	storedLeft int
	tab, slot  int    // cache cursor
	kg         int    // Pebble cursor: the key group,
	after      []byte // and the last key seen in it (nil: none)
	bound      []byte // scratch for iterator bounds
	lower      []byte
}

func (c *ttlCleaner[K, V]) startPass() {
	c.now = c.p.now()
	cached := 0
	for _, t := range c.tables() {
		cached += t.entries()
	}
	quota := max(ttlCleanupMin, cached/ttlCleanupShare)
	c.slotsLeft, c.storedLeft = quota, quota
}

func (c *ttlCleaner[K, V]) cleanSome(budget int) (used int, done bool) {
	skipped := 0
	for c.slotsLeft > 0 && used < budget {
		c.slotsLeft--
		tabs := c.tables()
		if c.tab >= len(tabs) {
			c.tab, c.slot = 0, 0
			if len(tabs) == 0 {
				c.slotsLeft = 0
				break
			}
		}
		t := tabs[c.tab]
		if c.slot >= len(t.m.slots) {
			c.tab, c.slot = c.tab+1, 0
			continue
		}
		s := &t.m.slots[c.slot]
		c.slot++
		if s.e.mark&occupied == 0 || s.e.deleted() {
			if skipped++; skipped == skippedSlotCost {
				used, skipped = used+1, 0
			}
			continue
		}
		used++
		switch kept, left, trimmed := c.trim(s.e.val, c.now); {
		case !left:
			t.deleteKey(s.k, false) // NB: in place: moves no entry
		case trimmed:
			t.put(s.k, kept)
		}
	}
	if c.slotsLeft > 0 {
		return used, false
	}
	u, err := c.cleanStored(budget - used)
	if err != nil {
		c.b.fail(fmt.Errorf("state: TTL cleanup of %q: %w", c.b.names[c.id], err))
		c.storedLeft = 0
	}
	return used + u, c.storedLeft == 0
}

// cleanStored looks at up to budget entries that Pebble holds and the cache
// does not, from where the previous pass stopped; a pass ends at the end of
// the state, and the next one starts over. Each key group costs a seek
// (one unit of budget).
func (c *ttlCleaner[K, V]) cleanStored(budget int) (used int, err error) {
	if c.b.full || c.b.complete {
		c.storedLeft = 0 // everything is cached
		return 0, nil
	}
	it, err := c.b.db.NewIter(nil)
	if err != nil {
		return 0, err
	}
	for c.storedLeft > 0 && used < budget {
		if c.kg >= c.b.maxParallelism {
			c.kg, c.after, c.storedLeft = 0, nil, 0
			break
		}
		c.bound = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(c.bound[:0], uint16(c.kg)), c.id)
		seek := c.bound
		if c.after != nil {
			c.lower = append(append(c.lower[:0], c.after...), 0) // the next key
			seek = c.lower
		}
		used++
		valid := it.SeekGE(seek)
		for ; valid && bytes.HasPrefix(it.Key(), c.bound) && c.storedLeft > 0 && used < budget; valid = it.Next() {
			c.storedLeft--
			used++
			if err := c.cleanEntry(it); err != nil {
				it.Close()
				return used, err
			}
			c.after = append(c.after[:0], it.Key()...)
		}
		if !valid || !bytes.HasPrefix(it.Key(), c.bound) {
			c.kg, c.after = c.kg+1, nil
		}
	}
	return used, it.Close()
}

// cleanEntry deletes or trims the entry at it in the frozen epoch's delta if
// it is not cached and something in it expired.
func (c *ttlCleaner[K, V]) cleanEntry(it *pebble.Iterator) error {
	key := it.Key()
	t, k, ok := c.stored(key[6:])
	if !ok || t.complete || t.m.find(k) >= 0 {
		return nil // the cache is newer
	}
	raw, err := it.ValueAndErr()
	if err != nil {
		return err
	}
	v, err := t.vals.Decode(raw)
	if err != nil {
		return err
	}
	switch kept, left, trimmed := c.trim(v, c.now); {
	case !left:
		c.b.delta.add(key, nil, true)
	case trimmed:
		c.b.delta.add(key, func(dst []byte) []byte { return t.vals.Append(dst, kept) }, false)
	}
	return nil
}

// mutableMap returns the current key's map of t after marking it changed,
// so that in-place changes are captured by the next checkpoint (and the
// frozen value is encoded before it is changed).
func mutableMap[K comparable, UK comparable, V any](t *table[K, map[UK]V]) map[UK]V {
	k := t.scope.key
	mm, ok := t.get(k)
	if !ok || mm == nil {
		mm = make(map[UK]V)
	}
	t.put(k, mm)
	return mm
}

// deleteFromMap removes the entry uk of the current key's map of t.
func deleteFromMap[K comparable, UK comparable, V any](t *table[K, map[UK]V], uk UK) {
	mm, _ := t.get(t.scope.key)
	if _, ok := mm[uk]; !ok {
		return
	}
	mm = mutableMap(t)
	delete(mm, uk)
	if len(mm) == 0 {
		t.delete(t.scope.key)
	}
}
