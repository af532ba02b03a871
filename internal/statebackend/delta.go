package statebackend

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// delta is the encoded changes of one epoch. Writing it as a sorted sstable
// and ingesting that is much cheaper than applying a batch: Pebble would sort
// the batch with byte comparisons and then flush it through its memtable.
type delta struct {
	// chunks hold the keys and values, back to back; buf is chunks[cur],
	// the one changes are appended to (see grow).
	chunks [][]byte
	cur    int
	buf    []byte
	recs   []deltaRec
	tmp    []deltaRec // scratch for sorting
	// spans are range deletions [start, end), back to back in spanBuf;
	// they delete what earlier epochs wrote (not the points of this delta,
	// which share their sequence number when ingested).
	spans   []deltaSpan
	spanBuf []byte
	// touched is the sum of the bytes touchRecs read, which keeps the
	// compiler from dropping its loads.
	touched byte
	// maxValue is the length of the largest value added, kept by reset:
	// a recycled delta meets the same states again (see grow).
	maxValue int
}

// deltaSpan is a range deletion: spanBuf[off:mid] is its start, and
// spanBuf[mid:end] its end.
type deltaSpan struct{ off, mid, end uint32 }

// deltaRec is one change. prefix holds the first 24 bytes of the key,
// big-endian and zero-padded, so that most comparisons while sorting are
// integer comparisons; small keys and values are held entirely in the record
// (the key in prefix, the value in small), so that writing the sorted records
// does not jump around delta.buf, where larger ones are. 24 bytes hold a
// key group, a state id, a namespace and an 8-byte key.
type deltaRec struct {
	prefix  [3]uint64
	small   [8]byte
	off     uint32 // in delta.chunks[chunk], unless inline
	klen    uint32
	vlen    uint32
	chunk   uint16 // (fits the record's padding: 48 bytes as without it)
	deleted bool
	// merge marks a merge operand (the elements a List appended in the
	// epoch), which Pebble's default merger concatenates with what it
	// holds, instead of a Set that replaces it.
	merge bool
}

const inlineKeyBytes = 24

func (r *deltaRec) inline() bool { return r.klen <= inlineKeyBytes && r.vlen <= 8 }

func (d *delta) reset() {
	for i := range d.chunks {
		d.chunks[i] = d.chunks[i][:0]
	}
	d.cur, d.buf = 0, nil
	if len(d.chunks) > 0 {
		d.buf = d.chunks[0]
	}
	d.recs = d.recs[:0]
	d.spans = d.spans[:0]
	d.spanBuf = d.spanBuf[:0]
}

// deltaHeadroom is the least free room in a delta's chunk below which
// adding a change first moves on to the next chunk.
const deltaHeadroom = 64 << 10

// maxDeltaChunk caps the size a delta's chunks grow to (values larger than
// half of it get chunks of their own size, see grow).
const maxDeltaChunk = 8 << 20

// grow moves on to a new chunk when the current one is about full. The
// delta's bytes are kept in chunks, doubling in size up to maxDeltaChunk,
// that are never copied: a single buffer grown by doubling copied all it
// held at every growth, into fresh pages (q20, a join keeping every bid of
// an auction in one value, wrote deltas of 133 and 140 MB at 2M events:
// that copy was 0.40 s of memmove in a CPU profile of 3.04 s). A recycled
// delta keeps its chunks (see reset) and fills them again.
//
// NB: the room kept free is at least twice the largest value seen, not
// only deltaHeadroom: a value's codec appends to the chunk, and a value
// larger than the room left overflows it there, where Go reallocates the
// chunk, growing a large slice by a quarter at a time (q20: values up to
// 119 KB; that growth was runtime.growslice under the codec, 0.79 s of
// 4.09 s of the CPU profile).
func (d *delta) grow() {
	if room := max(deltaHeadroom, 2*d.maxValue); cap(d.buf)-len(d.buf) < room {
		d.nextChunk(room)
	}
	if len(d.recs) == cap(d.recs) {
		// A large delta's records and chunks ask for huge pages: their
		// memory is fresh from the OS at a job's first large checkpoints,
		// and faulting it in 4 KiB at a time was a tenth of Nexmark q18's
		// CPU (its one checkpoint, 1.4M records: engine CPU 1.74 → 1.57 s,
		// page faults 37K → 14K, medians of 4 interleaved runs).
		recs := make([]deltaRec, len(d.recs), 2*len(d.recs)+256)
		adviseHugePages(recs[:cap(recs)])
		copy(recs, d.recs)
		d.recs = recs
	}
}

