package state

import (
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// DefaultMaxParallelism is the number of key groups of a job unless
// configured otherwise. It bounds the parallelism a keyed operator can ever be
// rescaled to, and it must stay the same for the lifetime of a job's state.
const DefaultMaxParallelism = 128

// KeyGroupOf returns the key group of a key hash.
func KeyGroupOf(hash uint64, maxParallelism int) int {
	return int(hash % uint64(maxParallelism))
}

// SubtaskOf returns the subtask that owns keyGroup when a keyed operator runs
// with the given parallelism: subtasks own contiguous ranges of key groups.
func SubtaskOf(keyGroup, maxParallelism, parallelism int) int {
	return keyGroup * parallelism / maxParallelism
}

// KeyGroupRange returns the key groups [first, end) owned by subtask.
func KeyGroupRange(subtask, maxParallelism, parallelism int) (first, end int) {
	// Inverse of SubtaskOf: the smallest kg with kg*p/max >= subtask.
	first = (subtask*maxParallelism + parallelism - 1) / parallelism
	end = ((subtask+1)*maxParallelism + parallelism - 1) / parallelism
	return first, end
}

// Hasher returns a hash function for keys of type K that is stable across
// processes and Go versions (unlike hash/maphash), so that a key lands in the
// same key group after a restart. Fixed-size keys are hashed without
// allocation; other keys are hashed through their codec.
func Hasher[K any](codec Codec[K]) func(K) uint64 {
	var zero K
	switch any(zero).(type) {
	case string:
		return func(k K) uint64 { return xxhash.Sum64String(any(k).(string)) }
	case int64:
		return func(k K) uint64 { return mix64(uint64(any(k).(int64))) }
	case int:
		return func(k K) uint64 { return mix64(uint64(any(k).(int))) }
	case uint64:
		return func(k K) uint64 { return mix64(any(k).(uint64)) }
	case int32:
		return func(k K) uint64 { return mix64(uint64(any(k).(int32))) }
	case uint32:
		return func(k K) uint64 { return mix64(uint64(any(k).(uint32))) }
	}
	if codec == nil {
		panic(fmt.Sprintf("state: no codec to hash keys of type %T", zero))
	}
	var buf []byte
	return func(k K) uint64 {
		// NB: buf is reused across calls; a hasher belongs to one goroutine.
		buf = codec.Append(buf[:0], k)
		return xxhash.Sum64(buf)
	}
}

// mix64 is the finalizer of MurmurHash3: it spreads integer keys (which are
// often sequential) evenly over key groups.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// CodecFor returns the built-in codec for the common key and value types, or
// nil when T needs a user codec.
func CodecFor[T any]() Codec[T] {
	var zero T
	var c any
	switch any(zero).(type) {
	case string:
		c = String
	case []byte:
		c = Bytes
	case int64:
		c = Int64
	case int:
		c = Int
	case uint64:
		c = Uint64
	case int32:
		c = Int32
	case float64:
		c = Float64
	case bool:
		c = Bool
	default:
		return nil
	}
	return c.(Codec[T])
}
