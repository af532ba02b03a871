package statebackend

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The shape of Nexmark q18's state (operators.KeepLast keyed by bidder and
// auction): a two-integer key, a bid of four integers and three strings
// (about 170 bytes encoded), a third of the records new keys, so that the
// state grows by every checkpoint's worth of records.

type pairKey struct{ A, B int64 }

type pairKeyCodec struct{}

func (pairKeyCodec) Append(dst []byte, k pairKey) []byte {
	return binary.AppendVarint(binary.AppendVarint(dst, k.A), k.B)
}

func (pairKeyCodec) Decode(src []byte) (pairKey, error) {
	a, n := binary.Varint(src)
	b, m := binary.Varint(src[max(n, 0):])
	if n <= 0 || m <= 0 || n+m != len(src) {
		return pairKey{}, ErrCorruptValue
	}
	return pairKey{a, b}, nil
}

type benchBid struct {
	Auction, Bidder, Price int64
	Channel, URL           string
	DateTime               int64
	Extra                  string
}

type benchBidCodec struct{}

func (benchBidCodec) Append(dst []byte, b benchBid) []byte {
	for _, v := range [...]int64{b.Auction, b.Bidder, b.Price, b.DateTime} {
		dst = binary.AppendVarint(dst, v)
	}
	for _, s := range [...]string{b.Channel, b.URL, b.Extra} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

func (benchBidCodec) Decode(src []byte) (benchBid, error) {
	var ints [4]int64
	for i := range ints {
		v, n := binary.Varint(src)
		if n <= 0 {
			return benchBid{}, ErrCorruptValue
		}
		ints[i], src = v, src[n:]
	}
	var strs [3]string
	for i := range strs {
		l, n := binary.Uvarint(src)
		if n <= 0 || l > uint64(len(src)-n) {
			return benchBid{}, ErrCorruptValue
		}
		strs[i], src = string(src[n:n+int(l)]), src[n+int(l):]
	}
	return benchBid{ints[0], ints[1], ints[2], strs[0], strs[1], ints[3], strs[2]}, nil
}

// bidStream yields q18-like records: keys of which newShare are new, the
// others drawn from the most recent recentKeys keys; strings are slices of
// shared pools, as the Nexmark generator's are.
type bidStream struct {
	r      *rand.Rand
	keys   int64
	letter string
	urls   []string
	chans  []string
}

const recentKeys = 1 << 16

// keepLastCheckpointEvery is about one second of q18's input at one core.
const keepLastCheckpointEvery = 1 << 18

func newBidStream(seed uint64) *bidStream {
	s := &bidStream{r: rand.New(rand.NewPCG(seed, seed))}
	s.letter = strings.Repeat("abcdefghijklmnopqrstuvwxyz", 1000)
	for i := range 100 {
		s.urls = append(s.urls, fmt.Sprintf("https://www.nexmark.com/%07d/item.htm?query=1&channel_id=%d", i*7919, i))
		s.chans = append(s.chans, fmt.Sprint("channel-", i))
	}
	return s
}

func (s *bidStream) next(i int64) (pairKey, benchBid) {
	var n int64
	if s.keys == 0 || s.r.IntN(3) == 0 {
		n = s.keys
		s.keys++
	} else {
		n = s.keys - 1 - s.r.Int64N(min(s.keys, recentKeys))
	}
	k := pairKey{A: 1000 + n*7%100_003, B: 2000 + n}
	off := s.r.IntN(len(s.letter) - 80)
	c := s.r.IntN(len(s.urls))
	return k, benchBid{Auction: k.B, Bidder: k.A, Price: 100 + i%10_000, Channel: s.chans[c], URL: s.urls[c], DateTime: i, Extra: s.letter[off : off+68]}
}

// BenchmarkKeepLastCheckpointed keeps the last bid per key, q18's state
// path: a Get and a Put per record, and a checkpoint every
// keepLastCheckpointEvery records drained two entries per record while records
// flow, as the engine drains, and written by the background writer
// meanwhile. The time per record includes waiting for the last checkpoint;
// cpu-ns/op is the process's CPU time per record, every goroutine included
// (the writer, Pebble's compactions, the collector).
func BenchmarkKeepLastCheckpointed(b *testing.B) {
	cfg := Config{Dir: b.TempDir()}
	be, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	scope, err := NewScope[pairKey](be, pairKeyCodec{})
	if err != nil {
		b.Fatal(err)
	}
	last, err := NewValue(scope, "last", Codec[benchBid](benchBidCodec{}))
	if err != nil {
		b.Fatal(err)
	}
	in := newBidStream(1)
	id := uint64(0)
	inFlight := false
	var frozenAt time.Time
	var longest time.Duration
	applied := func(res Result) {
		if res.Err != nil {
			b.Fatal(res.Err)
		}
		be.Applied(res)
		inFlight = false
		longest = max(longest, time.Since(frozenAt))
	}
	b.ResetTimer()
	cpu0 := processCPU()
	for i := range int64(b.N) {
		k, bid := in.next(i)
		scope.SetKey(k)
		if cur, ok := last.Get(); !ok || bid.DateTime > cur.DateTime {
			last.Put(bid)
		}
		if be.Draining() {
			be.Drain(2)
		}
		if inFlight {
			select {
			case res := <-be.Results():
				applied(res)
			default:
			}
		}
		if i%keepLastCheckpointEvery == keepLastCheckpointEvery-1 {
			if be.Draining() {
				be.Drain(0)
			}
			if inFlight {
				applied(<-be.Results())
			}
			id++
			frozenAt = time.Now()
			if err := be.Freeze(id, filepath.Join(b.TempDir(), fmt.Sprint("chk-", id))); err != nil {
				b.Fatal(err)
			}
			inFlight = true
		}
	}
	if be.Draining() {
		be.Drain(0)
	}
	if inFlight {
		applied(<-be.Results())
	}
	// CPU time steadies the comparison on a shared machine.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(be.Entries()), "keys")
	b.ReportMetric(float64(longest.Milliseconds()), "max-ckpt-ms")
	b.ReportMetric(float64(be.db.Metrics().Compact.Count), "compactions")
}

// BenchmarkDeltaWriteSST writes q18's final checkpoint as an sstable: 600K
// changed keys of a two-integer key and a bid of about 90 bytes, added in
// the order of a table's drain (hash order, not key order). ns/op is per
// record.
func BenchmarkDeltaWriteSST(b *testing.B) {
	be, err := Open(Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	const n = 600_000
	in := newBidStream(1)
	var d delta
	var key []byte
	keys := make([]pairKey, 0, n)
	vals := make([]benchBid, 0, n)
	for i := range int64(n) {
		k, bid := in.next(i)
		k.B += i // distinct keys
		keys, vals = append(keys, k), append(vals, bid)
	}
	// Hash order: shuffled, seeded.
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(n, func(i, j int) { keys[i], keys[j], vals[i], vals[j] = keys[j], keys[i], vals[j], vals[i] })
	for i, k := range keys {
		key = binary.BigEndian.AppendUint16(key[:0], uint16(k.A%128))
		key = binary.BigEndian.AppendUint32(key, 1)
		key = pairKeyCodec{}.Append(key, k)
		d.add(key, func(dst []byte) []byte { return benchBidCodec{}.Append(dst, vals[i]) }, false)
	}
	d.sort()
	opts := be.opts.MakeWriterOptions(0, be.db.TableFormat())
	path := filepath.Join(b.TempDir(), "delta.sst")
	b.ResetTimer()
	cpu0 := processCPU()
	for range b.N {
		if err := d.writeSST(path, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/rec")
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N*n), "cpu-ns/rec")
}
