package state

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// roundTrip encodes v after a non-empty prefix (Append must append, not
// overwrite) and decodes it back.
func roundTrip[T any](t *testing.T, c Codec[T], v T) T {
	t.Helper()
	prefix := []byte("pre")
	enc := c.Append(append([]byte(nil), prefix...), v)
	if !bytes.HasPrefix(enc, prefix) {
		t.Fatalf("Append(%v) clobbered the destination: %x", v, enc)
	}
	src := append([]byte(nil), enc[len(prefix):]...)
	got, err := c.Decode(src)
	if err != nil {
		t.Fatalf("Decode(Append(%v)) = %v", v, err)
	}
	// Decode must not retain src.
	for i := range src {
		src[i] ^= 0xff
	}
	return got
}

func TestCodecRoundTrip(t *testing.T) {
	t.Run("string", func(t *testing.T) {
		for _, v := range []string{"", "a", "héllo", strings.Repeat("x", 1000), "\x00\xff"} {
			if got := roundTrip(t, String, v); got != v {
				t.Fatalf("got %q, want %q", got, v)
			}
		}
	})
	t.Run("bytes", func(t *testing.T) {
		for _, v := range [][]byte{{}, {0}, []byte("abc"), bytes.Repeat([]byte{7}, 300)} {
			if got := roundTrip(t, Bytes, v); !bytes.Equal(got, v) {
				t.Fatalf("got %x, want %x", got, v)
			}
		}
	})
	t.Run("int64", func(t *testing.T) {
		for _, v := range []int64{0, 1, -1, math.MinInt64, math.MaxInt64, 1 << 40} {
			if got := roundTrip(t, Int64, v); got != v {
				t.Fatalf("got %d, want %d", got, v)
			}
		}
	})
	t.Run("int", func(t *testing.T) {
		for _, v := range []int{0, 1, -1, math.MinInt, math.MaxInt} {
			if got := roundTrip(t, Int, v); got != v {
				t.Fatalf("got %d, want %d", got, v)
			}
		}
	})
	t.Run("uint64", func(t *testing.T) {
		for _, v := range []uint64{0, 1, math.MaxUint64, 1 << 63} {
			if got := roundTrip(t, Uint64, v); got != v {
				t.Fatalf("got %d, want %d", got, v)
			}
		}
	})
	t.Run("int32", func(t *testing.T) {
		for _, v := range []int32{0, 1, -1, math.MinInt32, math.MaxInt32} {
			if got := roundTrip(t, Int32, v); got != v {
				t.Fatalf("got %d, want %d", got, v)
			}
		}
	})
	t.Run("float64", func(t *testing.T) {
		for _, v := range []float64{0, math.Copysign(0, -1), 1.5, -math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1), math.Inf(-1)} {
			if got := roundTrip(t, Float64, v); math.Float64bits(got) != math.Float64bits(v) {
				t.Fatalf("got %v, want %v", got, v)
			}
		}
		if got := roundTrip(t, Float64, math.NaN()); !math.IsNaN(got) {
			t.Fatalf("NaN decoded as %v", got)
		}
	})
	t.Run("bool", func(t *testing.T) {
		for _, v := range []bool{false, true} {
			if got := roundTrip(t, Bool, v); got != v {
				t.Fatalf("got %v, want %v", got, v)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		type rec struct {
			A int
			B string
			C []float64
		}
		c := JSON[rec]()
		for _, v := range []rec{{}, {A: -3, B: "x<&>", C: []float64{1, 2.5}}} {
			if got := roundTrip(t, c, v); !reflect.DeepEqual(got, v) {
				t.Fatalf("got %+v, want %+v", got, v)
			}
		}
	})
}

// TestFixedWidthEncoding pins the byte layout of the integer codecs: stored
// state written by one version must be readable by the next, and big-endian
// order keeps integer keys sorted in Pebble.
func TestFixedWidthEncoding(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want []byte
	}{
		{"int64 1", Int64.Append(nil, 1), []byte{0, 0, 0, 0, 0, 0, 0, 1}},
		{"int64 -2", Int64.Append(nil, -2), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}},
		{"int 258", Int.Append(nil, 258), []byte{0, 0, 0, 0, 0, 0, 1, 2}},
		{"uint64 max", Uint64.Append(nil, math.MaxUint64), bytes.Repeat([]byte{0xff}, 8)},
		{"int32 -1", Int32.Append(nil, -1), []byte{0xff, 0xff, 0xff, 0xff}},
		{"int32 0x01020304", Int32.Append(nil, 0x01020304), []byte{1, 2, 3, 4}},
		{"float64 1", Float64.Append(nil, 1), []byte{0x3f, 0xf0, 0, 0, 0, 0, 0, 0}},
		{"bool true", Bool.Append(nil, true), []byte{1}},
		{"bool false", Bool.Append(nil, false), []byte{0}},
	} {
		if !bytes.Equal(tc.got, tc.want) {
			t.Errorf("%s: encoded %x, want %x", tc.name, tc.got, tc.want)
		}
	}
}

func TestCodecCorruptInput(t *testing.T) {
	corrupt := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, ErrCorruptValue) {
			t.Errorf("%s: error %v, want ErrCorruptValue", name, err)
		}
	}
	for _, n := range []int{0, 1, 7, 9, 16} {
		b := make([]byte, n)
		_, err := Int64.Decode(b)
		corrupt("int64", err)
		_, err = Int.Decode(b)
		corrupt("int", err)
		_, err = Uint64.Decode(b)
		corrupt("uint64", err)
		_, err = Float64.Decode(b)
		corrupt("float64", err)
	}
	for _, n := range []int{0, 3, 5, 8} {
		_, err := Int32.Decode(make([]byte, n))
		corrupt("int32", err)
	}
	for _, n := range []int{0, 2} {
		_, err := Bool.Decode(make([]byte, n))
		corrupt("bool", err)
	}
	_, err := JSON[struct{ A int }]().Decode([]byte(`{"A":`))
	corrupt("json truncated", err)
	_, err = JSON[struct{ A int }]().Decode([]byte(`{"A":"x"}`))
	corrupt("json wrong type", err)
}

func FuzzFixedWidthDecode(f *testing.F) {
	for _, n := range []int{0, 1, 4, 8, 9} {
		f.Add(make([]byte, n))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		check := func(name string, width int, err error) {
			if (len(src) == width) != (err == nil) {
				t.Fatalf("%s.Decode(%x): err %v", name, src, err)
			}
			if err != nil && !errors.Is(err, ErrCorruptValue) {
				t.Fatalf("%s: error %v does not wrap ErrCorruptValue", name, err)
			}
		}
		i64, err := Int64.Decode(src)
		check("Int64", 8, err)
		if err == nil && !bytes.Equal(Int64.Append(nil, i64), src) {
			t.Fatalf("Int64 round trip of %x", src)
		}
		_, err = Int.Decode(src)
		check("Int", 8, err)
		_, err = Uint64.Decode(src)
		check("Uint64", 8, err)
		f64, err := Float64.Decode(src)
		check("Float64", 8, err)
		if err == nil && !bytes.Equal(Float64.Append(nil, f64), src) {
			t.Fatalf("Float64 round trip of %x", src)
		}
		i32, err := Int32.Decode(src)
		check("Int32", 4, err)
		if err == nil && !bytes.Equal(Int32.Append(nil, i32), src) {
			t.Fatalf("Int32 round trip of %x", src)
		}
		_, err = Bool.Decode(src)
		check("Bool", 1, err)
	})
}
