package state

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestDeltaSortOrdersKeys(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, n := range []int{0, 1, 2, 100, 5000} {
		var d delta
		var want [][]byte
		seen := map[string]bool{}
		for len(want) < n {
			var key []byte
			switch rng.IntN(3) {
			case 0: // short keys
				key = binary.BigEndian.AppendUint16(nil, uint16(rng.IntN(128)))
				key = binary.BigEndian.AppendUint32(key, 7)
				key = binary.BigEndian.AppendUint64(key, rng.Uint64()%1000)
			case 1: // long keys sharing the 24-byte sort prefix
				key = append([]byte("0123456789abcdefghijklmn"), byte(rng.IntN(256)), byte(rng.IntN(256)))
			default: // prefixes of each other
				key = []byte("0123456789abcdefghijklmn")[:1+rng.IntN(24)]
			}
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
				t.Fatalf("seed %d, n=%d: position %d: got key %x, want %x", seed, n, i, got, want[i])
			}
		}
	}
}
