package manifest

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"time"

	"github.com/weirstream/weir/internal/testseed"
)

func sampleManifest() *Manifest {
	return &Manifest{
		Version:        Version,
		Job:            "job <&> \u2028 ünïcode",
		ID:             42,
		Created:        time.Date(2026, 11, 25, 19, 30, 0, 123456789, time.UTC),
		MaxParallelism: 128,
		Final:          true,
		Operators: []SubtaskState{
			{Operator: "count", Subtask: 0, Parallelism: 2, KeyedDir: "state/count/0"},
			{Operator: "src", Subtask: 1, Parallelism: 2, StateFile: "operators/src.1"},
		},
		Files: []File{
			{Path: "operators/src.1", Size: 9, CRC32C: 0xdeadbeef},
			{Path: "state/count/0/000004.sst", Size: 1 << 40, CRC32C: 0},
		},
		BytesWritten: 12345,
	}
}

func TestManifestRoundTrip(t *testing.T) {
	for _, m := range []*Manifest{sampleManifest(), {Version: Version, ID: 1}} {
		data, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(data)
		if err != nil {
			t.Fatalf("decode: %v\n%s", err, data)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip changed the manifest:\n got %+v\nwant %+v", got, m)
		}
	}
	m := sampleManifest()
	if st, ok := m.Subtask("src", 1); !ok || st.StateFile != "operators/src.1" {
		t.Fatalf("Subtask(src, 1) = %+v, %v", st, ok)
	}
	if _, ok := m.Subtask("src", 0); ok {
		t.Fatal("Subtask(src, 0) found a subtask the manifest does not have")
	}
}

func TestManifestVersionMismatch(t *testing.T) {
	m := sampleManifest()
	m.Version = Version + 1
	data, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(data); err == nil {
		t.Fatal("decoded a manifest of an unknown version")
	}
}

// TestManifestFlippedByte flips every byte of an encoded manifest: the
// result must fail with ErrCorrupt, even where JSON would read the same
// manifest (whitespace, the letter case of a field name).
func TestManifestFlippedByte(t *testing.T) {
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 3))
	want := sampleManifest()
	data, err := Encode(want)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		for _, mask := range []byte{0x01, 0x20, 0x80, byte(1 + rng.IntN(255))} {
			bad := bytes.Clone(data)
			bad[i] ^= mask
			got, err := Decode(bad)
			if err == nil {
				t.Fatalf("seed %d: byte %d (%q) ^ %#x went unnoticed (decoded to %+v)", seed, i, data[i], mask, got)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("seed %d: byte %d ^ %#x: error %v does not wrap ErrCorrupt", seed, i, mask, err)
			}
		}
	}
	for _, bad := range [][]byte{nil, data[:len(data)/2], []byte("{}"), []byte(`{"crc32c":0,"manifest":{}}`)} {
		if _, err := Decode(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decode(%q) = %v, want ErrCorrupt", bad, err)
		}
	}
}

func FuzzDecodeManifest(f *testing.F) {
	data, err := Encode(sampleManifest())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"crc32c":0,"manifest":null}`))
	f.Add([]byte(`{"crc32c":1,"manifest":{"version":1}}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			return
		}
		// What decodes must encode and decode to the same manifest.
		again, err := Encode(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := Decode(again)
		if err != nil || !sameManifest(m, m2) {
			t.Fatalf("round trip of a decoded manifest: %+v, %v; want %+v", m2, err, m)
		}
	})
}

// sameManifest compares manifests, with times compared as instants.
func sameManifest(a, b *Manifest) bool {
	if !a.Created.Equal(b.Created) {
		return false
	}
	ac, bc := *a, *b
	ac.Created, bc.Created = time.Time{}, time.Time{}
	return reflect.DeepEqual(ac, bc)
}

// TestManifestVersion1Read checks that manifests written before File.Object
// existed are still read.
func TestManifestVersion1Read(t *testing.T) {
	m := sampleManifest()
	m.Version = 1
	data, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("decode of a version 1 manifest = %+v, %v", got, err)
	}
	if m.Files[0].Key("chk-0000000042") != "chk-0000000042/operators/src.1" {
		t.Fatalf("a version 1 file is not in its checkpoint's directory: %q", m.Files[0].Key("chk-0000000042"))
	}
}
