package statebackend

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"testing"
	"unsafe"

	"github.com/cockroachdb/pebble/v2/vfs"

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

// TestDeltaGrowsWithoutCopying adds values larger than deltaHeadroom and
// counts the bytes copied by every reallocation of the delta's buffer, in
// grow or by append inside the value's codec. Chunks are never copied; a
// single buffer grown by doubling copied up to twice the final length in
// all, and Go's growth of a large slice by a quarter up to five times it.
func TestDeltaGrowsWithoutCopying(t *testing.T) {
	const valueLen, values = 3 * deltaHeadroom / 2, 200
	value := bytes.Repeat([]byte{'v'}, valueLen)
	var d delta
	copied, total := 0, 0
	for i := range values {
		key := binary.BigEndian.AppendUint64(nil, uint64(i))
		first := unsafe.SliceData(d.buf)
		d.add(key, func(dst []byte) []byte {
			if unsafe.SliceData(dst) != first {
				copied += len(dst) - len(key) // grow moved what buf held
			}
			before := unsafe.SliceData(dst)
			n := len(dst)
			dst = append(dst, value...)
			if unsafe.SliceData(dst) != before {
				copied += n // the codec's append reallocated
			}
			return dst
		}, false)
		total += len(key) + valueLen
	}
	// The first value overflows the first chunk inside the codec (its size
	// is not known yet): that one copy of a key and less than a chunk.
	if copied > 2*deltaHeadroom {
		t.Errorf("reallocations copied %d bytes of %d added, want none past the first chunk", copied, total)
	}
	for i := range d.recs {
		if got := d.value(&d.recs[i]); !bytes.Equal(got, value) {
			t.Fatalf("value %d has %d bytes, want %d", i, len(got), valueLen)
		}
	}
	held := 0
	for _, c := range d.chunks {
		held += cap(c)
	}
	if held > 3*total {
		t.Errorf("chunks hold %d bytes for %d added, want at most three times", held, total)
	}
}

// TestDeltaRecycledKeepsChunks refills a reset delta with the changes it
// held: its chunks are reused, nothing is allocated for the bytes, and the
// records read back what was added the second time.
func TestDeltaRecycledKeepsChunks(t *testing.T) {
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 3))
	var lens []int
	for range 3000 {
		lens = append(lens, 1+rng.IntN(3000))
	}
	var d delta
	fill := func(round byte) {
		for i, n := range lens {
			key := binary.BigEndian.AppendUint64(nil, uint64(i))
			d.add(key, func(dst []byte) []byte {
				for j := range n {
					dst = append(dst, round+byte(j))
				}
				return dst
			}, false)
		}
	}
	fill(0)
	d.reset()
	var chunks []*byte
	for _, c := range d.chunks {
		chunks = append(chunks, unsafe.SliceData(c))
	}
	fill(1)
	for i, c := range d.chunks {
		if i >= len(chunks) || unsafe.SliceData(c) != chunks[i] {
			t.Fatalf("seed %d: chunk %d of %d is new, want the %d kept ones reused", seed, i, len(d.chunks), len(chunks))
		}
	}
	for i := range d.recs {
		got := d.value(&d.recs[i])
		if len(got) != lens[i] || got[0] != 1 || got[len(got)-1] != byte(1+len(got)-1) {
			t.Fatalf("seed %d: value %d: %d bytes starting %d, want %d starting 1", seed, i, len(got), got[0], lens[i])
		}
	}
}

func TestDeltaRecordSize(t *testing.T) {
	// The records are what the radix sort moves: the chunk index must fit
	// in the padding.
	if n := unsafe.Sizeof(deltaRec{}); n != 48 {
		t.Errorf("a delta record is %d bytes, want 48", n)
	}
}

// writeCountingFile is a vfs.File that counts the writes it is asked for.
type writeCountingFile struct {
	vfs.File
	writes int
}

func (f *writeCountingFile) Write(p []byte) (int, error) {
	f.writes++
	return f.File.Write(p)
}

// TestSSTWritableBuffers writes an sstable's worth of 4 KB blocks, as the
// sstable writer hands them over, and checks that the file sees a write
// per sstWriteBuffer bytes, not one per block, and holds every byte.
func TestSSTWritableBuffers(t *testing.T) {
	fs := vfs.NewMem()
	f, err := fs.Create("t.sst", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	cf := &writeCountingFile{File: f}
	w := newSSTWritable(cf, sstWriteBuffer)
	const block, blocks = 4 << 10, 1000
	var want []byte
	for i := range blocks {
		p := bytes.Repeat([]byte{byte(i)}, block)
		want = append(want, p...)
		if err := w.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if max := block*blocks/sstWriteBuffer + 1; cf.writes > max {
		t.Errorf("%d writes for %d blocks, want at most %d", cf.writes, blocks, max)
	}
	r, err := fs.Open("t.sst")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the file holds %d bytes, not the %d written", len(got), len(want))
	}
}

// TestDeltaSSTBufferFitsTable writes the sstable of a delta of two changes
// and checks that doing so allocates far less than sstWriteBuffer (the
// write buffer fits the table, which it holds whole), and that a delta of
// more than sstWriteBuffer bytes still gets the full buffer.
func TestDeltaSSTBufferFitsTable(t *testing.T) {
	opts := dbOptions(t.TempDir(), nil, slog.New(slog.DiscardHandler))
	wopts := opts.MakeWriterOptions(0, opts.FormatMajorVersion.MaxTableFormat())
	var d delta
	d.add([]byte("k1"), func(dst []byte) []byte { return append(dst, 1) }, false)
	d.add(bytes.Repeat([]byte{'k'}, 40), func(dst []byte) []byte { return append(dst, bytes.Repeat([]byte{'v'}, 40)...) }, false)
	d.sort()
	path := filepath.Join(t.TempDir(), "small.sst")
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	if err := d.writeSST(path, wopts); err != nil {
		t.Fatal(err)
	}
	goruntime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > sstWriteBuffer/4 {
		t.Errorf("writing the sstable of 2 changes allocated %d bytes, want at most %d", got, sstWriteBuffer/4)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if buf := d.sstBuffer(); info.Size() > int64(buf) {
		t.Errorf("the sstable has %d bytes, more than its write buffer of %d", info.Size(), buf)
	}

	var big delta
	value := bytes.Repeat([]byte{'v'}, 1<<10)
	for i := range sstWriteBuffer/len(value) + 10 {
		big.add(binary.BigEndian.AppendUint64(nil, uint64(i)), func(dst []byte) []byte { return append(dst, value...) }, false)
	}
	if got := big.sstBuffer(); got != sstWriteBuffer {
		t.Errorf("a delta of %d values of %d bytes gets a write buffer of %d bytes, want %d", len(big.recs), len(value), got, sstWriteBuffer)
	}
}
