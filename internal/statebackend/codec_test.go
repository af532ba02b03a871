package statebackend

import (
	"bytes"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/testseed"
)

// The built-in codecs are tested in package state; these are the codecs
// of the implementation's own values.

func TestMapCodecCorruptInput(t *testing.T) {
	corrupt := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, ErrCorruptValue) {
			t.Errorf("%s: error %v, want ErrCorruptValue", name, err)
		}
	}
	mc := mapCodec[string, int64]{keys: String, values: Int64}
	good := mc.Append(nil, map[string]int64{"k": 1, strings.Repeat("long", 50): 2})
	for _, tc := range []struct {
		name string
		src  []byte
	}{
		{"empty", nil},
		{"unterminated count", []byte{0x80}},
		{"count beyond input", []byte{0x7f, 0, 0}},
		{"missing value", []byte{1, 1, 'k'}},
		{"key length beyond input", []byte{1, 5, 'k'}},
		{"value of wrong width", []byte{1, 1, 'k', 2, 0, 1}},
		{"trailing bytes", append(append([]byte(nil), good...), 0)},
		{"truncated", good[:len(good)-1]},
		{"huge length prefix", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	} {
		_, err := mc.Decode(tc.src)
		corrupt("map: "+tc.name, err)
	}
}

func TestMapCodecRoundTrip(t *testing.T) {
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	mc := mapCodec[string, []byte]{keys: String, values: Bytes}
	// Lengths around the one-byte/two-byte/three-byte uvarint boundaries of
	// AppendPrefixed.
	lengths := []int{0, 1, 127, 128, 129, 255, 300, 16383, 16384, 70000}
	for _, kl := range lengths {
		for _, vl := range lengths {
			m := map[string][]byte{}
			for i := range 1 + rng.IntN(3) {
				k := strings.Repeat("k", kl) + string(rune('a'+i))
				v := make([]byte, vl)
				for j := range v {
					v[j] = byte(rng.Uint32())
				}
				m[k] = v
			}
			got, err := mc.Decode(mc.Append([]byte(nil), m))
			if err != nil {
				t.Fatalf("seed %d: key len %d, value len %d: %v", seed, kl, vl, err)
			}
			if !maps.EqualFunc(got, m, bytes.Equal) {
				t.Fatalf("seed %d: key len %d, value len %d: map changed in round trip", seed, kl, vl)
			}
		}
	}
	// The header of a long field is a multi-byte uvarint.
	enc := mc.Append(nil, map[string][]byte{"k": bytes.Repeat([]byte{9}, 200)})
	want := append([]byte{1, 1, 'k', 0xc8, 0x01}, bytes.Repeat([]byte{9}, 200)...)
	if !bytes.Equal(enc, want) {
		t.Fatalf("encoding of a 200-byte value:\n got %x\nwant %x", enc, want)
	}
	// Empty and nil maps.
	for _, m := range []map[string][]byte{nil, {}} {
		got, err := mc.Decode(mc.Append(nil, m))
		if err != nil || len(got) != 0 {
			t.Fatalf("empty map: got %v, %v", got, err)
		}
	}
	// Nested fixed-width codecs keep their errors.
	ic := mapCodec[int32, bool]{keys: Int32, values: Bool}
	m := map[int32]bool{-1: true, 0: false, math.MaxInt32: true}
	if got, err := ic.Decode(ic.Append(nil, m)); err != nil || !maps.Equal(got, m) {
		t.Fatalf("int32→bool map: got %v, %v; want %v", got, err, m)
	}
}

func FuzzMapCodecDecode(f *testing.F) {
	mc := mapCodec[string, int64]{keys: String, values: Int64}
	f.Add(mc.Append(nil, map[string]int64{"a": 1, strings.Repeat("b", 200): -1}))
	f.Add([]byte{})
	f.Add([]byte{0x80, 0x80})
	f.Add([]byte{2, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, src []byte) {
		m, err := mc.Decode(src)
		if err != nil {
			if !errors.Is(err, ErrCorruptValue) {
				t.Fatalf("error %v does not wrap ErrCorruptValue", err)
			}
			return
		}
		// Whatever decodes must survive a round trip.
		again, err := mc.Decode(mc.Append(nil, m))
		if err != nil || !maps.Equal(again, m) {
			t.Fatalf("re-encoding %v: got %v, %v", m, again, err)
		}
	})
}