// nextChunk makes buf a chunk with at least room bytes free: the next kept
// chunk if it has them, else a new one.
func (d *delta) nextChunk(room int) {
	if len(d.chunks) > 0 {
		d.chunks[d.cur] = d.buf
		if len(d.buf) == 0 { // an unused chunk too small: replace it
			d.chunks = d.chunks[:d.cur]
		} else {
			d.cur++
		}
	}
	if d.cur < len(d.chunks) && cap(d.chunks[d.cur]) >= room {
		d.buf = d.chunks[d.cur]
		return
	}
	size := 2 * deltaHeadroom
	if d.cur > 0 {
		size = min(2*cap(d.chunks[d.cur-1]), maxDeltaChunk)
	}
	if d.cur >= 1<<16-1 {
		panic("state: a delta of more than 65535 chunks")
	}
	// Later kept chunks are dropped: the chunks stay in order of size.
	chunk := make([]byte, 0, max(size, room))
	adviseHugePages(chunk[:cap(chunk)]) // see grow
	d.chunks = append(d.chunks[:d.cur], chunk)
	d.buf = d.chunks[d.cur]
}

// deleteRange adds a range deletion of [start, end).
func (d *delta) deleteRange(start, end []byte) {
	off := len(d.spanBuf)
	d.spanBuf = append(d.spanBuf, start...)
	mid := len(d.spanBuf)
	d.spanBuf = append(d.spanBuf, end...)
	d.spans = append(d.spans, deltaSpan{uint32(off), uint32(mid), uint32(len(d.spanBuf))})
}

func (d *delta) spanStart(s deltaSpan) []byte { return d.spanBuf[s.off:s.mid] }
func (d *delta) spanEnd(s deltaSpan) []byte   { return d.spanBuf[s.mid:s.end] }

// add appends a change; key is the Pebble key.
func (d *delta) add(key []byte, appendValue func([]byte) []byte, deleted bool) {
	d.addRec(key, appendValue, deleted, false)
}

// addRec appends a change, a merge operand if merge is set.
func (d *delta) addRec(key []byte, appendValue func([]byte) []byte, deleted, merge bool) {
	d.grow()
	off := len(d.buf)
	d.buf = append(d.buf, key...)
	if !deleted {
		d.buf = appendValue(d.buf)
		d.maxValue = max(d.maxValue, len(d.buf)-off-len(key))
	}
	var pad [inlineKeyBytes]byte
	copy(pad[:], key)
	r := deltaRec{
		off:     uint32(off),
		klen:    uint32(len(key)),
		vlen:    uint32(len(d.buf) - off - len(key)),
		chunk:   uint16(d.cur),
		deleted: deleted,
		merge:   merge,
	}
	for i := range r.prefix {
		r.prefix[i] = binary.BigEndian.Uint64(pad[8*i:])
	}
	if r.inline() {
		copy(r.small[:], d.buf[off+len(key):])
		d.buf = d.buf[:off] // all in the record
	}
	d.chunks[d.cur] = d.buf // the codec may have moved it
	d.recs = append(d.recs, r)
}

// key returns r's key, in scratch if it is inline.
func (d *delta) key(r *deltaRec, scratch *[inlineKeyBytes]byte) []byte {
	if r.inline() {
		for i, w := range r.prefix {
			binary.BigEndian.PutUint64(scratch[8*i:], w)
		}
		return scratch[:r.klen]
	}
	return d.chunks[r.chunk][r.off : r.off+r.klen]
}

func (d *delta) value(r *deltaRec) []byte {
	if r.inline() {
		return r.small[:r.vlen]
	}
	return d.chunks[r.chunk][r.off+r.klen : r.off+r.klen+r.vlen]
}

// sameKey reports whether a and b have the same key.
func (d *delta) sameKey(a, b *deltaRec) bool {
	if a.prefix != b.prefix || a.klen != b.klen {
		return false
	}
	var sa, sb [inlineKeyBytes]byte
	return a.klen <= inlineKeyBytes || bytes.Equal(d.key(a, &sa), d.key(b, &sb))
}

// sort orders the changes by key. The 24-byte prefixes are radix sorted,
// which is several times faster than comparison sorting a million changes;
// runs of equal prefix (keys longer than 24 bytes) are then sorted by
// comparison.
func (d *delta) sort() {
	d.recs, d.tmp = radixSort(d.recs, d.tmp)
	for i := 0; i < len(d.recs); {
		j := i + 1
		for j < len(d.recs) && d.recs[j].prefix == d.recs[i].prefix {
			j++
		}
		if j-i > 1 {
			d.sortRun(d.recs[i:j])
		}
		i = j
	}
}

