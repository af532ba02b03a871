package statebackend

import (
	"math/bits"
	"math/rand/v2"
	"unsafe"

	"github.com/weirstream/weir/internal/keygroup"
)

// hashTable is the cache's map from keys to entries: open addressing with
// linear probing over one array of slots, each holding its key next to its
// entry. A lookup in a large table costs one cache miss (the slot at the
// key's home position; the probe that follows is mostly in the same or the
// next line), where a Go map costs two (its control word, then the slot),
// and the state lookup is what a keyed operator over a large state spends
// most of its time on. It also lets a prefetch pass touch exactly the memory
// the following update will use.
//
// A slot is in use when its entry's mark has the occupied bit; removals
// shift the following entries back (no deletion markers), so lookups stop at
// the first free slot. Entries only move when the table grows or an entry
// is removed: a scan by position (see table.drainSome) must not remove, and
// restarts when the table has grown.
type hashTable[K comparable, V any] struct {
	slots []slot[K, V]
	hash  func(K) uint64
	shift uint // 64 - log2(len(slots)): the home of a key is hash >> shift
	n     int  // slots in use
	// acct is the Backend's count of cached bytes, which each entry adds
	// per to (see table.sizes); nil for a table outside a Backend.
	acct *int64
	per  int64
	// grown counts the times the table grew, which moves every entry.
	grown int
	// homes and touched are touch's: a reused buffer, and the sum that
	// keeps the compiler from dropping its loads.
	homes   []int
	touched uint32
	// last memoizes the last lookup: key lastK was at slot lastAt
	// (lastHit) or absent, its probe ending at the free slot lastAt. State
	// is mostly read and then written under the same key (Value.Get then
	// Put, an operator's read-modify-write): the write finds the slot, or
	// where to insert, without hashing and probing again. Valid while
	// lastOK; whatever moves or frees a slot clears it (insert, removeAt,
	// growTo, reset): writes of an entry in place leave it valid.
	lastK   K
	lastAt  int
	lastHit bool
	lastOK  bool
}

type slot[K comparable, V any] struct {
	k K
	e entry[V]
}

const minTableSlots = 8

func (h *hashTable[K, V]) len() int { return h.n }

// home mixes the key's hash with a seed chosen at random per process before
// taking its top bits: the hashes are stable (key groups depend on them) and
// easy to invert for integer keys, and without the seed, input crafted to
// share top bits would make every probe walk one long cluster.
func (h *hashTable[K, V]) home(k K) int { return h.homeOf(h.hash(k)) }

// homeOf returns the home of a key whose hash is hash.
func (h *hashTable[K, V]) homeOf(hash uint64) int {
	return int(keygroup.Mix64(hash^slotSeed) >> h.shift)
}

// slotSeed is the per-process seed of home.
var slotSeed = rand.Uint64()

func (h *hashTable[K, V]) used(i int) bool { return h.slots[i].e.mark&occupied != 0 }

// find returns the index of k's slot, or -1.
func (h *hashTable[K, V]) find(k K) int {
	if h.n == 0 {
		return -1
	}
	if h.lastOK && h.lastK == k {
		if h.lastHit {
			return h.lastAt
		}
		return -1
	}
	mask := len(h.slots) - 1
	for i := h.home(k); ; i = (i + 1) & mask {
		s := &h.slots[i]
		if s.e.mark&occupied == 0 {
			h.lastK, h.lastAt, h.lastHit, h.lastOK = k, i, false, true
			return -1
		}
		if s.k == k {
			h.lastK, h.lastAt, h.lastHit, h.lastOK = k, i, true, true
			return i
		}
	}
}

// touch reads the home slot of each key, so that the lookups that follow
// find it in the CPU cache. The loads are independent, so the CPU overlaps
// their misses, but only in a tight loop: the homes are computed first,
// since a call to the hash function between two loads keeps the next load
// from starting early. (BenchmarkValueCountingPrefetched: 175 ns a record
// with loads and calls interleaved, 135 with the homes first, 92 when the
// second cache line a lookup may need is read too.)
func (h *hashTable[K, V]) touch(keys []K) {
	homes := h.homes[:0]
	for _, k := range keys {
		homes = append(homes, h.home(k))
	}
	h.touchHomes(homes)
}

// touchHashed is touch for the keys whose hashes are hashes.
func (h *hashTable[K, V]) touchHashed(hashes []uint64) {
	homes := h.homes[:0]
	for _, x := range hashes {
		homes = append(homes, h.homeOf(x))
	}
	h.touchHomes(homes)
}

