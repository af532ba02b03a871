package statebackend

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/weirstream/weir/internal/invariants"
	"github.com/weirstream/weir/internal/keygroup"
)

// entry is one cached state entry.
type entry[V any] struct {
	val V
	// epoch is the epoch of the entry's last change, or 0 if it is exactly
	// what Pebble holds.
	epoch uint32
	// mark holds, in its low 29 bits, the frozen epoch whose snapshot has
	// encoded the entry; in its top bit whether the entry is a tombstone
	// (the key has no value, whatever Pebble holds); in the next bit
	// whether the hash table's slot holding it is in use; and in the next
	// whether the entry is fresh (see isFresh). (Packed: with small values
	// an entry fits 16 bytes, and the cache's size is what its speed
	// depends on. Epochs count checkpoints since the Backend opened: 2^29
	// of them take 17 years at one a second.)
	mark uint32
}

const (
	tombstone   = 1 << 31
	occupied    = 1 << 30
	fresh       = 1 << 29
	encodedMask = fresh - 1
)

func (e *entry[V]) deleted() bool { return e.mark&tombstone != 0 }

// isFresh reports whether e was set in epoch, the current one, for a key
// that nothing older holds: neither Pebble nor a snapshot not yet in it,
// so that deleting it needs no tombstone. The mark outlives the epoch, in
// which the entry reaches the epoch's snapshot; it counts only with the
// entry's epoch.
func (e *entry[V]) isFresh(epoch uint32) bool { return e.mark&fresh != 0 && e.epoch == epoch }

func (e *entry[V]) setEncoded(fe uint32) { e.mark = e.mark&^encodedMask | fe }

// owed reports whether the snapshot of frozen epoch fe still needs e's value
// (its value as of the barrier, which e still is unless e.epoch > fe). A
// delta snapshot needs the entries changed in fe, tombstones included; a
// full one needs every live entry as of the barrier.
func (e *entry[V]) owed(fe uint32, full bool) bool {
	switch {
	case fe == 0 || e.mark&encodedMask == fe:
		return false
	case full:
		return e.epoch <= fe && !e.deleted()
	default:
		// A fresh tombstone (see deleteAt) deletes nothing.
		return e.epoch == fe && e.mark&(tombstone|fresh) != tombstone|fresh
	}
}

// table is the cache of one named state of one operator subtask. It is used
// from the subtask's goroutine only.
type table[K comparable, V any] struct {
	b     *Backend
	scope *Scope[K]
	id    uint32
	vals  Codec[V]
	// appends is vals if it is a deltaCodec (a List's), else nil.
	appends deltaCodec[V]

	m      hashTable[K, V]
	size   entrySizer
	dirty  []K // keys first changed in the current epoch
	frozen []K // keys changed in the frozen epoch, encoded up to drain
	drain  int
	// scanning says that the frozen epoch is encoded by a walk over all
	// slots (up to scanAt) instead of through frozen: when most entries are
	// frozen, a sequential walk is much cheaper than a lookup per key. While
	// it lasts no entry is removed (removals move entries); scanGrown is
	// m.grown when the walk started over.
	scanning  bool
	scanAt    int
	scanGrown int

	// noEvictBefore suppresses eviction passes until this many epochs have
	// been applied, after a pass found too little to evict.
	noEvictBefore uint32
	// loaded says that entries were read from Pebble into the cache since
	// then: they are clean, so a pass may find them.
	loaded  bool
	evictAt int // the slot the next eviction pass starts at
	// tombs lists deletions in epoch order, so that their tombstones leave
	// the cache once Pebble has them (see applied).
	tombs []tomb[K]
	// vanished counts the keys of dirty whose fresh entries were removed
	// (see deleteAt): they are listed but changed nothing.
	vanished int

	// ns is the namespace of a table of a Namespaced state, whose Pebble
	// keys carry it after the state id (see pebbleKey).
	ns         int64
	namespaced bool
	// complete is like Backend.complete for this table alone: Pebble holds
	// nothing of it that the cache lacks (a namespace created since Open),
	// until the table evicts.
	complete bool
	// warming is where loading a restored table into the cache resumes,
	// while it is loaded a budget at a time (Config.WarmLater); nil
	// otherwise.
	warming *scanCursor
	// stored filters the keys Pebble may hold of the table, which a cache
	// miss then reads only if the filter may hold it (see keyFilter); it
	// counts once storedKnown is set: Pebble was empty when the table was
	// created, or the table's restored entries were all read into it (see
	// warm, warmSome). It is nil for a namespace's table (a filter each
	// would cost more than it saves for a state of many small namespaces),
	// and for a restored table whose entries were not all read (they did
	// not fit the cache): Pebble's filters answer there.
	stored      *keyFilter
	storedKnown bool
}

