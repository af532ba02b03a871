package nexmark

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// The engine pipelines of q10–q22 (q6 and q9 are in engine_auctions.go).

const day = 24 * time.Hour

// ---- q10 -----------------------------------------------------------------

// EngineQ10 is q10's transformation: every bid with its day and minute.
// The harness writes the results with the exactly-once file sink,
// partitioned by day and minute (see q10Sink).
func EngineQ10(events runtime.Stream[Record]) runtime.Stream[Traced[Q10Result]] {
	return applyRecordOp[Traced[Q10Result], *q10Op](events, "q10-log")
}

type q10Op struct {
	recordOp[Traced[Q10Result]]
	minutes q10Minutes
}

func (o *q10Op) Process(r Record) {
	if r.Kind == KindBid {
		o.out.Collect(Traced[Q10Result]{o.minutes.of(&r.Bid), r.N})
	}
}

// ---- q11 -----------------------------------------------------------------

// EngineQ11 is q11: bids per bidder and session (10 s gap), with
// operators.Session windows.
func EngineQ11(events runtime.Stream[Record]) runtime.Stream[Traced[Q11Result]] {
	byBidder := operators.KeyBy(bids(events), func(b Bid) int64 { return b.Bidder })
	counts, _ := operators.WindowAggregate(
		operators.Window(byBidder, "q11-sessions", operators.Session(Q11SessionGap*time.Millisecond)),
		operators.WindowAggregateFunc[int64, Bid, int64, Traced[Q11Result]]{
			Add:   func(n int64, _ Bid, _ bool) int64 { return n + 1 },
			Merge: func(a, b int64) int64 { return a + b },
			Result: func(bidder int64, w operators.TimeWindow, n int64) Traced[Q11Result] {
				return Traced[Q11Result]{Q11Result{bidder, n, w.Start, w.End}, -1}
			},
		}, nil)
	return counts
}

// ---- q12 -----------------------------------------------------------------

// procBid is a bid's bidder; it carries the bid's processing time as its
// timestamp.
type procBid struct{ Bidder int64 }

type q12Op struct{ recordOp[procBid] }

func (o *q12Op) Process(r Record) {
	if r.Kind == KindBid {
		o.out.Collect(procBid{r.Bid.Bidder})
	}
}

// EngineQ12 is q12: bids per bidder in 10 s tumbling windows of processing
// time. The processing time is the harness's fixed clock
// (Generator.ProcessingTimeAt), which the source stamps on every record
// (Record.ProcTime) and, for this query, gives them as their event time
// (see the harness), so the windows are ordinary event-time windows over
// it.
func EngineQ12(events runtime.Stream[Record]) runtime.Stream[Traced[Q12Result]] {
	byBidder := operators.KeyBy(applyRecordOp[procBid, *q12Op](events, "q12-proctime"), func(b procBid) int64 { return b.Bidder })
	counts, _ := operators.WindowAggregate(
		operators.Window(byBidder, "q12-windows", operators.Tumbling(Q12WindowSize*time.Millisecond)).PreAggregate(),
		operators.WindowAggregateFunc[int64, procBid, int64, Traced[Q12Result]]{
			Add:   func(n int64, _ procBid, _ bool) int64 { return n + 1 },
			Merge: func(a, b int64) int64 { return a + b },
			Result: func(bidder int64, w operators.TimeWindow, n int64) Traced[Q12Result] {
				return Traced[Q12Result]{Q12Result{bidder, n, w.Start, w.End}, -1}
			},
		}, nil)
	return counts
}

// ---- q13 -----------------------------------------------------------------

