package statebackend

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// delta is the encoded changes of one epoch. Writing it as a sorted sstable
// and ingesting that is much cheaper than applying a batch: Pebble would sort
// the batch with byte comparisons and then flush it through its memtable.
type delta struct {
	buf  []byte // keys and values, back to back
	recs []deltaRec
	tmp  []deltaRec // scratch for sorting
	// spans are range deletions [start, end), back to back in spanBuf;
	// they delete what earlier epochs wrote (not the points of this delta,
	// which share their sequence number when ingested).
	spans   []deltaSpan
	spanBuf []byte
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
	off     uint32 // in delta.buf, unless inline
	klen    uint32
	vlen    uint32
	deleted bool
	// merge marks a merge operand (the elements a List appended in the
	// epoch), which Pebble's default merger concatenates with what it
	// holds, instead of a Set that replaces it.
	merge bool
}

const inlineKeyBytes = 24

func (r *deltaRec) inline() bool { return r.klen <= inlineKeyBytes && r.vlen <= 8 }

func (d *delta) reset() {
	d.buf = d.buf[:0]
	d.recs = d.recs[:0]
	d.spans = d.spans[:0]
	d.spanBuf = d.spanBuf[:0]
}

// deltaHeadroom is the least free room in a delta's buffer below which
// adding a change first doubles the buffer.
const deltaHeadroom = 64 << 10

// grow doubles the delta's buffers when they are about full. A value's
// codec appends to the buffer, and Go grows a large slice by a quarter at
// a time, each time copying all encoded so far into fresh pages. In q19
// (2M events, one core; deltas of 3 to 37 MB of top-10 lists) that growth,
// runtime.growslice under the state codec, was 11 to 14% of the CPU
// profile's samples (0.8 to 1.1 s); with doubling it is 0.01 s.
//
// NB: the room kept free is at least twice the largest value seen, not
// only deltaHeadroom: values larger than the room overflow it inside the
// codec, where Go grows the buffer by a quarter. In q20 (a join keeping
// every bid of an auction in one value: 2M events, values up to 119 KB,
// deltas of 133 and 140 MB) that was runtime.growslice under the codec,
// 0.79 s of 4.09 s of the CPU profile.
func (d *delta) grow() {
	if room := max(deltaHeadroom, 2*d.maxValue); cap(d.buf)-len(d.buf) < room {
		d.buf = append(make([]byte, 0, 2*len(d.buf)+room), d.buf...)
	}
	if len(d.recs) == cap(d.recs) {
		d.recs = append(make([]deltaRec, 0, 2*len(d.recs)+256), d.recs...)
	}
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
	return d.buf[r.off : r.off+r.klen]
}

func (d *delta) value(r *deltaRec) []byte {
	if r.inline() {
		return r.small[:r.vlen]
	}
	return d.buf[r.off+r.klen : r.off+r.klen+r.vlen]
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
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), opts)
	var scratch [inlineKeyBytes]byte
	for i := range d.recs {
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
