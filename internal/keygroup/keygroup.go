// Package keygroup partitions keyed state: every key of a keyed stream
// belongs to a key group, a stable hash of the key modulo the job's maximum
// parallelism, and each subtask of a keyed operator owns a contiguous range
// of key groups. Key groups, not subtasks, are the unit of state ownership,
// so a restore with another parallelism hands ranges to other subtasks.
// The runtime routes records with it, package state stores entries under
// their key group, and checkpoint inspection reads ranges back.
package keygroup

import (
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// DefaultMaxParallelism is the number of key groups of a job unless
// configured otherwise. It bounds the parallelism a keyed operator can ever be
// rescaled to, and it must stay the same for the lifetime of a job's state.
const DefaultMaxParallelism = 128

// Of returns the key group of a key hash.
func Of(hash uint64, maxParallelism int) int {
	return int(hash % uint64(maxParallelism))
}

// SubtaskOf returns the subtask that owns keyGroup when a keyed operator runs
// with the given parallelism: subtasks own contiguous ranges of key groups.
func SubtaskOf(keyGroup, maxParallelism, parallelism int) int {
	return keyGroup * parallelism / maxParallelism
}

// Range returns the key groups [first, end) owned by subtask.
func Range(subtask, maxParallelism, parallelism int) (first, end int) {
	// Inverse of SubtaskOf: the smallest kg with kg*p/max >= subtask.
	first = (subtask*maxParallelism + parallelism - 1) / parallelism
	end = ((subtask+1)*maxParallelism + parallelism - 1) / parallelism
	return first, end
}

// Encoder appends the encoding of a key; every state codec is one.
type Encoder[K any] interface {
	Append(dst []byte, k K) []byte
}

// Hasher returns a hash function for keys of type K that is stable across
// processes and Go versions (unlike hash/maphash), so that a key lands in the
// same key group after a restart. Fixed-size keys are hashed without
// allocation; other keys are hashed through their encoding, which codec
// must then give.
func Hasher[K any](codec Encoder[K]) func(K) uint64 {
	var zero K
	switch any(zero).(type) {
	case string:
		return func(k K) uint64 { return xxhash.Sum64String(any(k).(string)) }
	case int64:
		return func(k K) uint64 { return Mix64(uint64(any(k).(int64))) }
	case int:
		return func(k K) uint64 { return Mix64(uint64(any(k).(int))) }
	case uint64:
		return func(k K) uint64 { return Mix64(any(k).(uint64)) }
	case int32:
		return func(k K) uint64 { return Mix64(uint64(any(k).(int32))) }
	case uint32:
		return func(k K) uint64 { return Mix64(uint64(any(k).(uint32))) }
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

// Mix64 is the finalizer of MurmurHash3: it spreads integer keys (which are
// often sequential) evenly over key groups and hash table slots.
func Mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