// WriteQ13SideInput writes q13's side input, Q13SideInputRows lines of
// "key,value", to path.
func WriteQ13SideInput(path string) error {
	var b strings.Builder
	for k := range int64(Q13SideInputRows) {
		fmt.Fprintf(&b, "%d,%s\n", k, Q13SideInput(k))
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// loadSideInput reads a "key,value" file.
func loadSideInput(path string) (map[int64]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	table := map[int64]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		k, v, ok := strings.Cut(sc.Text(), ",")
		key, err := strconv.ParseInt(k, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("%s:%d: want key,value with an integer key: %q", path, n, sc.Text())
		}
		table[key] = v
	}
	return table, sc.Err()
}

// EngineQ13 is q13: every bid joined with its row of the side input in the
// file sideInput (see WriteQ13SideInput), with operators.LookupJoin.
func EngineQ13(events runtime.Stream[Record], sideInput string) runtime.Stream[Traced[Q13Result]] {
	return operators.LookupJoin(bids(events), "q13-join", func() (map[int64]string, error) { return loadSideInput(sideInput) },
		func(b Bid) int64 { return b.Auction % Q13SideInputRows },
		func(b Bid, v string, found bool, out runtime.Collector[Traced[Q13Result]]) {
			if found {
				out.Collect(Traced[Q13Result]{Q13Result{b.Auction, b.Bidder, b.Price, b.DateTime, v}, -1})
			}
		})
}

// ---- q14 -----------------------------------------------------------------

type q14Op struct{ recordOp[Traced[Q14Result]] }

func (o *q14Op) Process(r Record) {
	if r.Kind == KindBid {
		if res, ok := q14Of(&r.Bid); ok {
			o.out.Collect(Traced[Q14Result]{res, r.N})
		}
	}
}

// EngineQ14 is q14: expensive bids with their euro price, time of day and
// number of 'c' in extra.
func EngineQ14(events runtime.Stream[Record]) runtime.Stream[Traced[Q14Result]] {
	return applyRecordOp[Traced[Q14Result], *q14Op](events, "q14-calc")
}

// ---- q15, q16 --------------------------------------------------------------

func appendRankSet(dst []byte, m map[int64]uint8) []byte {
	dst = appendInt(dst, int64(len(m)))
	for k, v := range m {
		dst = append(appendInt(dst, k), v)
	}
	return dst
}

func decodeRankSet(d *decoder) map[int64]uint8 {
	n := d.len()
	m := make(map[int64]uint8, min(n, 1<<16))
	for range n {
		k := d.int()
		if d.err != nil || len(d.b) == 0 {
			d.err = errShortState
			return m
		}
		m[k] = d.b[0]
		d.b = d.b[1:]
	}
	return m
}

var bidStatsSetsCodec = codec[bidStatsSets]{
	enc: func(dst []byte, s bidStatsSets) []byte {
		for _, n := range s.bids {
			dst = appendInt(dst, n)
		}
		return appendRankSet(appendRankSet(dst, s.bidders), s.auctions)
	},
	dec: func(d *decoder) bidStatsSets {
		var s bidStatsSets
		for i := range s.bids {
			s.bids[i] = d.int()
		}
		s.bidders, s.auctions = decodeRankSet(d), decodeRankSet(d)
		return s
	},
}

// merge adds o into s, in place.
func (s bidStatsSets) merge(o bidStatsSets) bidStatsSets {
	if s.bidders == nil {
		s.bidders, s.auctions = map[int64]uint8{}, map[int64]uint8{}
	}
	for i := range s.bids {
		s.bids[i] += o.bids[i]
	}
	for k, v := range o.bidders {
		s.bidders[k] |= v
	}
	for k, v := range o.auctions {
		s.auctions[k] |= v
	}
	return s
}

func addBid(s bidStatsSets, b Bid, _ bool) bidStatsSets {
	s.add(&b)
	return s
}

// EngineQ15 is q15: per day, bids and distinct bidders and auctions, in
// total and per price rank: one key, day windows, pre-aggregated by each
// subtask (distinct counts as sets of ids).
func EngineQ15(events runtime.Stream[Record]) runtime.Stream[Traced[Q15Result]] {
	all := operators.KeyBy(bids(events), func(Bid) int64 { return 0 })
	stats, _ := operators.WindowAggregate(operators.Window(all, "q15-days", operators.Tumbling(day)).PreAggregate(),
		operators.WindowAggregateFunc[int64, Bid, bidStatsSets, Traced[Q15Result]]{
			Add:   addBid,
			Merge: bidStatsSets.merge,
			Result: func(_ int64, w operators.TimeWindow, s bidStatsSets) Traced[Q15Result] {
				return Traced[Q15Result]{Q15Result{date(w.Start), s.stats()}, -1}
			},
		}, bidStatsSetsCodec)
	return stats
}

// q16Acc is q16's accumulator: q15's and the latest bid time.
type q16Acc struct {
	bidStatsSets
	Last int64
}

var q16AccCodec = codec[q16Acc]{
	enc: func(dst []byte, a q16Acc) []byte {
		return appendInt(bidStatsSetsCodec.enc(dst, a.bidStatsSets), a.Last)
	},
	dec: func(d *decoder) q16Acc { return q16Acc{bidStatsSetsCodec.dec(d), d.int()} },
}

// EngineQ16 is q16: q15's statistics per channel and day, with the latest
// minute: keyed by channel, day windows, pre-aggregated.
func EngineQ16(events runtime.Stream[Record]) runtime.Stream[Traced[Q16Result]] {
	byChannel := operators.KeyBy(bids(events), func(b Bid) string { return b.Channel })
	stats, _ := operators.WindowAggregate(operators.Window(byChannel, "q16-days", operators.Tumbling(day)).PreAggregate(),
		operators.WindowAggregateFunc[string, Bid, q16Acc, Traced[Q16Result]]{
			Add: func(a q16Acc, b Bid, first bool) q16Acc {
				a.add(&b)
				if first || b.DateTime > a.Last {
					a.Last = b.DateTime
				}
				return a
			},
			Merge: func(a, b q16Acc) q16Acc { return q16Acc{a.merge(b.bidStatsSets), max(a.Last, b.Last)} },
			Result: func(channel string, w operators.TimeWindow, a q16Acc) Traced[Q16Result] {
				return Traced[Q16Result]{Q16Result{channel, date(w.Start), hourMinute(a.Last), a.stats()}, -1}
			},
		}, q16AccCodec)
	return stats
}

// ---- q17 -----------------------------------------------------------------

var auctionDayStatsCodec = codec[AuctionDayStats]{
	enc: func(dst []byte, s AuctionDayStats) []byte {
		for _, n := range s.Bids {
			dst = appendInt(dst, n)
		}
		return appendInt(appendInt(appendInt(dst, s.Min), s.Max), s.Sum)
	},
	dec: func(d *decoder) AuctionDayStats {
		var s AuctionDayStats
		for i := range s.Bids {
			s.Bids[i] = d.int()
		}
		s.Min, s.Max, s.Sum = d.int(), d.int(), d.int()
		return s
	},
}

// EngineQ17 is q17: per auction and day, bid counts and price statistics:
// keyed by auction, day windows, pre-aggregated.
func EngineQ17(events runtime.Stream[Record]) runtime.Stream[Traced[Q17Result]] {
	byAuction := operators.KeyBy(bids(events), func(b Bid) int64 { return b.Auction })
	stats, _ := operators.WindowAggregate(operators.Window(byAuction, "q17-days", operators.Tumbling(day)).PreAggregate(),
		operators.WindowAggregateFunc[int64, Bid, AuctionDayStats, Traced[Q17Result]]{
			Add:   func(s AuctionDayStats, b Bid, _ bool) AuctionDayStats { return s.add(b.Price) },
			Merge: AuctionDayStats.merge,
			Result: func(auction int64, w operators.TimeWindow, s AuctionDayStats) Traced[Q17Result] {
				return Traced[Q17Result]{Q17Result{auction, date(w.Start), s.final()}, -1}
			},
		}, auctionDayStatsCodec)
	return stats
}

// ---- q18 -----------------------------------------------------------------

type bidderAuction struct{ Bidder, Auction int64 }

var bidderAuctionCodec = codec[bidderAuction]{
	enc: func(dst []byte, k bidderAuction) []byte { return appendInt(appendInt(dst, k.Bidder), k.Auction) },
	dec: func(d *decoder) bidderAuction { return bidderAuction{d.int(), d.int()} },
}

// EngineQ18 is q18: the last bid of each bidder on each auction, as an
// upsert stream (operators.KeepLast) that carries each changed row once per
// checkpoint (KeepLastAtCheckpoints, as Flink's published runs use
// mini-batches): the sink commits the same table at each checkpoint.
func EngineQ18(events runtime.Stream[Record]) runtime.Stream[Traced[Q18Result]] {
	keyed := operators.KeyBy(bids(events), func(b Bid) bidderAuction { return bidderAuction{b.Bidder, b.Auction} },
		operators.KeyCodec[bidderAuction](bidderAuctionCodec))
	last := operators.KeepLast(keyed, "q18-last", func(a, b Bid) bool { return LaterBid(&a, &b) }, bidCodec,
		operators.KeepLastAtCheckpoints())
	return operators.Map(last, func(b Bid) Traced[Q18Result] { return Traced[Q18Result]{b, -1} })
}

// ---- q19 -----------------------------------------------------------------

// EngineQ19 is q19: the 10 highest bids of each auction, as an upsert
// stream of ranked rows (operators.TopNPerKey): every change of an
// auction's ranking emits the rows from the first changed rank on.
func EngineQ19(events runtime.Stream[Record]) runtime.Stream[Traced[Q19Result]] {
	byAuction := operators.KeyBy(bids(events), func(b Bid) int64 { return b.Auction })
	ranked := operators.TopNPerKey(byAuction, "q19-top", operators.TopN[Bid]{N: Q19TopN, Compare: func(a, b Bid) int {
		return compareBids(&a, &b)
	}}, bidCodec)
	return operators.FlatMap(ranked, func(r operators.Ranking[int64, Bid], out runtime.Collector[Traced[Q19Result]]) {
		for i := r.From; i < len(r.Top); i++ {
			out.Collect(Traced[Q19Result]{Q19Result{int64(i + 1), r.Top[i]}, -1})
		}
	})
}

// ---- q20 -----------------------------------------------------------------

// q20In is a bid or a category-10 auction, keyed by auction id.
type q20In struct {
	Auction *Auction // nil for a bid
	Bid     Bid
	N       int64
}

type q20Op struct {
	recordOp[q20In]
	auctions slab[Auction]
}

func (o *q20Op) Process(r Record) {
	switch r.Kind {
	case KindAuction:
		if r.Auction.Category == Q3Category {
			a := o.auctions.next()
			*a = r.Auction
			o.out.Collect(q20In{Auction: a, N: r.N})
		}
	case KindBid:
		o.out.Collect(q20In{Bid: r.Bid, N: r.N})
	}
}

var auctionsCodec = codec[[]Auction]{
	enc: func(dst []byte, as []Auction) []byte { return appendSlice(dst, as, appendAuction) },
	dec: func(d *decoder) []Auction { return decodeSlice(d, decodeAuction) },
}

var bidsCodec = codec[[]Bid]{
	enc: func(dst []byte, bs []Bid) []byte { return appendSlice(dst, bs, bidCodec.enc) },
	dec: func(d *decoder) []Bid { return decodeSlice(d, bidCodec.dec) },
}

// EngineQ20 is q20: the incremental join of bids with category-10
// auctions on the auction id, every bid and auction kept (operators.Process
// with keyed state, as q3).
func EngineQ20(events runtime.Stream[Record]) runtime.Stream[Traced[Q20Result]] {
	keyed := operators.KeyBy(applyRecordOp[q20In, *q20Op](events, "q20-filter"), func(x q20In) int64 {
		if x.Auction != nil {
			return x.Auction.ID
		}
		return x.Bid.Auction
	})
	return operators.Process(keyed, "q20-join",
		func(sc *operators.SetupContext[int64]) (operators.ProcessFunc[int64, q20In, Traced[Q20Result]], error) {
			auctions, err := state.NewValue(sc.Scope, "auctions", state.Codec[[]Auction](auctionsCodec))
			if err != nil {
				return nil, err
			}
			bids, err := state.NewValue(sc.Scope, "bids", state.Codec[[]Bid](bidsCodec))
			if err != nil {
				return nil, err
			}
			return func(_ *operators.Context[int64], x q20In, out runtime.Collector[Traced[Q20Result]]) error {
				if x.Auction != nil {
					as, _ := auctions.Get()
					auctions.Put(append(slices.Clip(as), *x.Auction))
					bs, _ := bids.Get()
					for _, b := range bs {
						out.Collect(Traced[Q20Result]{Q20Result{b, *x.Auction}, x.N})
					}
					return nil
				}
				// Appending in place is safe: a frozen copy keeps its own
				// length.
				bs, _ := bids.Get()
				bids.Put(append(bs, x.Bid))
				as, _ := auctions.Get()
				for _, a := range as {
					out.Collect(Traced[Q20Result]{Q20Result{x.Bid, a}, x.N})
				}
				return nil
			}, nil
		})
}

// ---- q21, q22 --------------------------------------------------------------

type q21Op struct{ recordOp[Traced[Q21Result]] }

func (o *q21Op) Process(r Record) {
	if r.Kind == KindBid {
		if res, ok := q21Of(&r.Bid); ok {
			o.out.Collect(Traced[Q21Result]{res, r.N})
		}
	}
}

// EngineQ21 is q21: bids with their channel id.
func EngineQ21(events runtime.Stream[Record]) runtime.Stream[Traced[Q21Result]] {
	return applyRecordOp[Traced[Q21Result], *q21Op](events, "q21-channel")
}

type q22Op struct{ recordOp[Traced[Q22Result]] }

func (o *q22Op) Process(r Record) {
	if r.Kind == KindBid {
		o.out.Collect(Traced[Q22Result]{q22Of(&r.Bid), r.N})
	}
}

// EngineQ22 is q22: bids with the directories of their URL.
func EngineQ22(events runtime.Stream[Record]) runtime.Stream[Traced[Q22Result]] {
	return applyRecordOp[Traced[Q22Result], *q22Op](events, "q22-dirs")
}
