package statebackend

import (
	"reflect"
	"unsafe"
)

// Cache memory accounting. The cache bound (Config.CacheBytes) is in bytes,
// over all the states of a Backend, so that a user can size it against the
// memory of a machine without knowing how many states or entries a job has.
// An entry is accounted for
//
//	2 × the size of its hash table slot (key, value and marks inline; the
//	    table is between 3/8 and 3/4 full, so a slot in use costs 1.33 to
//	    2.67 slots)
//	+ the mean encoded length of key and value, for types that hold
//	    pointers (strings, slices, maps: their heap part, which the
//	    encoding approximates), sampled whenever entries are encoded for a
//	    snapshot or read from Pebble.
//
// Counting exact heap sizes would cost a walk of each value on every write;
// the estimate costs an addition when an entry enters or leaves the cache.
// Fixed-size types (integers, floats, structs of them) are exact up to the
// fill of the hash table.

// slotFactor is how many slots an entry is accounted for.
const slotFactor = 2

// defaultHeapBytes is the heap size assumed for an entry of a pointer type
// before any has been sampled.
const defaultHeapBytes = 32

// sizeSampleWindow is how many samples the mean is taken over before older
// ones count half, so that the estimate follows values that grow.
const sizeSampleWindow = 4096

// entrySizer estimates the bytes of one table's entries.
type entrySizer struct {
	slot  int64 // slotFactor × the slot size
	heap  bool  // whether K or V hold pointers
	sum   int64 // encoded bytes sampled
	count int64
}

func newEntrySizer[K comparable, V any]() entrySizer {
	return entrySizer{
		slot: slotFactor * int64(unsafe.Sizeof(slot[K, V]{})),
		heap: hasPointers(reflect.TypeFor[K]()) || hasPointers(reflect.TypeFor[V]()),
	}
}

// per returns the bytes an entry is accounted for.
func (s *entrySizer) per() int64 {
	switch {
	case !s.heap:
		return s.slot
	case s.count == 0:
		return s.slot + defaultHeapBytes
	default:
		return s.slot + s.sum/s.count
	}
}

// sample records the encoded size of an entry (key and value) and reports
// whether the estimate should be refreshed (every 256 samples, and at the
// first).
func (s *entrySizer) sample(n int) bool {
	if !s.heap {
		return false
	}
	s.sum += int64(n)
	s.count++
	if s.count == sizeSampleWindow {
		s.sum, s.count = s.sum/2, s.count/2
	}
	return s.count == 1 || s.count&255 == 0
}

// hasPointers reports whether values of type t refer to memory outside
// themselves.
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	default:
		return true
	}
}

// sampleSize records the encoded size of one of t's entries.
func (t *table[K, V]) sampleSize(n int) {
	if t.size.sample(n) {
		t.m.setPer(t.size.per())
	}
}

// CachedBytes returns the estimated memory of the cached entries, over all
// states (see Config.CacheBytes).
func (b *Backend) CachedBytes() int64 { return b.cachedBytes }
