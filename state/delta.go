package state

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
}

// deltaSpan is a range deletion: spanBuf[off:mid] is its start, and
// spanBuf[mid:end] its end.
type deltaSpan struct{ off, mid, end uint32 }

// deltaRec is one change. hi and lo hold the first 16 bytes of the key,
// big-endian and zero-padded, so that most comparisons while sorting are
// integer comparisons; small keys and values are held entirely in the record
// (the key in hi and lo, the value in small), so that writing the sorted
// records does not jump around delta.buf, where larger ones are.
type deltaRec struct {
	hi, lo  uint64
	small   [8]byte
	off     uint32 // in delta.buf, unless inline
	klen    uint32
	vlen    uint32
	deleted bool
}

func (r *deltaRec) inlineKey() bool   { return r.klen <= 16 }
func (r *deltaRec) inlineValue() bool { return r.vlen <= 8 }

func (d *delta) reset() {
	d.buf = d.buf[:0]
	d.recs = d.recs[:0]
	d.spans = d.spans[:0]
	d.spanBuf = d.spanBuf[:0]
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
	off := len(d.buf)
	d.buf = append(d.buf, key...)
	if !deleted {
		d.buf = appendValue(d.buf)
	}
	var pad [16]byte
	copy(pad[:], key)
	r := deltaRec{
		hi:      binary.BigEndian.Uint64(pad[:8]),
		lo:      binary.BigEndian.Uint64(pad[8:]),
		off:     uint32(off),
		klen:    uint32(len(key)),
		vlen:    uint32(len(d.buf) - off - len(key)),
		deleted: deleted,
	}
	if r.inlineKey() && r.inlineValue() {
		copy(r.small[:], d.buf[off+len(key):])
		d.buf = d.buf[:off] // all in the record
	}
	d.recs = append(d.recs, r)
}

// key returns r's key, in scratch if it is inline.
func (d *delta) key(r *deltaRec, scratch *[16]byte) []byte {
	if r.inlineKey() && r.inlineValue() {
		binary.BigEndian.PutUint64(scratch[:8], r.hi)
		binary.BigEndian.PutUint64(scratch[8:], r.lo)
		return scratch[:r.klen]
	}
	return d.buf[r.off : r.off+r.klen]
}

func (d *delta) value(r *deltaRec) []byte {
	if r.inlineKey() && r.inlineValue() {
		return r.small[:r.vlen]
	}
	return d.buf[r.off+r.klen : r.off+r.klen+r.vlen]
}

// sameKey reports whether a and b have the same key.
func (d *delta) sameKey(a, b *deltaRec) bool {
	if a.hi != b.hi || a.lo != b.lo || a.klen != b.klen {
		return false
	}
	var sa, sb [16]byte
	return a.klen <= 16 || bytes.Equal(d.key(a, &sa), d.key(b, &sb))
}

// sort orders the changes by key. The 16-byte prefixes are radix sorted,
// which is several times faster than comparison sorting a million changes;
// runs of equal prefix (keys longer than 16 bytes) are then sorted by
// comparison, or if they are long, radix sorted on their next 16 bytes (the
// keys of a Namespaced state share a 14-byte prefix per key group and
// namespace).
func (d *delta) sort() {
	d.recs, d.tmp = radixSort(d.recs, d.tmp)
	for i := 0; i < len(d.recs); {
		j := i + 1
		for j < len(d.recs) && d.recs[j].hi == d.recs[i].hi && d.recs[j].lo == d.recs[i].lo {
			j++
		}
		if j-i > 1 {
			d.sortLongRun(d.recs[i:j])
		}
		i = j
	}
}

// sortLongRun sorts a run of keys with the same first 16 bytes: if the run
// is long and all its keys are longer than 16 bytes, by radix on their next
// 16 bytes and then by comparison where those tie; otherwise by comparison.
func (d *delta) sortLongRun(run []deltaRec) {
	if len(run) < 256 || slices.ContainsFunc(run, func(r deltaRec) bool { return r.klen <= 16 }) {
		d.sortRun(run)
		return
	}
	hi, lo := run[0].hi, run[0].lo
	for i := range run {
		r := &run[i]
		var pad [16]byte
		copy(pad[:], d.buf[r.off+16:r.off+r.klen])
		r.hi, r.lo = binary.BigEndian.Uint64(pad[:8]), binary.BigEndian.Uint64(pad[8:])
	}
	sorted, _ := radixSort(run, d.tmp[:0])
	if &sorted[0] != &run[0] {
		copy(run, sorted)
	}
	for i := 0; i < len(run); {
		j := i + 1
		for j < len(run) && run[j].hi == run[i].hi && run[j].lo == run[i].lo {
			j++
		}
		for k := i; k < j; k++ {
			run[k].hi, run[k].lo = hi, lo
		}
		if j-i > 1 {
			d.sortRun(run[i:j])
		}
		i = j
	}
}

// radixSort sorts recs by (hi, lo) with a least-significant-digit radix sort
// on bytes. One scan counts all sixteen digits; digits that are the same in
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
	digit := func(r *deltaRec, d int) int {
		if d < 8 {
			return int(r.lo >> (8 * d) & 0xff)
		}
		return int(r.hi >> (8 * (d - 8)) & 0xff)
	}
	var counts [16][256]int
	for i := range recs {
		r := &recs[i]
		for d := 0; d < 8; d++ {
			counts[d][r.lo>>(8*d)&0xff]++
			counts[8+d][r.hi>>(8*d)&0xff]++
		}
	}
	for d := 0; d < 16; d++ {
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
		if c := cmp.Compare(a.hi, b.hi); c != 0 {
			return c
		}
		if c := cmp.Compare(a.lo, b.lo); c != 0 {
			return c
		}
		if a.klen <= 16 && b.klen <= 16 {
			return cmp.Compare(a.klen, b.klen)
		}
		var sa, sb [16]byte
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
	var scratch [16]byte
	for i := range d.recs {
		r := &d.recs[i]
		k := d.key(r, &scratch)
		if i+1 < len(d.recs) && d.sameKey(r, &d.recs[i+1]) {
			w.Close()
			return fmt.Errorf("state: key %x changed twice in one epoch", k)
		}
		if r.deleted {
			err = w.Delete(k)
		} else {
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
