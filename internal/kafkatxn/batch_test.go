package kafkatxn

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/segmentio/kafka-go/protocol"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var t0 = time.UnixMilli(1_700_000_000_123).UTC()

func sampleRecords() []Record {
	return []Record{
		{Key: []byte("k1"), Value: []byte("v1"), Time: t0},
		{Key: nil, Value: []byte("no key"), Time: t0.Add(5 * time.Millisecond)},
		{Key: []byte("k3"), Value: nil, Time: t0.Add(-2 * time.Millisecond),
			Headers: []Header{{Key: "h1", Value: []byte("x")}, {Key: "h2", Value: nil}}},
		{Key: []byte{}, Value: bytes.Repeat([]byte("z"), 300), Time: t0.Add(time.Hour)},
	}
}

// TestRecordSetMatchesKafkaGo checks the encoder byte for byte against
// kafka-go's own v2 writer, for the non-idempotent header kafka-go writes.
func TestRecordSetMatchesKafkaGo(t *testing.T) {
	recs := sampleRecords()
	var kr []protocol.Record
	for _, r := range recs {
		pr := protocol.Record{Time: r.Time}
		if r.Key != nil {
			pr.Key = protocol.NewBytes(r.Key)
		}
		if r.Value != nil {
			pr.Value = protocol.NewBytes(r.Value)
		}
		for _, h := range r.Headers {
			pr.Headers = append(pr.Headers, protocol.Header{Key: h.Key, Value: h.Value})
		}
		kr = append(kr, pr)
	}
	rs := protocol.RecordSet{Version: 2, Records: protocol.NewRecordReader(kr...)}
	var want bytes.Buffer
	if _, err := rs.WriteTo(&want); err != nil {
		t.Fatal(err)
	}
	got := encodeRecordSet(batchHeader{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs, time.Now())
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("encoding differs from kafka-go:\n got %x\nwant %x", got, want.Bytes())
	}
}

