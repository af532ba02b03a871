package nexmark

import (
	"cmp"
	"slices"
	"time"

	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// The queries as weir pipelines, q0–q5, q7 and q8 here, the others in
// engine_auctions.go and engine_more.go. Each EngineQn takes the stream of
// the Nexmark source (Source; the event-time queries need it
// WithWatermarks, q12 with watermarks on Record.ProcTime, the others work
// with or without) and returns the stream of its results, which equal
// QnReference's as a multiset for the same events.
//
// Shapes:
//
//   - q0, q1, q2 (and q10, q14, q21, q22) are one stateless operator
//     chained to the source.
//   - q3 filters in the source's chain, keys persons and auctions by person
//     id and joins them with keyed state (every person and auction kept).
//   - q4 closes auctions (see closeAuctions) and applies the closings per
//     category in (expiry, auction) order.
//   - q5, q7 and q8 are event-time windows (operators.Window) aggregated
//     incrementally and pre-aggregated by each subtask before the partition
//     by key (PreAggregate); q5 and q7 rank with operators.WindowTopN.

// ---- q0, q1, q2 --------------------------------------------------------------

// recordOp is the base of the operators chained to the source: it keeps
// the output. NB: queries write Process as a method rather than passing a
// function to operators.FlatMap, which saves a copy of the (large) Record
// per event.
type recordOp[Out any] struct {
	runtime.OperatorBase
	out runtime.Collector[Out]
}

func (o *recordOp[Out]) Open(_ *runtime.OperatorContext, out runtime.Collector[Out]) error {
	o.out = out
	return nil
}

func applyRecordOp[Out any, Op interface {
	runtime.Operator[Record, Out]
	*T
}, T any](events runtime.Stream[Record], name string) runtime.Stream[Out] {
	return runtime.Apply(events, events.Pipeline().UniqueName(name), func() runtime.Operator[Record, Out] { return Op(new(T)) })
}

type q0Op struct{ recordOp[Traced[Q0Result]] }

func (o *q0Op) Process(r Record) {
	if r.Kind == KindBid {
		o.out.Collect(Traced[Q0Result]{r.Bid, r.N})
	}
}

// EngineQ0 is q0: every bid, unchanged.
func EngineQ0(events runtime.Stream[Record]) runtime.Stream[Traced[Q0Result]] {
	return applyRecordOp[Traced[Q0Result], *q0Op](events, "q0-bids")
}

type q1Op struct{ recordOp[Traced[Q1Result]] }

func (o *q1Op) Process(r Record) {
	if r.Kind == KindBid {
		b := &r.Bid
		o.out.Collect(Traced[Q1Result]{Q1Result{b.Auction, b.Bidder, b.Price * Q1EuroPerDollarMilli, b.DateTime, b.Extra}, r.N})
	}
}

// EngineQ1 is q1: every bid with its price in euros.
func EngineQ1(events runtime.Stream[Record]) runtime.Stream[Traced[Q1Result]] {
	return applyRecordOp[Traced[Q1Result], *q1Op](events, "q1-convert")
}

type q2Op struct{ recordOp[Traced[Q2Result]] }

func (o *q2Op) Process(r Record) {
	if r.Kind == KindBid && r.Bid.Auction%Q2AuctionSkip == 0 {
		o.out.Collect(Traced[Q2Result]{Q2Result{r.Bid.Auction, r.Bid.Price}, r.N})
	}
}

// EngineQ2 is q2: auction and price of the bids on every 123rd auction.
func EngineQ2(events runtime.Stream[Record]) runtime.Stream[Traced[Q2Result]] {
	return applyRecordOp[Traced[Q2Result], *q2Op](events, "q2-select")
}

// ---- q3 ------------------------------------------------------------------

// q3In is a qualifying person or auction, keyed by the person id (the
// auction's seller).
type q3In struct {
	Person    int64
	IsPerson  bool
	Name      string
	City      string
	State     string
	AuctionID int64
	Origin    int64
}

type q3Person struct{ Name, City, State string }

var q3PersonsCodec = codec[[]q3Person]{
	enc: func(dst []byte, ps []q3Person) []byte {
		return appendSlice(dst, ps, func(dst []byte, p q3Person) []byte {
			return appendString(appendString(appendString(dst, p.Name), p.City), p.State)
		})
	},
	dec: func(d *decoder) []q3Person {
		return decodeSlice(d, func(d *decoder) q3Person { return q3Person{d.string(), d.string(), d.string()} })
	},
}

var int64sCodec = codec[[]int64]{
	enc: func(dst []byte, s []int64) []byte { return appendSlice(dst, s, appendInt) },
	dec: func(d *decoder) []int64 { return decodeSlice(d, (*decoder).int) },
}

type q3Op struct{ recordOp[q3In] }

func (o *q3Op) Process(r Record) {
	switch e := &r; e.Kind {
	case KindPerson:
		if q3State(e.Person.State) {
			o.out.Collect(q3In{Person: e.Person.ID, IsPerson: true, Name: e.Person.Name, City: e.Person.City, State: e.Person.State, Origin: r.N})
		}
	case KindAuction:
		if e.Auction.Category == Q3Category {
			o.out.Collect(q3In{Person: e.Auction.Seller, AuctionID: e.Auction.ID, Origin: r.N})
		}
	}
}

// EngineQ3 is q3: the incremental join of OR/ID/CA persons with their
// category-10 auctions.
func EngineQ3(events runtime.Stream[Record]) runtime.Stream[Traced[Q3Result]] {
	sides := applyRecordOp[q3In, *q3Op](events, "q3-filter")
	keyed := operators.KeyBy(sides, func(in q3In) int64 { return in.Person })
	return operators.Process(keyed, "q3-join",
		func(sc *operators.SetupContext[int64]) (operators.ProcessFunc[int64, q3In, Traced[Q3Result]], error) {
			persons, err := state.NewValue(sc.Scope, "persons", state.Codec[[]q3Person](q3PersonsCodec))
			if err != nil {
				return nil, err
			}
			auctions, err := state.NewValue(sc.Scope, "auctions", state.Codec[[]int64](int64sCodec))
			if err != nil {
				return nil, err
			}
			return func(_ *operators.Context[int64], in q3In, out runtime.Collector[Traced[Q3Result]]) error {
				if in.IsPerson {
					ps, _ := persons.Get()
					persons.Put(append(slices.Clip(ps), q3Person{in.Name, in.City, in.State}))
					as, _ := auctions.Get()
					for _, id := range as {
						out.Collect(Traced[Q3Result]{Q3Result{in.Name, in.City, in.State, id}, in.Origin})
					}
					return nil
				}
				as, _ := auctions.Get()
				auctions.Put(append(slices.Clip(as), in.AuctionID))
				ps, _ := persons.Get()
				for _, p := range ps {
					out.Collect(Traced[Q3Result]{Q3Result{p.Name, p.City, p.State, in.AuctionID}, in.Origin})
				}
				return nil
			}, nil
		})
}

// ---- windowed queries -------------------------------------------------------

// Window results carry no origin (-1): the harness traces them to the first
// event at or after their window's end, whose watermark fired them (see
// query.firedAt).

const windowSize = WindowSize * time.Millisecond

// bidOp projects the bids of the source's records.
type bidOp struct{ recordOp[Bid] }

func (o *bidOp) Process(r Record) {
	if r.Kind == KindBid {
		o.out.Collect(r.Bid)
	}
}

func bids(events runtime.Stream[Record]) runtime.Stream[Bid] {
	return applyRecordOp[Bid, *bidOp](events, "bids")
}

var bidCodec = codec[Bid]{
	enc: func(dst []byte, b Bid) []byte {
		dst = appendInt(appendInt(appendInt(dst, b.Auction), b.Bidder), b.Price)
		dst = appendString(appendString(dst, b.Channel), b.URL)
		return appendString(appendInt(dst, b.DateTime), b.Extra)
	},
	dec: func(d *decoder) Bid {
		return Bid{Auction: d.int(), Bidder: d.int(), Price: d.int(), Channel: d.string(), URL: d.string(), DateTime: d.int(), Extra: d.string()}
	},
}

// ---- q5 ------------------------------------------------------------------

// q5Count is the number of bids on an auction in one sliding window.
type q5Count struct {
	Auction, Start, Num int64
}

var q5CountCodec = codec[q5Count]{
	enc: func(dst []byte, c q5Count) []byte {
		return appendInt(appendInt(appendInt(dst, c.Auction), c.Start), c.Num)
	},
	dec: func(d *decoder) q5Count { return q5Count{d.int(), d.int(), d.int()} },
}

// EngineQ5 is q5: the auctions with the most bids per sliding window of
// 10 s every 2 s (all ties). Bids are counted per auction and window, each
// subtask pre-aggregating its bids per 2 s pane; the counts of a window
// then go, keyed by the window, to a top 1 with ties, itself a window of
// the counts, which carry their window's last millisecond as timestamp
// (cascaded windows).
func EngineQ5(events runtime.Stream[Record]) runtime.Stream[Traced[Q5Result]] {
	byAuction := operators.KeyBy(bids(events), func(b Bid) int64 { return b.Auction })
	counts, _ := operators.WindowAggregate(
		operators.Window(byAuction, "q5-counts", operators.Sliding(windowSize, Q5Slide*time.Millisecond)).PreAggregate(),
		operators.WindowAggregateFunc[int64, Bid, int64, q5Count]{
			Add:   func(n int64, _ Bid, _ bool) int64 { return n + 1 },
			Merge: func(a, b int64) int64 { return a + b },
			Result: func(auction int64, w operators.TimeWindow, n int64) q5Count {
				return q5Count{auction, w.Start, n}
			},
		}, nil)
	byWindow := operators.KeyBy(counts, func(c q5Count) int64 { return c.Start })
	hottest, _ := operators.WindowTopN(
		operators.Window(byWindow, "q5-hottest", operators.Tumbling(Q5Slide*time.Millisecond)).PreAggregate(),
		operators.TopN[q5Count]{N: 1, Compare: func(a, b q5Count) int { return cmp.Compare(b.Num, a.Num) }, WithTies: true},
		q5CountCodec)
	return operators.FlatMap(hottest, func(r operators.WindowResult[int64, []q5Count], out runtime.Collector[Traced[Q5Result]]) {
		for _, c := range r.Value {
			out.Collect(Traced[Q5Result]{Q5Result{c.Start, c.Start + WindowSize, c.Auction, c.Num}, -1})
		}
	})
}

// ---- q7 ------------------------------------------------------------------

// q7Bid is the part of a bid that q7 reports: a bid without its channel
// and URL. NB: projected in the source's chain, before the window, so that
// at 6 words it is passed in registers through the pre-aggregation (key,
// add, rank), where a Bid, at 10 words one more than the register ABI
// takes, is copied through memory at every call.
type q7Bid struct {
	Auction, Bidder, Price, DateTime int64
	Extra                            string
}

var q7BidCodec = codec[q7Bid]{
	enc: func(dst []byte, b q7Bid) []byte {
		dst = appendInt(appendInt(appendInt(dst, b.Auction), b.Bidder), b.Price)
		return appendString(appendInt(dst, b.DateTime), b.Extra)
	},
	dec: func(d *decoder) q7Bid {
		return q7Bid{Auction: d.int(), Bidder: d.int(), Price: d.int(), DateTime: d.int(), Extra: d.string()}
	},
}

// q7BidOp projects the bids of the source's records to q7Bid.
type q7BidOp struct{ recordOp[q7Bid] }

func (o *q7BidOp) Process(r Record) {
	if r.Kind == KindBid {
		b := &r.Bid
		o.out.Collect(q7Bid{b.Auction, b.Bidder, b.Price, b.DateTime, b.Extra})
	}
}

// EngineQ7 is q7: the highest bids of every 10 s tumbling window (all
// ties): a global top 1 with ties, pre-aggregated by every subtask.
func EngineQ7(events runtime.Stream[Record]) runtime.Stream[Traced[Q7Result]] {
	bids := applyRecordOp[q7Bid, *q7BidOp](events, "q7-bids")
	global := operators.KeyBy(bids, func(q7Bid) int64 { return 0 })
	highest, _ := operators.WindowTopN(
		operators.Window(global, "q7-highest", operators.Tumbling(windowSize)).PreAggregate(),
		operators.TopN[q7Bid]{N: 1, Compare: func(a, b q7Bid) int { return cmp.Compare(b.Price, a.Price) }, WithTies: true},
		q7BidCodec)
	return operators.FlatMap(highest, func(r operators.WindowResult[int64, []q7Bid], out runtime.Collector[Traced[Q7Result]]) {
		for _, b := range r.Value {
			out.Collect(Traced[Q7Result]{Q7Result{r.Window.Start, r.Window.End, b.Auction, b.Bidder, b.Price, b.DateTime, b.Extra}, -1})
		}
	})
}

// ---- q8 ------------------------------------------------------------------

// q8In is a new person or an auction's seller, keyed by person id.
type q8In struct {
	ID       int64
	Name     string
	IsPerson bool
}

type q8Op struct{ recordOp[q8In] }

func (o *q8Op) Process(r Record) {
	switch r.Kind {
	case KindPerson:
		o.out.Collect(q8In{r.Person.ID, r.Person.Name, true})
	case KindAuction:
		o.out.Collect(q8In{r.Auction.Seller, "", false})
	}
}

// q8Acc is what one window knows of one person id: the names it registered
// with (sorted, without repeats) and whether it opened an auction.
type q8Acc struct {
	Names  []string
	Seller bool
}

func (a q8Acc) withName(name string) q8Acc {
	i, found := slices.BinarySearch(a.Names, name)
	if !found {
		a.Names = slices.Insert(slices.Clip(a.Names), i, name)
	}
	return a
}

var q8AccCodec = codec[q8Acc]{
	enc: func(dst []byte, a q8Acc) []byte { return appendBool(appendSlice(dst, a.Names, appendString), a.Seller) },
	dec: func(d *decoder) q8Acc { return q8Acc{decodeSlice(d, (*decoder).string), d.bool()} },
}

// EngineQ8 is q8: persons who registered and opened an auction in the same
// 10 s tumbling window: persons and sellers keyed by person id, aggregated
// per window (pre-aggregated by every subtask).
func EngineQ8(events runtime.Stream[Record]) runtime.Stream[Traced[Q8Result]] {
	in := operators.KeyBy(applyRecordOp[q8In, *q8Op](events, "q8-persons-sellers"), func(x q8In) int64 { return x.ID })
	matches, _ := operators.WindowAggregate(
		operators.Window(in, "q8-windows", operators.Tumbling(windowSize)).PreAggregate(),
		operators.WindowAggregateFunc[int64, q8In, q8Acc, []Q8Result]{
			Add: func(a q8Acc, x q8In, _ bool) q8Acc {
				if !x.IsPerson {
					a.Seller = true
					return a
				}
				return a.withName(x.Name)
			},
			Merge: func(a, b q8Acc) q8Acc {
				a.Seller = a.Seller || b.Seller
				for _, n := range b.Names {
					a = a.withName(n)
				}
				return a
			},
			Result: func(id int64, w operators.TimeWindow, a q8Acc) []Q8Result {
				if !a.Seller {
					return nil
				}
				out := make([]Q8Result, len(a.Names))
				for i, n := range a.Names {
					out[i] = Q8Result{id, n, w.Start}
				}
				return out
			},
		}, q8AccCodec)
	return operators.FlatMap(matches, func(rs []Q8Result, out runtime.Collector[Traced[Q8Result]]) {
		for _, r := range rs {
			out.Collect(Traced[Q8Result]{r, -1})
		}
	})
}
