package statebackend

import (
	"math/bits"
	"math/rand/v2"

	"github.com/weirstream/weir/internal/keygroup"
)

// keyFilter is a Bloom filter of the keys of one table that Pebble may hold:
// every key a snapshot wrote (added when the entry is encoded, before the
// snapshot reaches Pebble) and every key read from Pebble at a restore. A
// cache miss on a key it lacks needs no Pebble read. Pebble's own filters
// (see dbOptions) still cost a Get its iterator setup and a filter check in
// every table of L0 and the level below: for Nexmark q18 at 10M events,
// whose 2.9M keys soon outgrow the cache, Gets of new keys were 56% of the
// CPU.
//
// A Bloom filter cannot grow, and its keys are not at hand to rehash: the
// filter is a series of layers, each twice as large as the one before, a
// key added to the newest one. A lookup checks every layer: with 16 bits a
// key each answers wrongly about 0.1% of absent keys, so that 3M keys (11
// layers, 8 MB) send about 1% of absent keys on to Pebble
// (TestKeyFilterHoldsWhatItAdded: 0.6% with 200,000 keys in 7 layers). A
// key is added once: re-encoding a key checks it first (a changed key is
// encoded at every checkpoint). Deleted keys stay: a Bloom filter removes
// nothing, and an extra key only costs a Pebble read.
//
// The filter's memory is not counted in Config.CacheBytes: 2–3 bytes a
// key Pebble holds, against at least 16 for a cached entry. But a state
// whose keys come and go (timers, windows) adds keys for ever: a table
// drops its filter once it takes more than an eighth of CacheBytes (or
// 1 MB; see table.noteStored), and reads Pebble on every miss from then on.
type keyFilter struct {
	layers []filterLayer // the newest last
	size   int           // bytes of the layers
}

// filterLayer is a blocked Bloom filter: a key's filterProbes bits all lie
// in one block of 512 bits (a cache line), so that a lookup costs one cache
// miss a layer.
type filterLayer struct {
	blocks []filterBlock
	shift  uint // 64 - log2(len(blocks)): a key's block is h >> shift
	n, max int  // keys added, and how many the layer holds
}

type filterBlock [8]uint64

const (
	// filterFirstBlocks is the size of the first layer: 4 KB, about 2,700
	// keys, so that a small state's filter is small.
	filterFirstBlocks = 64
	filterBitsPerKey  = 16
	filterProbes      = 7 // 9 bits each from one 64-bit hash
)

// filterSeed decorrelates the filter's bits from the key's hash, whose low
// bits place it in its key group (the subtask's keys share them) and whose
// mix places it in the cache's table.
var filterSeed = rand.Uint64()

// filterHash returns the filter's hash of a key whose hash is h.
func filterHash(h uint64) uint64 { return keygroup.Mix64(h ^ filterSeed) }

// mayHold reports whether the key of filter hash h may have been added.
func (f *keyFilter) mayHold(h uint64) bool {
	probes := keygroup.Mix64(h) // independent of the block's bits
	for i := len(f.layers) - 1; i >= 0; i-- {
		if f.layers[i].has(h, probes) {
			return true
		}
	}
	return false
}

// add adds the key of filter hash h, unless it may hold it already.
func (f *keyFilter) add(h uint64) {
	if f.mayHold(h) {
		return
	}
	if len(f.layers) == 0 || f.layers[len(f.layers)-1].n >= f.layers[len(f.layers)-1].max {
		blocks := filterFirstBlocks
		if len(f.layers) > 0 {
			blocks = 2 * len(f.layers[len(f.layers)-1].blocks)
		}
		f.addLayer(blocks)
	}
	l := &f.layers[len(f.layers)-1]
	b := &l.blocks[h>>l.shift]
	probes := keygroup.Mix64(h)
	for range filterProbes {
		b[probes>>6&7] |= 1 << (probes & 63)
		probes >>= 9
	}
	l.n++
}

// reserve makes room for n more keys in the newest layer, adding one of
// at least twice the size of the newest if it lacks the room, so that n
// keys added at once (see table.fillStored) take one layer, not a series.
func (f *keyFilter) reserve(n int) {
	blocks := filterFirstBlocks
	if len(f.layers) > 0 {
		l := &f.layers[len(f.layers)-1]
		if l.max-l.n >= n {
			return
		}
		blocks = 2 * len(l.blocks)
	}
	for blocks*512/filterBitsPerKey < n {
		blocks *= 2
	}
	f.addLayer(blocks)
}

// addLayer adds an empty layer of blocks blocks (a power of two).
func (f *keyFilter) addLayer(blocks int) {
	f.size += blocks * 64
	f.layers = append(f.layers, filterLayer{
		blocks: make([]filterBlock, blocks),
		shift:  uint(64 - bits.TrailingZeros(uint(blocks))),
		max:    blocks * 512 / filterBitsPerKey,
	})
}

func (l *filterLayer) has(h, probes uint64) bool {
	b := &l.blocks[h>>l.shift]
	for range filterProbes {
		if b[probes>>6&7]&(1<<(probes&63)) == 0 {
			return false
		}
		probes >>= 9
	}
	return true
}

// bytes returns the filter's memory.
func (f *keyFilter) bytes() int { return f.size }
