package nexmark

import (
	"encoding/binary"
	"errors"
	"hash/maphash"

	"github.com/weirstream/weir/state"
)

// Binary codecs for the engine queries' state, and the multiset hash of
// results.

var errShortState = errors.New("nexmark: corrupt state")

// codec adapts an append function and a decode function to state.Codec.
type codec[T any] struct {
	enc func(dst []byte, v T) []byte
	dec func(d *decoder) T
}

func (c codec[T]) Append(dst []byte, v T) []byte { return c.enc(dst, v) }

func (c codec[T]) Decode(src []byte) (T, error) {
	d := decoder{b: src}
	v := c.dec(&d)
	if d.err == nil && len(d.b) != 0 {
		d.err = errShortState
	}
	if d.err != nil {
		var zero T
		return zero, errors.Join(state.ErrCorruptValue, d.err)
	}
	return v, nil
}

func appendInt(dst []byte, v int64) []byte { return binary.AppendVarint(dst, v) }

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// decoder reads what the append functions wrote; the first error sticks and
// makes every later read return zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShortState
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) len() int {
	v := d.int()
	if v < 0 || v > int64(len(d.b)) { // every element takes at least a byte
		d.err = errShortState
		return 0
	}
	return int(v)
}

func (d *decoder) string() string {
	if d.err != nil {
		return ""
	}
	l, n := binary.Uvarint(d.b)
	if n <= 0 || l > uint64(len(d.b)-n) {
		d.err = errShortState
		return ""
	}
	s := string(d.b[n : n+int(l)])
	d.b = d.b[n+int(l):]
	return s
}

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.b) == 0 {
		d.err = errShortState
		return false
	}
	v := d.b[0] == 1
	d.b = d.b[1:]
	return v
}

// appendSlice and decodeSlice encode a slice as its length and elements.
func appendSlice[T any](dst []byte, s []T, enc func([]byte, T) []byte) []byte {
	dst = appendInt(dst, int64(len(s)))
	for _, v := range s {
		dst = enc(dst, v)
	}
	return dst
}

func decodeSlice[T any](d *decoder, dec func(*decoder) T) []T {
	n := d.len()
	if n == 0 {
		return nil
	}
	s := make([]T, 0, min(n, 1<<10))
	for range n {
		if d.err != nil {
			return nil
		}
		s = append(s, dec(d))
	}
	return s
}

// ---- multiset hash ---------------------------------------------------------

// hashSeed is per process: hashes are only compared within one run.
var hashSeed = maphash.MakeSeed()

// fields hashes the fields of one result, in order.
type fields uint64

func (h fields) int(v int64) fields { return fields(mix64(uint64(h) ^ uint64(v) + 0x9E3779B97F4A7C15)) }

func (h fields) str(s string) fields { return h.int(int64(maphash.String(hashSeed, s))) }

func hashBid(b Bid) uint64 {
	return uint64(fields(1).int(b.Auction).int(b.Bidder).int(b.Price).str(b.Channel).str(b.URL).int(b.DateTime).str(b.Extra))
}

func hashQ1(r Q1Result) uint64 {
	return uint64(fields(2).int(r.Auction).int(r.Bidder).int(r.PriceMilli).int(r.DateTime).str(r.Extra))
}

func hashQ2(r Q2Result) uint64 { return uint64(fields(3).int(r.Auction).int(r.Price)) }

func hashQ3(r Q3Result) uint64 {
	return uint64(fields(4).str(r.Name).str(r.City).str(r.State).int(r.AuctionID))
}

func hashQ4(r Q4Result) uint64 {
	return uint64(fields(5).int(r.Category).int(r.Avg).int(r.Count).int(r.Auction).int(r.Final).int(r.Expires))
}

func hashQ5(r Q5Result) uint64 {
	return uint64(fields(6).int(r.WindowStart).int(r.WindowEnd).int(r.Auction).int(r.Num))
}