type tomb[K comparable] struct {
	epoch uint32
	key   K
}

// tableOps is the type-independent view of a table the Backend drives.
type tableOps interface {
	freeze()
	applied(epoch uint32)
	drainSome(budget int) (used int, done bool)
	entries() int
	changed() int
	// evict removes clean entries worth up to bytes from the cache and
	// returns the bytes it freed.
	evict(bytes int64) (freed int64)
	// cachedAll reports whether the cache holds every entry Pebble holds
	// of the state.
	cachedAll() bool
	// warmSome loads up to budget restored entries into the cache (see
	// Config.WarmLater) and returns how many it read and whether the
	// table is loaded.
	warmSome(budget int) (used int, done bool)
}

func newTable[K comparable, V any](s *Scope[K], name string, kind stateKind, vals Codec[V]) (*table[K, V], error) {
	if vals == nil {
		return nil, fmt.Errorf("state: %q: nil value codec", name)
	}
	t := makeTable(s, vals)
	id, err := s.backend.register(name, kind, t)
	if err != nil {
		return nil, err
	}
	t.id = id
	s.tables = append(s.tables, t)
	t.stored, t.storedKnown = &keyFilter{}, t.b.complete
	if t.b.cfg.WarmLater && !t.b.complete {
		t.warming = &scanCursor{} // see warmSome
		t.b.warming++
		return t, nil
	}
	err = t.warm(func(add func(K, V) error) error {
		return t.b.scan(t.id, func(key, value []byte) error {
			k, v, err := t.decodeStored(key, value)
			if err != nil {
				return err
			}
			t.stored.add(t.filterHash(k))
			return add(k, v)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("state: load %q: %w", name, err)
	}
	if t.complete {
		t.storedKnown = true
	} else {
		t.stored = nil // it lacks the entries that did not fit
	}
	return t, nil
}

// filterHash returns k's hash in the filter of stored keys: of its key
// hash, which the scope memoizes for the current key (the key of most
// lookups), not of the cache's slot hash.
func (t *table[K, V]) filterHash(k K) uint64 { return filterHash(t.scope.keyHash(k)) }

// mayBeStored reports whether Pebble, or a snapshot on its way there, may
// hold k (see stored).
func (t *table[K, V]) mayBeStored(k K) bool {
	if t.b.complete || t.complete {
		return false
	}
	if !t.storedKnown || t.stored.mayHold(t.filterHash(k)) {
		return true
	}
	if invariants.Enabled {
		t.checkNotStored(k)
	}
	return false
}

// checkNotStored verifies that Pebble lacks k, which the filter of stored
// keys says it lacks. (A snapshot not in Pebble yet holds only keys the
// filter has: they are added as they are encoded.)
func (t *table[K, V]) checkNotStored(k K) {
	if _, found, _ := t.b.get(t.pebbleKey(k)); found {
		panic(fmt.Sprintf("state: %q: key %v is in Pebble, not in the filter of stored keys", t.b.names[t.id], k))
	}
}

// decodeStored decodes an entry Pebble holds (key without key group and
// state id) and samples its size.
func (t *table[K, V]) decodeStored(key, value []byte) (K, V, error) {
	var v V
	k, err := t.scope.keys.Decode(key)
	if err == nil {
		v, err = t.vals.Decode(value)
	}
	if err == nil {
		t.sampleSize(len(key) + len(value))
	}
	return k, v, err
}

// warmSome is warm a budget at a time, for Config.WarmLater: it loads up
// to budget entries that Pebble holds, from where the previous call
// stopped, into the cache, keeping what the cache holds of a key already
// (the same value, or a newer one: a key that is not cached has its
// newest value in Pebble, so reading Pebble anew at each call is right).
// The table is complete once every entry was read; the cache's bound, or
// an eviction meanwhile, ends the loading without: the rest is read on
// demand, as after a warm that did not fit.
func (t *table[K, V]) warmSome(budget int) (int, bool) {
	if t.warming == nil {
		return 0, true
	}
	used, done, err := t.b.scanSome(t.id, t.warming, budget, func(key, value []byte) error {
		if t.b.cachedBytes+t.m.per >= t.b.cfg.CacheBytes {
			return errCacheFull
		}
		k, v, err := t.decodeStored(key, value)
		if err != nil {
			return err
		}
		t.stored.add(t.filterHash(k))
		if _, ok := t.m.get(k); !ok {
			t.m.set(k, entry[V]{val: v})
		}
		return nil
	})
	if used > 0 {
		t.loaded, t.b.loaded = true, true // clean entries an eviction pass may take
	}
	switch {
	case errors.Is(err, errCacheFull):
		t.endWarm()
		return used, true
	case err != nil:
		t.endWarm()
		t.b.fail(fmt.Errorf("state: load %q: %w", t.b.names[t.id], err))
		return used, true
	case done:
		t.complete, t.storedKnown = true, true
		t.endWarm()
	}
	return used, done
}

// endWarm ends loading the table by warmSome. Unless it then sets
// storedKnown, the filter of stored keys lacks those not read: it is
// dropped.
func (t *table[K, V]) endWarm() {
	if t.warming != nil {
		t.warming = nil
		t.b.warming--
		if !t.storedKnown {
			t.stored = nil
		}
	}
}

// errCacheFull stops warm when the stored entries do not fit the cache.
var errCacheFull = errors.New("state: cache full")

// warm loads the entries that stored passes to add (what a restored Backend
// holds of the table) into the cache, if they fit. The table is then
// complete: a miss needs no Pebble read, and once every state is complete,
// snapshots may be full again (see Backend.Freeze) instead of deltas that
// Pebble must compact. Entries beyond the bound are read on demand.
//
// The entries are gathered first, so that the table grows once to hold
// them, then set warmBatch at a time after a touch of their slots, so that
// the CPU overlaps the cache misses (Pebble's order is not the table's).
// Set one by one as read, a restore of 500,000 entries grew the table 17
// times and waited for a miss per entry (BenchmarkRestoreWarm).
func (t *table[K, V]) warm(stored func(add func(K, V) error) error) error {
	var keys []K
	var vals []V
	err := stored(func(k K, v V) error {
		if t.b.cachedBytes+int64(len(keys))*t.m.per >= t.b.cfg.CacheBytes {
			return errCacheFull
		}
		keys, vals = append(keys, k), append(vals, v)
		return nil
	})
	if err != nil && !errors.Is(err, errCacheFull) {
		return err
	}
	t.m.reserve(len(keys))
	for i := 0; i < len(keys); i += warmBatch {
		batch := keys[i:min(i+warmBatch, len(keys))]
		t.m.touch(batch)
		for j, k := range batch {
			t.m.set(k, entry[V]{val: vals[i+j]})
		}
	}
	if err == nil {
		t.complete = true
	}
	return nil
}

// warmBatch is the number of entries warm touches before setting them: as
// many independent loads as a core keeps in flight, as the keyed operators'
// groups of 64 records.
const warmBatch = 64

func (t *table[K, V]) cachedAll() bool { return t.complete }

// makeTable returns a table that is not registered with the Backend: a
// Namespaced state registers once and drives its tables itself.
func makeTable[K comparable, V any](s *Scope[K], vals Codec[V]) *table[K, V] {
	t := &table[K, V]{b: s.backend, scope: s, vals: vals, size: newEntrySizer[K, V]()}
	t.m.acct, t.m.per = &s.backend.cachedBytes, t.size.per()
	t.appends, _ = vals.(deltaCodec[V])
	t.m.hash = s.slotHash
	if t.m.hash == nil {
		t.m.hash = s.keyHash
	}
	return t
}

// prefetch touches the slots of keys; hashes, if not nil, are their key
// hashes (see Scope.Prefetch).
func (t *table[K, V]) prefetch(keys []K, hashes []uint64) {
	if hashes != nil && t.scope.slotHash == nil { // the slots are placed by the key hash
		t.m.touchHashed(hashes)
		return
	}
	t.m.touch(keys)
}

func (t *table[K, V]) get(k K) (V, bool) {
	if e, ok := t.m.get(k); ok {
		return e.val, !e.deleted()
	}
	return t.load(k, true)
}

// load reads k from Pebble into the cache; a key Pebble lacks is cached
// as absent if markAbsent is set (not when the caller sets k next). The
// absent marker is a clean tombstone: like a value read from Pebble, it is
// in no snapshot (its epoch, 0, is no frozen epoch) and may be evicted, and
// a write replaces it. A second read of the key is then a cache hit, where
// it read Pebble again: Nexmark q20, whose bids mostly look up an auction
// that does not exist, each of them as often as the auction has bids. A key
// the filter of stored keys lacks is absent without a read.
func (t *table[K, V]) load(k K, markAbsent bool) (V, bool) {
	var zero V
	if t.b.complete || t.complete {
		return zero, false
	}
	if !t.mayBeStored(k) {
		if markAbsent {
			// As Pebble's answer would be: a second read is a hit.
			t.cache(k, entry[V]{mark: tombstone})
		}
		return zero, false
	}
	key := t.pebbleKey(k)
	t.b.gets++
	raw, found, err := t.b.get(key)
	if err != nil {
		t.b.fail(fmt.Errorf("state: read %q: %w", t.b.names[t.id], err))
		return zero, false
	}
	if !found {
		if markAbsent {
			t.cache(k, entry[V]{mark: tombstone})
		}
		return zero, false
	}
	v, err := t.vals.Decode(raw)
	if err != nil {
		t.b.fail(fmt.Errorf("state: decode %q: %w", t.b.names[t.id], err))
		return zero, false
	}
	size := len(key) + len(raw)
	t.sampleSize(size)
	t.cache(k, entry[V]{val: v})
	return v, true
}

// cache stores e, what Pebble holds for k, as k's entry.
func (t *table[K, V]) cache(k K, e entry[V]) {
	t.makeRoom()
	if t.b.cachedBytes < t.b.cfg.CacheBytes {
		// NB: when the cache is full of entries that must stay (dirty ones,
		// or a full snapshot draining), one read from Pebble is not cached:
		// reads alone must not grow the cache past its bound.
		t.m.set(k, e)
		t.loaded, t.b.loaded = true, true
	}
}

func (t *table[K, V]) put(k K, v V) { t.set(k, entry[V]{val: v, epoch: t.b.epoch}) }

// freshOver returns the fresh mark of a value set now over e, k's cached
// entry: fresh if e is, or if e is a tombstone that Pebble has (an absent
// marker, see load, or a deletion applied has not removed yet). A
// tombstone that Pebble does not have yet must stay: a miss would read
// Pebble's older value.
func (t *table[K, V]) freshOver(e entry[V]) uint32 {
	if e.isFresh(t.b.epoch) || (e.deleted() && e.epoch <= t.b.appliedEpoch) {
		return fresh
	}
	return 0
}

// freshUncached returns the fresh mark of a value set now for a key the
// cache lacks without reading Pebble: fresh if Pebble holds nothing the
// cache lacks. (Snapshots not in Pebble yet hold only cached keys: their
// entries are not evicted before.)
func (t *table[K, V]) freshUncached(k K) uint32 {
	if !t.mayBeStored(k) {
		return fresh
	}
	return 0
}

// add stores v as k's value if k has none and reports whether it did. It
// looks k up once, where get then put take three lookups: registering a
// timer, the common use, is mostly a key that has none.
func (t *table[K, V]) add(k K, v V) bool {
	n := entry[V]{val: v, epoch: t.b.epoch, mark: occupied}
	if i := t.m.find(k); i >= 0 {
		e := t.m.slots[i].e
		if !e.deleted() {
			return false
		}
		t.changing(k, e, true) // moves no entries: k is cached
		n.mark |= t.freshOver(e)
		t.m.slots[i].e = n
		return true
	}
	if _, ok := t.load(k, false); ok {
		return false
	}
	n.mark |= fresh                  // neither the cache nor Pebble has k
	t.changing(k, entry[V]{}, false) // may evict, which moves entries
	t.m.insert(k, n)
	return true
}

// take deletes k's value and reports whether it had one, with one lookup
// when k is cached, where get then delete take three (a timer firing).
func (t *table[K, V]) take(k K) bool {
	i := t.m.find(k)
	if i < 0 {
		if _, ok := t.load(k, true); !ok {
			return false
		}
		t.delete(k)
		return true
	}
	e := t.m.slots[i].e
	if e.deleted() {
		return false
	}
	t.deleteAt(i, k, e, true)
	return true
}

func (t *table[K, V]) delete(k K) { t.deleteKey(k, true) }

// deleteKey deletes k's value; moves says whether removing its entry from
// the cache, which moves other entries, is allowed (not in a walk over the
// slots).
func (t *table[K, V]) deleteKey(k K, moves bool) {
	if i := t.m.find(k); i >= 0 {
		if e := t.m.slots[i].e; !e.deleted() {
			t.deleteAt(i, k, e, moves)
		}
		return
	}
	if t.freshUncached(k) != 0 {
		return // nothing holds k
	}
	t.changing(k, entry[V]{}, false) // may evict, which moves entries
	t.m.insert(k, entry[V]{epoch: t.b.epoch, mark: tombstone | occupied})
	t.tombs = append(t.tombs, tomb[K]{epoch: t.b.epoch, key: k})
}

// deleteAt deletes k's value e, which slot i holds. A fresh value leaves no
// trace: its entry is removed (where Pebble's tombstone, once applied, would
// have removed it), or if entries must not move, it becomes a fresh
// tombstone, which no snapshot writes. (Nexmark q11 at 2M events, whose
// session windows and timers mostly live within an epoch: engine CPU 0.48-
// 0.50 s to 0.38-0.42, the reference's CPU over it 0.73-0.76 to 0.93-0.95.)
func (t *table[K, V]) deleteAt(i int, k K, e entry[V], moves bool) {
	epoch := t.b.epoch
	if e.isFresh(epoch) && moves && !t.scanning { // NB: a scan must not see entries move
		t.m.removeAt(i)
		t.vanished++
		return
	}
	t.changing(k, e, true) // moves no entries: k is cached
	t.m.slots[i].e = entry[V]{epoch: epoch, mark: tombstone | occupied | t.freshOver(e)}
	t.tombs = append(t.tombs, tomb[K]{epoch: epoch, key: k})
}

// applied drops the tombstones of epochs up to epoch, which Pebble now has:
// without them the cache is still exact (a miss is a miss in Pebble too),
// and state that is deleted as fast as it is created (timers, expired
// windows) does not pile up in memory.
func (t *table[K, V]) applied(epoch uint32) {
	if t.scanning {
		return // removals move entries; the next call removes these
	}
	n := 0
	for ; n < len(t.tombs) && t.tombs[n].epoch <= epoch; n++ {
		k := t.tombs[n].key
		if i := t.m.find(k); i >= 0 {
			if e := t.m.slots[i].e; e.deleted() && e.epoch <= epoch {
				t.m.removeAt(i)
			}
		}
	}
	if n > 0 {
		clear(t.tombs[:n])
		t.tombs = append(t.tombs[:0], t.tombs[n:]...)
	}
}

// set stores n as k's entry with one lookup (a Put is one probe, where a
// lookup to mark the change and another to store took two).
func (t *table[K, V]) set(k K, n entry[V]) {
	n.mark |= occupied
	if i := t.m.find(k); i >= 0 {
		e := t.m.slots[i].e
		t.changing(k, e, true) // moves no entries: k is cached
		n.mark |= t.freshOver(e)
		t.m.slots[i].e = n
		return
	}
	n.mark |= t.freshUncached(k)
	t.changing(k, entry[V]{}, false) // may evict, which moves entries
	t.m.insert(k, n)
}

// changing prepares the change of k, whose cached entry is e (if ok), in the
// current epoch: the first change of an epoch lists k as dirty and, if the
// frozen epoch still needs the old value, encodes it first (copy on write).
func (t *table[K, V]) changing(k K, e entry[V], ok bool) {
	switch {
	case !ok:
		t.makeRoom()
		t.dirty = append(t.dirty, k)
	case e.epoch != t.b.epoch:
		if e.owed(t.b.frozenEpoch, t.b.full) {
			t.encode(k, e)
		}
		t.dirty = append(t.dirty, k)
	}
}

// update sets k's value to fn(value, whether there is one) with one map
// lookup, where get then put take two. The frozen epoch's value is encoded
// before fn runs (copy on write), so fn may change it in place.
func (t *table[K, V]) update(k K, fn func(v V, ok bool) V) V {
	if i := t.m.find(k); i >= 0 {
		// The common case: one probe.
		e := t.m.slots[i].e
		t.changing(k, e, true) // moves no entries: k is cached
		v := fn(e.val, !e.deleted())
		n := entry[V]{val: v, epoch: t.b.epoch, mark: t.freshOver(e)}
		if s := &t.m.slots[i]; s.k == k && s.e.mark&occupied != 0 {
			n.mark |= occupied
			s.e = n
		} else {
			t.m.set(k, n) // fn used the state, which moved k
		}
		return v
	}
	old, ok := t.load(k, false) // loaded entries are as Pebble has them: epoch 0
	n := entry[V]{epoch: t.b.epoch}
	if !ok {
		n.mark = fresh // neither the cache nor Pebble has k
	}
	t.changing(k, entry[V]{val: old}, ok)
	n.val = fn(old, ok)
	t.m.set(k, n)
	return n.val
}

// changed returns the number of keys changed in the current epoch.
func (t *table[K, V]) changed() int { return len(t.dirty) - t.vanished }

// freeze starts the snapshot of the epoch just closed. A full snapshot, and a
// delta that changed much of the table, scan all slots; a small delta goes
// through the list of changed keys.
func (t *table[K, V]) freeze() {
	t.frozen, t.dirty = t.dirty, t.frozen[:0]
	t.drain, t.vanished = 0, 0
	if t.b.full || len(t.frozen) > t.m.len()/4 {
		clear(t.frozen)
		t.frozen = t.frozen[:0]
		t.scanning, t.scanAt, t.scanGrown = true, 0, t.m.grown
	}
}

// skippedSlotCost is how many slots a scan skips for the cost of encoding one
// entry, in drain budgets.
const skippedSlotCost = 16

func (t *table[K, V]) drainSome(budget int) (used int, done bool) {
	fe := t.b.frozenEpoch
	if t.scanning {
		return t.drainScan(fe, budget)
	}
	for used < budget && t.drain < len(t.frozen) {
		k := t.frozen[t.drain]
		t.drain++
		used++
		i := t.m.find(k)
		if i < 0 || !t.m.slots[i].e.owed(fe, false) {
			continue // changed again since the barrier: encoded on write
		}
		s := &t.m.slots[i]
		t.encode(k, s.e)
		s.e.setEncoded(fe)
	}
	if t.drain < len(t.frozen) {
		return used, false
	}
	if invariants.Enabled {
		t.checkDrained(fe, t.b.full)
	}
	clear(t.frozen) // release references held by the key slice
	t.frozen = t.frozen[:0]
	t.drain = 0
	return used, true
}

// drainScan encodes the entries owed to frozen epoch fe in slot order.
func (t *table[K, V]) drainScan(fe uint32, budget int) (used int, done bool) {
	if t.m.grown != t.scanGrown {
		// Growing moved every entry: start over. The entries encoded so
		// far are not owed any more and are skipped.
		t.scanAt, t.scanGrown = 0, t.m.grown
	}
	full, skipped := t.b.full, 0
	for ; t.scanAt < len(t.m.slots) && used < budget; t.scanAt++ {
		s := &t.m.slots[t.scanAt]
		if s.e.mark&occupied == 0 || !s.e.owed(fe, full) {
			if skipped++; skipped == skippedSlotCost {
				used, skipped = used+1, 0
			}
			continue
		}
		t.encode(s.k, s.e)
		s.e.setEncoded(fe)
		used++
	}
	if t.scanAt < len(t.m.slots) {
		return used, false
	}
	t.scanning = false
	if invariants.Enabled {
		t.checkDrained(fe, full)
	}
	return used, true
}

func (t *table[K, V]) entries() int { return t.m.len() }

// checkDrained verifies that every entry the snapshot of frozen epoch fe
// needs was encoded.
func (t *table[K, V]) checkDrained(fe uint32, full bool) {
	for _, s := range t.m.slots {
		if s.e.mark&occupied != 0 && s.e.owed(fe, full) {
			panic(fmt.Sprintf("state: entry %v of epoch %d was not encoded for its checkpoint", s.k, fe))
		}
	}
}

// deltaCodec is a codec of values that mostly grow by appends (a List's),
// whose delta snapshots write the part appended in the epoch as a merge
// operand rather than the whole value.
type deltaCodec[V any] interface {
	// appendOnly reports whether v only grew by appends in its last epoch.
	appendOnly(v V) bool
	// appendNew appends the encoding of what was appended to v in its
	// last epoch.
	appendNew(dst []byte, v V) []byte
}

func (t *table[K, V]) encode(k K, e entry[V]) {
	if t.appends != nil && !t.b.full && !e.deleted() && t.appends.appendOnly(e.val) {
		// NB: the entry is owed to a delta, so it changed in the frozen
		// epoch, the epoch its appends are counted from.
		t.b.delta.addRec(t.pebbleKey(k), func(dst []byte) []byte { return t.appends.appendNew(dst, e.val) }, false, true)
		t.noteStored(k)
		return
	}
	key := t.pebbleKey(k)
	t.noteStored(k)
	t.b.delta.add(key, func(dst []byte) []byte {
		n := len(dst)
		dst = t.vals.Append(dst, e.val)
		t.sampleSize(len(key) + len(dst) - n)
		return dst
	}, e.deleted())
}

// noteStored adds k, whose entry a snapshot holds, to the filter of stored
// keys. A tombstone's key is added too: Pebble may hold an older value
// (the entry may have been read from it), and an extra key costs only a
// Pebble read.
//
// While the table is complete (the cache holds every key Pebble holds)
// the filter is never consulted (see mayBeStored), and keys are not added
// one by one: the first eviction, which ends completeness, adds every
// cached key at once (see fillStored). Checking and adding a key at every
// encode, each a cache miss in every layer of a filter of millions of
// keys, cost a state that fits its cache 4-5% of its CPU time
// (BenchmarkKeepLastCheckpointed) for a filter it never read.
func (t *table[K, V]) noteStored(k K) {
	if t.stored == nil || t.complete {
		return
	}
	t.stored.add(t.filterHash(k))
	t.boundStored()
}

// fillStored adds the key of every cached entry to the filter of stored
// keys, as the table stops being complete: Pebble then holds no key that
// the cache lacks, so the cached keys are all the filter needs (tombstones
// and absent markers included, which cost a Pebble read at worst).
func (t *table[K, V]) fillStored() {
	if t.stored == nil {
		return
	}
	t.stored.reserve(t.m.len())
	for i := range t.m.slots {
		if s := &t.m.slots[i]; s.e.mark&occupied != 0 {
			t.stored.add(t.filterHash(s.k))
		}
	}
	t.boundStored()
}

// boundStored drops the filter of stored keys once it takes more than an
// eighth of the cache's bytes (or maxFilterFloor): see keyFilter.
func (t *table[K, V]) boundStored() {
	if int64(t.stored.bytes()) > max(t.b.cfg.CacheBytes/8, maxFilterFloor) {
		t.stored, t.storedKnown = nil, false
	}
}

// maxFilterFloor is the size a filter of stored keys may reach whatever
// Config.CacheBytes is (see keyFilter).
const maxFilterFloor = 1 << 20

// pebbleKey returns [key group][state id][key], or for a namespace table
// [key group][state id][namespace][key], in a buffer valid until the next
// call.
func (t *table[K, V]) pebbleKey(k K) []byte {
	s := t.scope
	kg := keygroup.Of(s.keyHash(k), t.b.maxParallelism)
	b := binary.BigEndian.AppendUint16(s.keyBuf[:0], uint16(kg))
	b = binary.BigEndian.AppendUint32(b, t.id)
	if t.namespaced {
		b = appendNamespace(b, t.ns)
	}
	b = s.keys.Append(b, k)
	s.keyBuf = b
	return b
}

// makeRoom evicts entries whose latest change is durable in Pebble when the
// cache is over its bound (Config.CacheBytes, over all states of the
// Backend), down to 15/16 of it: from t first, the state that grows, then
// from the others.
func (t *table[K, V]) makeRoom() {
	b := t.b
	limit := b.cfg.CacheBytes
	if b.cachedBytes < limit || (b.appliedEpoch < b.noEvictBefore && !b.loaded) || b.full {
		// NB: no eviction at all while a full snapshot drains, even in a
		// table whose scan is done: an entry evicted then and read back
		// from Pebble would look owed again (its encoded mark is gone), so
		// a write would encode it a second time (an ingest error: a key
		// twice in one table). Full snapshots need the cache to hold the
		// whole state anyway.
		return
	}
	need := b.cachedBytes - limit + limit/16
	if need -= t.evict(need); need > 0 {
		b.evictOthers(need)
	}
}

// evictOthers evicts up to need bytes of clean entries from any state. If
// that frees too little (the cache is mostly dirty: those entries must stay
// until their epoch is written), no table tries again before the next epoch
// is applied.
func (b *Backend) evictOthers(need int64) {
	for _, t := range b.tables {
		if need -= t.evict(need); need <= 0 {
			return
		}
	}
	b.noEvictBefore, b.loaded = b.appliedEpoch+1, false
}

// evict removes clean entries worth up to bytes from the cache and returns
// the bytes it freed. Eviction walks the slots round robin, which is hash
// order: an approximation of random replacement that needs no bookkeeping on
// the hot path. It walks them downwards: a removal moves back the entries
// that follow in the slot's cluster, which an upward walk then removed one
// by one, moving the rest each time (quadratic in the cluster's length: 3/4
// of BenchmarkAbsentReads, whose absent markers keep a full cache evicting).
func (t *table[K, V]) evict(bytes int64) (freed int64) {
	applied := t.b.appliedEpoch
	if t.m.n == 0 || (applied < t.noEvictBefore && !t.loaded) || t.scanning {
		return 0 // NB: a scan must not see entries move
	}
	// Start where the previous pass stopped, so that passes spread over the
	// table.
	for n := 0; n < len(t.m.slots); n++ {
		i := t.evictAt
		s := &t.m.slots[i]
		if s.e.mark&occupied != 0 && s.e.epoch <= applied { // frozen and pending epochs are > applied
			if t.complete {
				t.fillStored() // before any key leaves the cache
			}
			t.b.complete, t.complete = false, false
			t.endWarm() // the cache is full: the rest is read on demand
			freed += t.m.per
			t.m.removeAt(i) // NB: may move a later entry to i, which the walk skips
			if freed >= bytes {
				t.evictAt = (i - 1) & (len(t.m.slots) - 1)
				return freed
			}
		}
		t.evictAt = (i - 1) & (len(t.m.slots) - 1)
	}
	// Mostly dirty entries: they must stay until their epoch is written.
	t.noEvictBefore, t.loaded = applied+1, false
	return freed
}