// touchHomes reads the slots at homes (and keeps homes' array for reuse).
func (h *hashTable[K, V]) touchHomes(homes []int) {
	h.homes = homes
	if h.n == 0 {
		return // no slots to read
	}
	var sum uint32
	mask := len(h.slots) - 1
	for _, i := range homes {
		// The first byte of the home slot and the mark (last field) of the
		// next one: a slot can straddle two cache lines, and a probe often
		// goes on to the next slot.
		sum += uint32(*(*byte)(unsafe.Pointer(&h.slots[i]))) + h.slots[(i+1)&mask].e.mark
	}
	h.touched = sum
}

// get returns k's entry and whether k has one.
func (h *hashTable[K, V]) get(k K) (entry[V], bool) {
	if i := h.find(k); i >= 0 {
		return h.slots[i].e, true
	}
	return entry[V]{}, false
}

// set stores e as k's entry.
func (h *hashTable[K, V]) set(k K, e entry[V]) {
	e.mark |= occupied
	if i := h.find(k); i >= 0 {
		h.slots[i].e = e
		return
	}
	h.insert(k, e)
}

// insert stores e, marked occupied, as the entry of k, which has none.
func (h *hashTable[K, V]) insert(k K, e entry[V]) {
	if 4*(h.n+1) > 3*len(h.slots) {
		h.grow()
	}
	i := h.lastAt
	if !h.lastOK || h.lastHit || h.lastK != k { // else a find just probed for k
		mask := len(h.slots) - 1
		for i = h.home(k); h.used(i); i = (i + 1) & mask {
		}
	}
	h.slots[i] = slot[K, V]{k: k, e: e}
	h.lastK, h.lastAt, h.lastHit, h.lastOK = k, i, true, true
	h.n++
	if h.acct != nil {
		*h.acct += h.per
	}
}

// setPer changes the bytes each entry is accounted for.
func (h *hashTable[K, V]) setPer(per int64) {
	if h.acct != nil {
		*h.acct += int64(h.n) * (per - h.per)
	}
	h.per = per
}

// reserve grows the table at once to hold n more entries without growing
// again.
func (h *hashTable[K, V]) reserve(n int) {
	if n == 0 {
		return
	}
	size := max(minTableSlots, len(h.slots))
	for 4*(h.n+n) > 3*size {
		size *= 2
	}
	if size > len(h.slots) {
		h.growTo(size)
	}
}

func (h *hashTable[K, V]) grow() { h.growTo(max(minTableSlots, 2*len(h.slots))) }

// growTo moves every entry into a new array of size slots, a power of two.
func (h *hashTable[K, V]) growTo(size int) {
	old := h.slots
	h.slots = make([]slot[K, V], size)
	h.lastOK = false
	adviseHugePages(h.slots)
	h.shift = uint(64 - bits.TrailingZeros(uint(size)))
	h.grown++
	mask := size - 1
	for _, s := range old {
		if s.e.mark&occupied == 0 {
			continue
		}
		i := h.home(s.k)
		for h.used(i) {
			i = (i + 1) & mask
		}
		h.slots[i] = s
	}
}

// remove removes k's entry, if any.
func (h *hashTable[K, V]) remove(k K) {
	if i := h.find(k); i >= 0 {
		h.removeAt(i)
	}
}

// removeAt frees slot i and moves back the entries after it whose probe
// passed through it, so that every entry stays reachable from its home
// without deletion markers. An entry after i may end up at i.
func (h *hashTable[K, V]) removeAt(i int) {
	h.lastOK = false
	mask := len(h.slots) - 1
	for j := (i + 1) & mask; h.used(j); j = (j + 1) & mask {
		// The entry at j may fill the hole at i unless its home lies
		// cyclically in (i, j]: then its probe did not pass i.
		if home := h.home(h.slots[j].k); (j-home)&mask >= (j-i)&mask {
			h.slots[i] = h.slots[j]
			i = j
		}
	}
	h.slots[i] = slot[K, V]{}
	h.n--
	if h.acct != nil {
		*h.acct -= h.per
	}
}

// reset removes every entry and keeps the slots for reuse.
func (h *hashTable[K, V]) reset() {
	clear(h.slots)
	h.lastOK = false
	if h.acct != nil {
		*h.acct -= int64(h.n) * h.per
	}
	h.n = 0
}