func hashQ7(r Q7Result) uint64 {
	return uint64(fields(7).int(r.WindowStart).int(r.WindowEnd).int(r.Auction).int(r.Bidder).int(r.Price).int(r.DateTime).str(r.Extra))
}

func hashQ8(r Q8Result) uint64 { return uint64(fields(8).int(r.ID).str(r.Name).int(r.WindowStart)) }

func hashQ6(r Q6Result) uint64 {
	return uint64(fields(9).int(r.Seller).int(r.Avg).int(r.Count).int(r.Auction).int(r.Expires))
}

func hashQ9(r Q9Result) uint64 {
	a, b := &r.Auction, &r.Winner
	h := fields(10).int(a.ID).str(a.ItemName).str(a.Description).int(a.InitialBid).int(a.Reserve).int(a.DateTime).
		int(a.Expires).int(a.Seller).int(a.Category).str(a.Extra)
	return uint64(h.int(b.Bidder).int(b.Price).str(b.Channel).str(b.URL).int(b.DateTime).str(b.Extra))
}

func hashLine(l string) uint64 { return uint64(fields(11).str(l)) }

// hashLineBytes is hashLine(string(l)), without the string.
func hashLineBytes(l []byte) uint64 { return uint64(fields(11).int(int64(maphash.Bytes(hashSeed, l)))) }

// hashQ10 is not used: q10's output is compared as lines (hashLine).
func hashQ10(r Q10Result) uint64 { return hashLine(r.String()) }

func hashQ11(r Q11Result) uint64 {
	return uint64(fields(12).int(r.Bidder).int(r.Count).int(r.Start).int(r.End))
}

func hashQ12(r Q12Result) uint64 {
	return uint64(fields(13).int(r.Bidder).int(r.Count).int(r.Start).int(r.End))
}

func hashQ13(r Q13Result) uint64 {
	return uint64(fields(14).int(r.Auction).int(r.Bidder).int(r.Price).int(r.DateTime).str(r.Value))
}

func hashQ14(r Q14Result) uint64 {
	return uint64(fields(15).int(r.Auction).int(r.Bidder).int(r.PriceMilli).str(r.BidTimeType).int(r.DateTime).
		str(r.Extra).int(r.CCount))
}

func hashBidStats(h fields, s BidStats) fields {
	for _, v := range [][4]int64{s.Bids, s.Bidders, s.Auctions} {
		h = h.int(v[0]).int(v[1]).int(v[2]).int(v[3])
	}
	return h
}

func hashQ15(r Q15Result) uint64 { return uint64(hashBidStats(fields(16).str(r.Day), r.BidStats)) }

func hashQ16(r Q16Result) uint64 {
	return uint64(hashBidStats(fields(17).str(r.Channel).str(r.Day).str(r.Minute), r.BidStats))
}

func hashQ17(r Q17Result) uint64 {
	h := fields(18).int(r.Auction).str(r.Day)
	for _, n := range r.Bids {
		h = h.int(n)
	}
	return uint64(h.int(r.Min).int(r.Max).int(r.Avg).int(r.Sum))
}

func hashQ19(r Q19Result) uint64 { return uint64(fields(19).int(r.Rank).int(int64(hashBid(r.Bid)))) }

func q19Key(r Q19Result) upsertKey { return upsertKey{r.Auction, r.Rank} }

func hashQ20(r Q20Result) uint64 {
	a := &r.Auction
	h := fields(20).int(int64(hashBid(r.Bid))).int(a.ID).str(a.ItemName).str(a.Description).int(a.InitialBid).
		int(a.Reserve).int(a.DateTime).int(a.Expires).int(a.Seller).int(a.Category).str(a.Extra)
	return uint64(h)
}

func hashQ21(r Q21Result) uint64 {
	return uint64(fields(21).int(r.Auction).int(r.Bidder).int(r.Price).str(r.Channel).str(r.ChannelID))
}

func hashQ22(r Q22Result) uint64 {
	return uint64(fields(22).int(r.Auction).int(r.Bidder).int(r.Price).str(r.Channel).str(r.Dir1).str(r.Dir2).str(r.Dir3))
}