// radixSort sorts recs by prefix with a least-significant-digit radix sort
// on bytes. One scan counts all the digits; digits that are the same in
// every record (most of them: the key group and state id vary little, and
// small integer keys have leading zero bytes) cost no pass. It returns the
// sorted slice and the spare buffer.
func radixSort(recs, tmp []deltaRec) ([]deltaRec, []deltaRec) {
	if len(recs) < 2 {
		return recs, tmp
	}
	if cap(tmp) < len(recs) {
		tmp = make([]deltaRec, len(recs))
	}
	tmp = tmp[:len(recs)]
	const words = len(deltaRec{}.prefix)
	// digit d is byte d%8 (from the least significant) of word words-1-d/8.
	digit := func(r *deltaRec, d int) int {
		return int(r.prefix[words-1-d/8] >> (8 * (d % 8)) & 0xff)
	}
	var counts [8 * words][256]int
	for i := range recs {
		r := &recs[i]
		for w := range words {
			x := r.prefix[words-1-w]
			for b := range 8 {
				counts[8*w+b][x>>(8*b)&0xff]++
			}
		}
	}
	for d := range counts {
		c := &counts[d]
		if c[digit(&recs[0], d)] == len(recs) {
			continue // every record has the same digit
		}
		sum := 0
		for i, n := range c {
			c[i] = sum
			sum += n
		}
		for i := range recs {
			dg := digit(&recs[i], d)
			tmp[c[dg]] = recs[i]
			c[dg]++
		}
		recs, tmp = tmp, recs
	}
	return recs, tmp
}

func (d *delta) sortRun(run []deltaRec) {
	slices.SortFunc(run, func(a, b deltaRec) int {
		for i := range a.prefix {
			if c := cmp.Compare(a.prefix[i], b.prefix[i]); c != 0 {
				return c
			}
		}
		if a.klen <= inlineKeyBytes && b.klen <= inlineKeyBytes {
			return cmp.Compare(a.klen, b.klen)
		}
		var sa, sb [inlineKeyBytes]byte
		return bytes.Compare(d.key(&a, &sa), d.key(&b, &sb))
	})
}

// writeSST writes the sorted delta to path as an sstable for db.
func (d *delta) writeSST(path string, opts sstable.WriterOptions) error {
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	w := sstable.NewWriter(newSSTWritable(f, d.sstBuffer()), opts)
	var scratch [inlineKeyBytes]byte
	d.touchRecs(0, 2*gatherBatch)
	for i := range d.recs {
		if i%gatherBatch == 0 && i > 0 {
			d.touchRecs(i+gatherBatch, i+2*gatherBatch)
		}
		r := &d.recs[i]
		k := d.key(r, &scratch)
		if i+1 < len(d.recs) && d.sameKey(r, &d.recs[i+1]) {
			w.Close()
			return fmt.Errorf("state: key %x changed twice in one epoch", k)
		}
		switch {
		case r.deleted:
			err = w.Delete(k)
		case r.merge:
			err = w.Merge(k, d.value(r))
		default:
			err = w.Set(k, d.value(r))
		}
		if err != nil {
			w.Close()
			return err
		}
	}
	// Range deletions go to a block of their own, so they need not be
	// interleaved with the points, but Pebble wants them sorted and not
	// overlapping.
	slices.SortFunc(d.spans, func(a, b deltaSpan) int { return bytes.Compare(d.spanStart(a), d.spanStart(b)) })
	var prevEnd []byte
	for i, s := range d.spans {
		start, end := d.spanStart(s), d.spanEnd(s)
		if i > 0 && bytes.Equal(start, d.spanStart(d.spans[i-1])) {
			continue // the same range deleted twice in one epoch
		}
		if prevEnd != nil && bytes.Compare(prevEnd, start) > 0 {
			w.Close()
			return fmt.Errorf("state: range deletions ending at %x and starting at %x overlap", prevEnd, start)
		}
		if err := w.DeleteRange(start, end); err != nil {
			w.Close()
			return err
		}
		prevEnd = end
	}
	return w.Close() // syncs and closes the file
}

// gatherBatch is the number of records writeSST touches at a time, a batch
// ahead of the one it writes (see touchRecs).
const gatherBatch = 64

