package statebackend

import (
	"math/rand/v2"
	"testing"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/testseed"
)

// TestHashTable checks the hash table against a Go map through random sets,
// removals (which shift entries back) and growth, with a hash that gives
// few distinct homes so that probe sequences overlap and wrap around.
func TestHashTable(t *testing.T) {
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, tc := range []struct {
		name string
		hash func(uint64) uint64
	}{
		{"spread", keygroup.Mix64},
		{"clustered", func(k uint64) uint64 { return keygroup.Mix64(k % 5) }},
		{"one-home", func(uint64) uint64 { return 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hashTable[uint64, int64]{hash: tc.hash}
			model := map[uint64]int64{}
			for step := range 20000 {
				k := rng.Uint64N(300)
				switch op := rng.IntN(10); {
				case op < 6:
					v := rng.Int64()
					h.set(k, entry[int64]{val: v})
					model[k] = v
				case op < 9:
					h.remove(k)
					delete(model, k)
				default:
					if rng.IntN(50) == 0 {
						h.reset()
						clear(model)
					}
				}
				if step%97 != 0 {
					continue
				}
				if h.len() != len(model) {
					t.Fatalf("seed %d step %d: len %d, want %d", seed, step, h.len(), len(model))
				}
				for k := range uint64(300) {
					e, ok := h.get(k)
					want, wantOK := model[k]
					if ok != wantOK || ok && (e.val != want || e.mark&occupied == 0) {
						t.Fatalf("seed %d step %d: get(%d) = %v, %v; want %v, %v", seed, step, k, e.val, ok, want, wantOK)
					}
				}
				used := 0
				for i := range h.slots {
					if h.used(i) {
						used++
					}
				}
				if used != len(model) {
					t.Fatalf("seed %d step %d: %d slots in use, want %d", seed, step, used, len(model))
				}
			}
		})
	}
}

// TestHashTableLarge grows a table past the size at which its slots are
// advised to use huge pages, and checks every entry survives the moves.
func TestHashTableLarge(t *testing.T) {
	h := hashTable[uint64, int64]{hash: keygroup.Mix64}
	const n = 300_000 // 2^19 slots of 24 bytes: 12 MiB
	for k := range uint64(n) {
		h.set(k, entry[int64]{val: int64(k)})
	}
	if h.len() != n || h.grown < 10 {
		t.Fatalf("len %d after %d growths, want %d after more than 10", h.len(), h.grown, n)
	}
	for k := range uint64(n + 10) {
		e, ok := h.get(k)
		if ok != (k < n) || ok && e.val != int64(k) {
			t.Fatalf("get(%d) = %d, %v", k, e.val, ok)
		}
	}
}

// TestHashTableResistsCraftedKeys inserts integer keys crafted (mix64 is
// invertible) so that, without the per-process seed, their homes would all
// be slot 0 and every probe would walk one cluster of all of them.
func TestHashTableResistsCraftedKeys(t *testing.T) {
	h := hashTable[uint64, int64]{hash: keygroup.Mix64}
	const n = 10_000
	for i := range uint64(n) {
		k := unmix64(unmix64(i)) // keygroup.Mix64(keygroup.Mix64(k) ^ 0) == i < 2^14
		if keygroup.Mix64(keygroup.Mix64(k)) != i {
			t.Fatalf("unmix64 is not mix64's inverse at %d", i)
		}
		h.set(k, entry[int64]{val: 1})
	}
	mask, longest := len(h.slots)-1, 0
	for i := range h.slots {
		if h.used(i) {
			longest = max(longest, (i-h.home(h.slots[i].k))&mask)
		}
	}
	if longest > n/10 {
		t.Fatalf("an entry sits %d slots after its home: crafted keys cluster", longest)
	}
}

// unmix64 inverts mix64.
func unmix64(x uint64) uint64 {
	x ^= x >> 33
	x *= inverse64(0xc4ceb9fe1a85ec53)
	x ^= x >> 33
	x *= inverse64(0xff51afd7ed558ccd)
	x ^= x >> 33
	return x
}

// inverse64 returns the multiplicative inverse of odd a modulo 2^64
// (Newton's iteration doubles the correct low bits each step).
func inverse64(a uint64) uint64 {
	x := a // correct to 3 bits for odd a
	for range 5 {
		x *= 2 - a*x
	}
	return x
}