// TestRecordSetDecodesWithKafkaGo round-trips a transactional batch through
// kafka-go's decoder and franz-go's kmsg decoder.
func TestRecordSetDecodesWithKafkaGo(t *testing.T) {
	recs := sampleRecords()
	h := batchHeader{ProducerID: 4711, ProducerEpoch: 3, BaseSequence: 42, Attributes: attrTransactional}
	raw := encodeRecordSet(h, recs, time.Now())

	var rs protocol.RecordSet
	if _, err := rs.ReadFrom(bytes.NewBuffer(raw)); err != nil {
		t.Fatal(err)
	}
	if !rs.Attributes.Transactional() || rs.Attributes.Control() || rs.Version != 2 {
		t.Fatalf("attributes %v version %d", rs.Attributes, rs.Version)
	}
	batch, ok := rs.Records.(*protocol.RecordStream).Records[0].(*protocol.RecordBatch)
	if !ok {
		t.Fatalf("records are %T", rs.Records.(*protocol.RecordStream).Records[0])
	}
	if batch.ProducerID != 4711 || batch.ProducerEpoch != 3 || batch.BaseSequence != 42 {
		t.Fatalf("producer fields %d/%d/%d", batch.ProducerID, batch.ProducerEpoch, batch.BaseSequence)
	}
	for i := 0; ; i++ {
		r, err := batch.ReadRecord()
		if errors.Is(err, io.EOF) {
			if i != len(recs) {
				t.Fatalf("read %d records, want %d", i, len(recs))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want := recs[i]
		if r.Offset != int64(i) || !r.Time.Equal(want.Time) {
			t.Errorf("record %d: offset %d time %v", i, r.Offset, r.Time)
		}
		key, _ := protocol.ReadAll(r.Key)
		val, _ := protocol.ReadAll(r.Value)
		if (r.Key == nil) != (want.Key == nil) || !bytes.Equal(key, want.Key) ||
			(r.Value == nil) != (want.Value == nil) || !bytes.Equal(val, want.Value) {
			t.Errorf("record %d: key %q value %q", i, key, val)
		}
		if len(r.Headers) != len(want.Headers) {
			t.Errorf("record %d: %d headers", i, len(r.Headers))
		}
	}

	// franz-go validates length, CRC and the record framing as a broker does.
	var kb kmsg.RecordBatch
	if err := kb.ReadFrom(raw[4:]); err != nil {
		t.Fatal(err)
	}
	if int(kb.Length) != len(raw)-4-12 || kb.NumRecords != int32(len(recs)) || kb.LastOffsetDelta != int32(len(recs)-1) {
		t.Fatalf("kmsg batch: length %d records %d last delta %d", kb.Length, kb.NumRecords, kb.LastOffsetDelta)
	}
	if kb.FirstTimestamp != t0.UnixMilli() || kb.MaxTimestamp != t0.Add(time.Hour).UnixMilli() {
		t.Fatalf("timestamps %d %d", kb.FirstTimestamp, kb.MaxTimestamp)
	}

	gh, got, n, err := decodeBatch(raw[4:])
	if err != nil {
		t.Fatal(err)
	}
	if n != len(raw)-4 || gh != h {
		t.Fatalf("decoded header %+v (%d bytes)", gh, n)
	}
	if !reflect.DeepEqual(got, recs) {
		t.Fatalf("decoded records differ:\n got %+v\nwant %+v", got, recs)
	}
}

// TestRecordSetKnownBytes pins the encoding of a one-record batch.
func TestRecordSetKnownBytes(t *testing.T) {
	raw := encodeRecordSet(batchHeader{ProducerID: 1, ProducerEpoch: 2, BaseSequence: 3, Attributes: attrTransactional},
		[]Record{{Key: []byte("a"), Value: []byte("b"), Time: time.UnixMilli(1)}}, time.Time{})
	want := []byte{
		0, 0, 0, 0x46, // record set size 70
		0, 0, 0, 0, 0, 0, 0, 0, // base offset
		0, 0, 0, 0x3a, // batch length 58
		0xff, 0xff, 0xff, 0xff, // partition leader epoch
		2,                      // magic
		0x9c, 0xc1, 0x7d, 0x65, // crc32c
		0, 0x10, // attributes: transactional
		0, 0, 0, 0, // last offset delta
		0, 0, 0, 0, 0, 0, 0, 1, // first timestamp
		0, 0, 0, 0, 0, 0, 0, 1, // max timestamp
		0, 0, 0, 0, 0, 0, 0, 1, // producer id
		0, 2, // producer epoch
		0, 0, 0, 3, // base sequence
		0, 0, 0, 1, // record count
		0x10, // record length 8 (zigzag)
		0,    // attributes
		0, 0, // timestamp delta, offset delta
		2, 'a', 2, 'b', // key, value
		0, // headers
	}
	if !bytes.Equal(raw, want) {
		t.Fatalf("got  %x\nwant %x", raw, want)
	}
}

func TestDecodeBatchRejectsCorruption(t *testing.T) {
	raw := encodeRecordSet(batchHeader{ProducerID: 9, ProducerEpoch: 1, BaseSequence: 0, Attributes: attrTransactional},
		sampleRecords(), time.Now())[4:]
	for i := range raw {
		b := bytes.Clone(raw)
		b[i] ^= 0x40
		if _, _, _, err := decodeBatch(b); err == nil && i >= attributesOffset {
			t.Fatalf("flipping byte %d went unnoticed", i)
		}
	}
	if _, _, _, err := decodeBatch(raw[:len(raw)-1]); !errors.Is(err, errCorrupt) {
		t.Fatalf("truncated batch: %v", err)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeRecordSet(batchHeader{ProducerID: 1, ProducerEpoch: 2, BaseSequence: 3, Attributes: attrTransactional},
		sampleRecords(), time.Now())[4:])
	f.Add(encodeRecordSet(batchHeader{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		[]Record{{Value: []byte("x")}}, time.Now())[4:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, recs, n, err := decodeBatch(b)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("error does not wrap errCorrupt: %v", err)
			}
			return
		}
		if n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		if len(recs) == 0 {
			return // the encoder does not write empty batches
		}
		// What decodes must re-encode to a batch that decodes the same.
		again := appendBatch(nil, h, recs, time.Now())
		h2, recs2, _, err := decodeBatch(again)
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if h2 != h || !reflect.DeepEqual(recs, recs2) {
			t.Fatalf("round trip differs: %+v %+v vs %+v %+v", h, recs, h2, recs2)
		}
	})
}
