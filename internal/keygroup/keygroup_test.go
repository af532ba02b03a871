package keygroup_test

import (
	"testing"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/state"
)

// TestHasherStable pins the hash of a few keys. Key groups are derived from
// these hashes and Pebble keys start with the key group, so a change of hash
// function would orphan every stored state: this test must never be
// "updated" without a state migration.
func TestHasherStable(t *testing.T) {
	hs := keygroup.Hasher(state.String)
	for _, tc := range []struct {
		key  string
		want uint64
	}{
		{"", 0xef46db3751d8e999}, // xxhash64 of the empty string
		{"a", 0xd24ec4f1a98c6e5b},
		{"user-42", 0x397e9d3a76af7c81},
		{"weir", 0x25cb98be5b82688e},
	} {
		if got := hs(tc.key); got != tc.want {
			t.Errorf("Hasher(state.String)(%q) = %#x, want %#x", tc.key, got, tc.want)
		}
	}
	hi := keygroup.Hasher(state.Int64)
	for _, tc := range []struct {
		key  int64
		want uint64
	}{
		{0, 0},
		{1, 0xb456bcfc34c2cb2c}, // MurmurHash3 fmix64(1)
		{42, 0x810879608e4259cc},
		{-1, 0x64b5720b4b825f21},
	} {
		if got := hi(tc.key); got != tc.want {
			t.Errorf("Hasher(state.Int64)(%d) = %#x, want %#x", tc.key, got, tc.want)
		}
	}
	// Every integer type hashes the same value alike.
	if got := keygroup.Hasher(state.Int)(42); got != 0x810879608e4259cc {
		t.Errorf("Hasher(state.Int)(42) = %#x", got)
	}
	if got := keygroup.Hasher(state.Uint64)(42); got != 0x810879608e4259cc {
		t.Errorf("Hasher(state.Uint64)(42) = %#x", got)
	}
	if got := keygroup.Hasher(state.Int32)(-7); got != 0x42de8e21f5fd8efe {
		t.Errorf("Hasher(state.Int32)(-7) = %#x", got)
	}
	// Other types hash their encoding.
	if got := keygroup.Hasher(state.Bytes)([]byte("abc")); got != 0x44bc2cf5ad770999 {
		t.Errorf("Hasher(state.Bytes)(abc) = %#x", got)
	}
	if got := keygroup.Hasher(state.Float64)(1.5); got != 0x6c9ef7e1dd6b8924 {
		t.Errorf("Hasher(state.Float64)(1.5) = %#x", got)
	}
	type point struct {
		A int
		B string
	}
	hj := keygroup.Hasher(state.JSON[point]())
	if got := hj(point{1, "x"}); got != 0xa3d18d400ffb8c63 {
		t.Errorf("Hasher(JSON)({1 x}) = %#x", got)
	}
	// The reused buffer must not leak one key into the next.
	if a, b := hj(point{1, "x"}), hj(point{1, "x"}); a != b {
		t.Errorf("Hasher(JSON) not deterministic: %#x then %#x", a, b)
	}
	if got := keygroup.Of(hs("user-42"), keygroup.DefaultMaxParallelism); got != 1 {
		t.Errorf("key group of %q = %d, want 1", "user-42", got)
	}
}

func TestHasherWithoutCodecPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Hasher of a struct type without codec did not panic")
		}
	}()
	keygroup.Hasher[struct{ A int }](nil)
}

// TestKeyGroupAssignment checks, for every (maxParallelism, parallelism) up
// to 128, that each key group is owned by exactly one subtask, that
// Range is the inverse of SubtaskOf, and that the ranges are
// contiguous and cover [0, maxParallelism) in subtask order.
func TestKeyGroupAssignment(t *testing.T) {
	for maxP := 1; maxP <= 128; maxP++ {
		for p := 1; p <= maxP; p++ {
			next := 0
			for s := range p {
				first, end := keygroup.Range(s, maxP, p)
				if first != next {
					t.Fatalf("max %d, parallelism %d: subtask %d starts at %d, previous ended at %d", maxP, p, s, first, next)
				}
				if end <= first {
					t.Fatalf("max %d, parallelism %d: subtask %d owns no key group [%d, %d)", maxP, p, s, first, end)
				}
				for kg := first; kg < end; kg++ {
					if got := keygroup.SubtaskOf(kg, maxP, p); got != s {
						t.Fatalf("max %d, parallelism %d: key group %d in range of subtask %d but SubtaskOf says %d", maxP, p, kg, s, got)
					}
				}
				next = end
			}
			if next != maxP {
				t.Fatalf("max %d, parallelism %d: ranges end at %d", maxP, p, next)
			}
		}
	}
	// Of covers [0, max) and stays in range for any hash.
	for _, h := range []uint64{0, 1, 127, 128, 1<<64 - 1} {
		for _, maxP := range []int{1, 7, 128, 1 << 15} {
			if kg := keygroup.Of(h, maxP); kg < 0 || kg >= maxP {
				t.Fatalf("Of(%d, %d) = %d out of range", h, maxP, kg)
			}
		}
	}
}
