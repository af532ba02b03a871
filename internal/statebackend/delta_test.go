package statebackend

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/weirstream/weir/internal/testseed"
)

func TestDeltaSortOrdersKeys(t *testing.T) {
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, n := range []int{0, 1, 2, 100, 5000} {
		checkDeltaSort(t, fmt.Sprintf("seed %d, n=%d", seed, n), n, func() []byte {
			switch rng.IntN(3) {
			case 0: // short keys
				key := binary.BigEndian.AppendUint16(nil, uint16(rng.IntN(128)))
				key = binary.BigEndian.AppendUint32(key, 7)
				return binary.BigEndian.AppendUint64(key, rng.Uint64()%1000)
			case 1: // long keys sharing the 24-byte sort prefix
				return append([]byte("0123456789abcdefghijklmn"), byte(rng.IntN(256)), byte(rng.IntN(256)))
			default: // prefixes of each other
				return []byte("0123456789abcdefghijklmn")[:1+rng.IntN(24)]
			}
		})
	}
}

// TestDeltaSortLongRuns sorts keys that share 14 bytes, as those of a
// namespace in a key group do, in long runs: some with lengths that make
// their zero-padded 24-byte sort prefixes tie, some longer than the prefix.
func TestDeltaSortLongRuns(t *testing.T) {
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	checkDeltaSort(t, fmt.Sprintf("seed %d", seed), 3000, func() []byte {
		key := binary.BigEndian.AppendUint16(nil, uint16(rng.IntN(2)))
		key = binary.BigEndian.AppendUint32(key, 7)
		key = appendNamespace(key, int64(rng.IntN(2)))
		switch rng.IntN(3) {
		case 0:
			return binary.BigEndian.AppendUint64(key, rng.Uint64()%5000)
		case 1: // a suffix and its zero-padded extensions tie on the prefix
			key = append(key, make([]byte, 2+rng.IntN(4))...)
			key = append(key, byte(rng.IntN(3)))
			return append(key, make([]byte, rng.IntN(3))...)
		default: // longer than 32 bytes
			key = append(key, bytes.Repeat([]byte{byte(rng.IntN(2))}, 16)...)
			return binary.BigEndian.AppendUint32(key, uint32(rng.IntN(100)))
		}
	})
}

// checkDeltaSort adds n distinct keys drawn from next to a delta, sorts it,
// and checks that its records are in byte order with no key twice.
func checkDeltaSort(t *testing.T, what string, n int, next func() []byte) {
	t.Helper()
	var d delta
	var want [][]byte
	seen := map[string]bool{}
	for len(want) < n {
		key := next()
		if seen[string(key)] {
			continue
		}
		seen[string(key)] = true
		want = append(want, key)
		d.add(key, func(b []byte) []byte { return append(b, 'v') }, false)
	}
	d.sort()
	slices.SortFunc(want, bytes.Compare)
	for i := range d.recs {
		var scratch [inlineKeyBytes]byte
		if got := d.key(&d.recs[i], &scratch); !bytes.Equal(got, want[i]) {
			t.Fatalf("%s: position %d: got key %x, want %x", what, i, got, want[i])
		}
		if i > 0 && d.sameKey(&d.recs[i-1], &d.recs[i]) {
			t.Fatalf("%s: positions %d and %d have the same key", what, i-1, i)
		}
	}
}

// TestDeltaGrowsLargeValuesByDoubling adds values larger than
// deltaHeadroom and counts the bytes copied by every reallocation of the
// delta's buffer, in grow or by append inside the value's codec. Doubling
// copies less than twice the final length in all; Go's growth of a large
// slice by a quarter copies up to five times it.
func TestDeltaGrowsLargeValuesByDoubling(t *testing.T) {
	const valueLen, values = 3 * deltaHeadroom / 2, 200
	value := bytes.Repeat([]byte{'v'}, valueLen)
	var d delta
	copied := 0
	for i := range values {
		key := binary.BigEndian.AppendUint64(nil, uint64(i))
		before, n := cap(d.buf), len(d.buf)
		d.add(key, func(dst []byte) []byte {
			if cap(dst) != before {
				copied += n // grow reallocated
			}
			n, before = len(dst), cap(dst)
			dst = append(dst, value...)
			if cap(dst) != before {
				copied += n // the codec's append reallocated
			}
			return dst
		}, false)
	}
	if final := len(d.buf); copied > 2*final {
		t.Errorf("reallocations copied %d bytes for a buffer of %d, want at most %d (doubling)", copied, final, 2*final)
	}
	for i := range d.recs {
		if got := d.value(&d.recs[i]); !bytes.Equal(got, value) {
			t.Fatalf("value %d has %d bytes, want %d", i, len(got), valueLen)
		}
	}
}
