package kafkatxn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// Header is a key/value pair attached to a Record.
type Header struct {
	Key   string
	Value []byte
}

// Record is one Kafka record. A nil Key or Value is encoded as null; a zero
// Time is replaced by the time of encoding.
type Record struct {
	Key     []byte
	Value   []byte
	Headers []Header
	Time    time.Time
}

// Attribute bits of a v2 record batch.
const (
	attrTransactional = 0x10
	attrControl       = 0x20
)

// Offsets of the fixed v2 record batch header fields (KIP-98).
const (
	batchLengthOffset = 8  // int32, counts the bytes after this field
	magicOffset       = 16 // int8, always 2
	crcOffset         = 17 // uint32 CRC-32C of everything from attributes on
	attributesOffset  = 21 // int16
	batchHeaderSize   = 61 // up to and including the records count
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// batchHeader holds the producer fields of a v2 record batch.
type batchHeader struct {
	ProducerID    int64
	ProducerEpoch int16
	BaseSequence  int32
	Attributes    int16
}

// appendBatch appends to dst a v2 record batch (without the int32 size prefix
// of the produce request's record set) holding recs, and returns it. now
// stands in for zero record times.
//
// Layout (all integers big endian, varints zigzag as in protobuf):
//
//	baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 |
//	magic int8 | crc uint32 | attributes int16 | lastOffsetDelta int32 |
//	firstTimestamp int64 | maxTimestamp int64 | producerId int64 |
//	producerEpoch int16 | baseSequence int32 | recordCount int32 | records
//
// and each record is
//
//	length varint | attributes int8 | timestampDelta varint |
//	offsetDelta varint | keyLength varint | key | valueLength varint |
//	value | headerCount varint | (keyLength varint | key |
//	valueLength varint | value)*
func appendBatch(dst []byte, h batchHeader, recs []Record, now time.Time) []byte {
	start := len(dst)
	ms := func(t time.Time) int64 {
		if t.IsZero() {
			t = now
		}
		return t.UnixMilli()
	}
	var firstTS, maxTS int64
	for i, r := range recs {
		ts := ms(r.Time)
		if i == 0 {
			firstTS, maxTS = ts, ts
		}
		maxTS = max(maxTS, ts)
	}

	dst = binary.BigEndian.AppendUint64(dst, 0)          // base offset
	dst = binary.BigEndian.AppendUint32(dst, 0)          // batch length, patched below
	dst = binary.BigEndian.AppendUint32(dst, 0xffffffff) // partition leader epoch: -1
	dst = append(dst, 2)                                 // magic
	dst = binary.BigEndian.AppendUint32(dst, 0)          // crc, patched below
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.Attributes))
	dst = binary.BigEndian.AppendUint32(dst, uint32(int32(len(recs)-1))) // last offset delta
	dst = binary.BigEndian.AppendUint64(dst, uint64(firstTS))
	dst = binary.BigEndian.AppendUint64(dst, uint64(maxTS))
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.ProducerID))
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.ProducerEpoch))
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.BaseSequence))
	dst = binary.BigEndian.AppendUint32(dst, uint32(int32(len(recs))))

	for i, r := range recs {
		tsDelta := ms(r.Time) - firstTS
		size := 1 + varintLen(tsDelta) + varintLen(int64(i)) +
			nullableLen(r.Key) + nullableLen(r.Value) + varintLen(int64(len(r.Headers)))
		for _, hd := range r.Headers {
			size += varintLen(int64(len(hd.Key))) + len(hd.Key) + nullableLen(hd.Value)
		}
		dst = binary.AppendVarint(dst, int64(size))
		dst = append(dst, 0) // record attributes, unused
		dst = binary.AppendVarint(dst, tsDelta)
		dst = binary.AppendVarint(dst, int64(i))
		dst = appendNullable(dst, r.Key)
		dst = appendNullable(dst, r.Value)
		dst = binary.AppendVarint(dst, int64(len(r.Headers)))
		for _, hd := range r.Headers {
			dst = binary.AppendVarint(dst, int64(len(hd.Key)))
			dst = append(dst, hd.Key...)
			dst = appendNullable(dst, hd.Value)
		}
	}

	batch := dst[start:]
	binary.BigEndian.PutUint32(batch[batchLengthOffset:], uint32(len(batch)-12))
	binary.BigEndian.PutUint32(batch[crcOffset:], crc32.Checksum(batch[attributesOffset:], crc32c))
	return dst
}

// encodeRecordSet returns the record set of a produce request: an int32 size
// followed by one v2 record batch.
func encodeRecordSet(h batchHeader, recs []Record, now time.Time) []byte {
	buf := make([]byte, 4, 4+batchHeaderSize+estimateSize(recs))
	buf = appendBatch(buf, h, recs, now)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	return buf
}

// estimateSize returns an upper bound of the encoded size of recs' records,
// not counting the batch header.
func estimateSize(recs []Record) int {
	n := 0
	for i := range recs {
		n += recs[i].Size()
	}
	return n
}