// touchRecs reads the cache lines of the keys and values of records
// [from, to), those held in the chunks, so that writing them finds them in
// the CPU cache. The sorted records are in key order, which is not the order
// they were added in (a table's drain walks its slots, in hash order): each
// record's bytes are a cache miss, and a TLB miss, on a random page of the
// chunks. Pebble's writer compares each key with the previous one first,
// and waited for each miss there, one at a time (Nexmark q18's final
// checkpoint, 0.6M records of about 110 bytes: bytes.Compare under
// makeAddPointDecisionV3 was 9% of the engine's CPU profile). The loads of
// a tight loop are independent, so the CPU overlaps their misses.
func (d *delta) touchRecs(from, to int) {
	to = min(to, len(d.recs))
	var sum byte
	for i := from; i < to; i++ {
		r := &d.recs[i]
		if r.inline() {
			continue
		}
		c := d.chunks[r.chunk]
		start, end := int(r.off), int(r.off+r.klen+r.vlen)
		// The lines of the key and the value's first ones, and the last:
		// Pebble copies the rest of a long value in order, which the
		// hardware prefetcher follows.
		for at := start; at < min(end, start+touchedBytes); at += 64 {
			sum += c[at]
		}
		sum += c[end-1]
	}
	d.touched += sum
}

// touchedBytes bounds the bytes of a record touchRecs reads a line of.
const touchedBytes = 256

// sstWriteBuffer is the buffer between an sstable writer and its file.
// Pebble's own file writable buffers 4 KB, about one data block, so an
// sstable took one write system call per block: at each checkpoint of q19
// (deltas of 3 to 37 MB) those calls were 8% of the CPU profile.
const sstWriteBuffer = 1 << 20

// sstBuffer returns the write buffer for the delta's sstable: room for
// the whole table if that is smaller than sstWriteBuffer (its keys and
// values, a generous 32 bytes a change for the record's own bytes and the
// table's per-key overhead, and 4 KB for its index, filter, properties
// and footer), else sstWriteBuffer. NB: the buffer is allocated and zeroed
// at every checkpoint: at 1 MB for a delta of a few records (Nexmark q7's
// one checkpoint at 2M events writes 753 bytes) it was a megabyte a
// checkpoint of the garbage that sets the collector's pace, as much as
// 10,000 of the events' own allocations. A buffer too small for the table
// only costs more write calls.
func (d *delta) sstBuffer() int {
	n := len(d.buf) + len(d.spanBuf) + 32*(len(d.recs)+len(d.spans)) + 4<<10
	for _, c := range d.chunks[:min(d.cur, len(d.chunks))] {
		n += len(c)
		if n >= sstWriteBuffer {
			return sstWriteBuffer
		}
	}
	return min(n, sstWriteBuffer)
}

// sstWritable is an objstorage.Writable over a file, buffered by
// sstWriteBuffer bytes.
type sstWritable struct {
	f  vfs.File
	bw *bufio.Writer
}

// newSSTWritable returns a writable over f that buffers size bytes.
func newSSTWritable(f vfs.File, size int) *sstWritable {
	return &sstWritable{f: f, bw: bufio.NewWriterSize(f, size)}
}

func (w *sstWritable) Write(p []byte) error {
	_, err := w.bw.Write(p) // an error if fewer than len(p) were written
	return err
}

// Finish flushes, syncs and closes the file.
func (w *sstWritable) Finish() error {
	err := w.bw.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Abort closes the file; the caller removes it.
func (w *sstWritable) Abort() { _ = w.f.Close() }

// everything is a key range that holds every key of a Backend: keys start
// with a key group below 1<<15.
var everything = pebble.KeyRange{Start: []byte{0}, End: []byte{0xff}}

// ingest writes the epoch's delta into db through an sstable.
func (b *Backend) ingest(s *snapshot) error {
	d := s.delta
	switch {
	case s.full && len(d.recs) == 0: // the state is empty
		return b.db.Excise(context.Background(), everything)
	case len(d.recs) == 0 && len(d.spans) == 0:
		return nil
	}
	d.sort()
	path := fmt.Sprintf("%s/ingest-%d.sst", b.cfg.Dir, s.epoch)
	opts := b.opts.MakeWriterOptions(0, b.db.TableFormat())
	if err := d.writeSST(path, opts); err != nil {
		os.Remove(path)
		return fmt.Errorf("state: write epoch %d: %w", s.epoch, err)
	}
	// NB: not nil: Pebble's invariants builds (-race) panic on a nil ctx.
	var err error
	if s.full {
		_, err = b.db.IngestAndExcise(context.Background(), []string{path}, nil, nil, everything)
	} else {
		err = b.db.Ingest(context.Background(), []string{path})
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("state: ingest epoch %d: %w", s.epoch, err)
	}
	return nil
}