// Size returns an upper bound of the encoded size of r in a record batch.
func (r *Record) Size() int {
	n := recordOverhead + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += 2*binary.MaxVarintLen32 + len(h.Key) + len(h.Value)
	}
	return n
}

// recordOverhead bounds the bytes of a record that are not key, value or
// headers.
const recordOverhead = 1 + 5*binary.MaxVarintLen64

func varintLen(v int64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutVarint(b[:], v)
}

func nullableLen(b []byte) int {
	if b == nil {
		return varintLen(-1)
	}
	return varintLen(int64(len(b))) + len(b)
}

func appendNullable(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

// errCorrupt is wrapped by every decoding error.
var errCorrupt = errors.New("kafkatxn: corrupt record batch")

// decodeBatch decodes one uncompressed v2 record batch as written by
// appendBatch (no size prefix) and checks its length and CRC. It returns the
// number of bytes consumed. Record times are in milliseconds, in UTC.
func decodeBatch(b []byte) (h batchHeader, recs []Record, n int, err error) {
	fail := func(format string, args ...any) (batchHeader, []Record, int, error) {
		return batchHeader{}, nil, 0, fmt.Errorf("%w: %s", errCorrupt, fmt.Sprintf(format, args...))
	}
	if len(b) < batchHeaderSize {
		return fail("%d bytes is shorter than a batch header", len(b))
	}
	length := int64(int32(binary.BigEndian.Uint32(b[batchLengthOffset:])))
	if length < batchHeaderSize-12 || length > int64(len(b)-12) {
		return fail("batch length %d out of range", length)
	}
	b = b[:12+length]
	if b[magicOffset] != 2 {
		return fail("magic %d", b[magicOffset])
	}
	if want, got := binary.BigEndian.Uint32(b[crcOffset:]), crc32.Checksum(b[attributesOffset:], crc32c); want != got {
		return fail("crc %08x, computed %08x", want, got)
	}
	h.Attributes = int16(binary.BigEndian.Uint16(b[attributesOffset:]))
	if h.Attributes&0x07 != 0 {
		return fail("compressed batches are not supported")
	}
	lastOffsetDelta := int32(binary.BigEndian.Uint32(b[23:]))
	firstTS := int64(binary.BigEndian.Uint64(b[27:]))
	h.ProducerID = int64(binary.BigEndian.Uint64(b[43:]))
	h.ProducerEpoch = int16(binary.BigEndian.Uint16(b[51:]))
	h.BaseSequence = int32(binary.BigEndian.Uint32(b[53:]))
	count := int32(binary.BigEndian.Uint32(b[57:]))
	if count < 0 || int(count) > len(b)-batchHeaderSize {
		return fail("record count %d out of range", count)
	}
	if count > 0 && lastOffsetDelta != count-1 {
		return fail("last offset delta %d for %d records", lastOffsetDelta, count)
	}

	d := decoder{b: b[batchHeaderSize:]}
	recs = make([]Record, 0, count)
	for i := range count {
		size := d.varint()
		if d.err != nil || size < 0 || size > int64(len(d.b)) {
			return fail("record %d: length %d", i, size)
		}
		rd := decoder{b: d.b[:size]}
		d.b = d.b[size:]
		rd.byte() // attributes
		tsDelta := rd.varint()
		if off := rd.varint(); rd.err == nil && off != int64(i) {
			return fail("record %d: offset delta %d", i, off)
		}
		r := Record{Time: time.UnixMilli(firstTS + tsDelta).UTC()}
		r.Key = rd.nullable()
		r.Value = rd.nullable()
		nh := rd.varint()
		if nh < 0 || nh > int64(len(rd.b)) {
			return fail("record %d: %d headers", i, nh)
		}
		for range nh {
			kl := rd.varint()
			if kl < 0 || kl > int64(len(rd.b)) {
				return fail("record %d: header key length %d", i, kl)
			}
			k := string(rd.take(int(kl)))
			r.Headers = append(r.Headers, Header{Key: k, Value: rd.nullable()})
		}
		if rd.err != nil {
			return fail("record %d: %v", i, rd.err)
		}
		if len(rd.b) != 0 {
			return fail("record %d: %d trailing bytes", i, len(rd.b))
		}
		recs = append(recs, r)
	}
	if len(d.b) != 0 {
		return fail("%d trailing bytes after %d records", len(d.b), count)
	}
	return h, recs, len(b), nil
}

// decoder reads varints and byte strings, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errors.New("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if b := d.take(1); len(b) == 1 {
		return b[0]
	}
	return 0
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = fmt.Errorf("need %d bytes, have %d", n, len(d.b))
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) nullable() []byte {
	n := d.varint()
	if d.err != nil || n == -1 {
		return nil
	}
	if n < -1 || n > int64(len(d.b)) {
		d.err = fmt.Errorf("length %d", n)
		return nil
	}
	return append([]byte{}, d.take(int(n))...)
}
