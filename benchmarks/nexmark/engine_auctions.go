package nexmark

import (
	"cmp"
	"slices"

	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// The queries built on closed auctions: q4, q6 and q9. closeAuctions keys
// auctions and bids by auction id and keeps, per auction, its best valid
// bid, with an event-time timer at the auction's expiry that emits the
// winner. q4 and q6 then key the closings by category or seller and apply
// them in (expiry, auction) order once the watermark has passed them
// (applyInOrder), which is what makes their running averages deterministic.

// auctionOrBid is an auction or a bid, keyed by auction id.
type auctionOrBid struct {
	Auction *Auction // nil for a bid; read-only
	Bid     Bid
}

// auctionOrBidOp selects auctions and bids; with dropText it clears their
// text fields, which queries that only need numbers do not keep in state.
type auctionOrBidOp struct {
	recordOp[auctionOrBid]
	dropText bool
	auctions slab[Auction]
}

func (o *auctionOrBidOp) Process(r Record) {
	switch r.Kind {
	case KindAuction:
		a := o.auctions.next()
		*a = r.Auction
		if o.dropText {
			a.ItemName, a.Description, a.Extra = "", "", ""
		}
		o.out.Collect(auctionOrBid{Auction: a})
	case KindBid:
		b := r.Bid
		if o.dropText {
			b.Channel, b.URL, b.Extra = "", "", ""
		}
		o.out.Collect(auctionOrBid{Bid: b})
	}
}

// slab hands out the Ts an operator passes on by pointer (the auctions of
// auctionOrBid and q20In) from slabs of slabLen, one allocation each. A
// pointer handed out stays valid, as a new object's would: a slab is never
// reused. A T kept alive keeps its slab alive.
type slab[T any] []T

const slabLen = 32

// next returns a zero T of the slab, which it refills when used up.
func (s *slab[T]) next() *T {
	if len(*s) == 0 {
		*s = make([]T, slabLen)
	}
	p := &(*s)[0]
	*s = (*s)[1:]
	return p
}

// auctionState is the keyed state of one auction id. It is held by
// pointer, so that the state's hash table moves 8 bytes per lookup rather
// than the whole struct, and copied on write: a value put in state is never
// changed (a checkpoint may be encoding it).
type auctionState struct {
	Closed    bool // the auction closed: a tombstone
	Known     bool // the auction arrived
	Auction   Auction
	HasWinner bool
	Winner    Bid
	Pending   []Bid // bids that arrived before the auction
}

// wins reports whether b is valid and better than the winner so far.
func (s *auctionState) wins(b *Bid) bool {
	return validBid(&s.Auction, b) && (!s.HasWinner || BetterBid(b, &s.Winner))
}

// closedState is the tombstone of a closed auction, shared.
var closedState = &auctionState{Closed: true}

func appendAuction(dst []byte, a Auction) []byte {
	dst = appendString(appendString(appendInt(dst, a.ID), a.ItemName), a.Description)
	dst = appendInt(appendInt(appendInt(appendInt(dst, a.InitialBid), a.Reserve), a.DateTime), a.Expires)
	return appendString(appendInt(appendInt(dst, a.Seller), a.Category), a.Extra)
}

func decodeAuction(d *decoder) Auction {
	return Auction{ID: d.int(), ItemName: d.string(), Description: d.string(), InitialBid: d.int(), Reserve: d.int(),
		DateTime: d.int(), Expires: d.int(), Seller: d.int(), Category: d.int(), Extra: d.string()}
}

var auctionStateCodec = codec[*auctionState]{
	enc: func(dst []byte, s *auctionState) []byte {
		dst = appendBool(appendBool(dst, s.Closed), s.Known)
		if s.Closed {
			return dst
		}
		dst = appendBool(appendAuction(dst, s.Auction), s.HasWinner)
		return appendSlice(bidCodec.enc(dst, s.Winner), s.Pending, bidCodec.enc)
	},
	dec: func(d *decoder) *auctionState {
		s := &auctionState{Closed: d.bool(), Known: d.bool()}
		if s.Closed {
			return closedState
		}
		s.Auction, s.HasWinner, s.Winner = decodeAuction(d), d.bool(), bidCodec.dec(d)
		s.Pending = decodeSlice(d, bidCodec.dec)
		return s
	},
}

// closeAuctions emits every auction that has a winning bid, with that bid,
// when the watermark passes the auction's expiry. Without keepText the
// auctions' and bids' text fields are empty.
func closeAuctions(events runtime.Stream[Record], name string, keepText bool) runtime.Stream[ClosedAuction] {
	sel := runtime.Apply(events, name+"-input", func() runtime.Operator[Record, auctionOrBid] {
		return &auctionOrBidOp{dropText: !keepText}
	})
	in := operators.KeyBy(sel, func(x auctionOrBid) int64 {
		if x.Auction != nil {
			return x.Auction.ID
		}
		return x.Bid.Auction
	})
	return operators.ProcessWithTimers(in, name,
		func(sc *operators.SetupContext[int64]) (operators.TimedProcessFunc[int64, auctionOrBid, ClosedAuction], operators.TimerFunc[int64, ClosedAuction], error) {
			auctions, err := state.NewValue(sc.Scope, "auctions", state.Codec[*auctionState](auctionStateCodec))
			if err != nil {
				return nil, nil, err
			}
			process := func(ctx *operators.TimerContext[int64], x auctionOrBid, _ runtime.Collector[ClosedAuction]) error {
				s, ok := auctions.Get()
				if !ok {
					s = &auctionState{}
				}
				switch {
				case s.Closed:
					// A bid after the close, or a repeated auction: ignored.
				case x.Auction != nil:
					if s.Known {
						return nil // a repeated auction id: the first counts
					}
					n := &auctionState{Known: true, Auction: *x.Auction}
					for i := range s.Pending {
						if n.wins(&s.Pending[i]) {
							n.HasWinner, n.Winner = true, s.Pending[i]
						}
					}
					auctions.Put(n)
					ctx.Timers().RegisterEventTime(n.Auction.Expires)
				case s.Known:
					if s.wins(&x.Bid) {
						n := *s
						n.HasWinner, n.Winner = true, x.Bid
						auctions.Put(&n)
					}
				default:
					// The auction has not arrived yet: keep the bid for it.
					// Appending in place is safe: a frozen copy keeps its
					// own length.
					n := *s
					n.Pending = append(n.Pending, x.Bid)
					auctions.Put(&n)
				}
				return nil
			}
			onTimer := func(_ *operators.TimerContext[int64], t runtime.Timer, out runtime.Collector[ClosedAuction]) error {
				s, _ := auctions.Get()
				if !s.Known || s.Closed || s.Auction.Expires > t.At {
					return nil
				}
				if s.HasWinner {
					out.Collect(ClosedAuction{s.Auction, s.Winner})
				}
				// Keep a tombstone, as the reference remembers every
				// auction: later bids and a repeated auction are ignored.
				auctions.Put(closedState)
				return nil
			}
			return process, onTimer, nil
		})
}

// closing is a closed auction as q4 and q6 apply it: its key (category or
// seller), id, expiry and closing price.
type closing struct {
	Key, Auction, Expires, Price int64
}

func appendClosing(dst []byte, c closing) []byte {
	return appendInt(appendInt(appendInt(appendInt(dst, c.Key), c.Auction), c.Expires), c.Price)
}

func decodeClosing(d *decoder) closing { return closing{d.int(), d.int(), d.int(), d.int()} }

// q4 and q6 apply closings at a granularity of applyEvery ms of event time:
// one expiring at t is applied when the watermark reaches applyDue(t), the
// last millisecond of t's second. Applying later does not change the
// result (closings are applied in (expiry, auction) order), only its
// latency, and one timer per key and second costs far less than one per
// closing.
const applyEvery = 1000

func applyDue(t int64) int64 { return floorDiv(t, applyEvery)*applyEvery + applyEvery - 1 }

// pendingClosings is applyInOrder's state of one key: its accumulator and
// the closings not yet applied.
type pendingClosings[Acc any] struct {
	Acc     Acc
	Pending []closing
}

// applyInOrder keys closings by their Key and folds them into a per-key
// accumulator with apply, in (expiry, auction) order once the watermark
// has passed their expiry; apply emits the results.
func applyInOrder[Acc, Out any](closings runtime.Stream[closing], name string, accs codec[Acc],
	apply func(acc Acc, c closing, out runtime.Collector[Out]) Acc) runtime.Stream[Out] {
	st := codec[pendingClosings[Acc]]{
		enc: func(dst []byte, p pendingClosings[Acc]) []byte {
			return appendSlice(accs.enc(dst, p.Acc), p.Pending, appendClosing)
		},
		dec: func(d *decoder) pendingClosings[Acc] {
			return pendingClosings[Acc]{accs.dec(d), decodeSlice(d, decodeClosing)}
		},
	}
	return operators.ProcessWithTimers(operators.KeyBy(closings, func(c closing) int64 { return c.Key }), name,
		func(sc *operators.SetupContext[int64]) (operators.TimedProcessFunc[int64, closing, Out], operators.TimerFunc[int64, Out], error) {
			keys, err := state.NewValue(sc.Scope, "pending", state.Codec[pendingClosings[Acc]](st))
			if err != nil {
				return nil, nil, err
			}
			process := func(ctx *operators.TimerContext[int64], c closing, _ runtime.Collector[Out]) error {
				p, _ := keys.Get()
				p.Pending = append(p.Pending, c) // in place: see closeAuctions
				keys.Put(p)
				ctx.Timers().RegisterEventTime(applyDue(c.Expires))
				return nil
			}
			var due []closing
			onTimer := func(_ *operators.TimerContext[int64], t runtime.Timer, out runtime.Collector[Out]) error {
				p, _ := keys.Get()
				due = due[:0]
				for _, c := range p.Pending {
					if c.Expires <= t.At {
						due = append(due, c)
					}
				}
				if len(due) == 0 {
					return nil
				}
				p.Pending = slices.DeleteFunc(slices.Clone(p.Pending), func(c closing) bool { return c.Expires <= t.At })
				slices.SortFunc(due, func(x, y closing) int {
					return cmp.Or(cmp.Compare(x.Expires, y.Expires), cmp.Compare(x.Auction, y.Auction))
				})
				for _, c := range due {
					p.Acc = apply(p.Acc, c, out)
				}
				keys.Put(p)
				return nil
			}
			return process, onTimer, nil
		})
}

// ---- q4 ------------------------------------------------------------------

type sumCount struct{ Sum, Count int64 }

var sumCountCodec = codec[sumCount]{
	enc: func(dst []byte, s sumCount) []byte { return appendInt(appendInt(dst, s.Sum), s.Count) },
	dec: func(d *decoder) sumCount { return sumCount{d.int(), d.int()} },
}

// EngineQ4 is q4: the running average closing price per category, updated
// in (expiry, auction) order.
func EngineQ4(events runtime.Stream[Record]) runtime.Stream[Traced[Q4Result]] {
	closings := operators.Map(closeAuctions(events, "q4-auctions", false), func(c ClosedAuction) closing {
		return closing{c.Auction.Category, c.Auction.ID, c.Auction.Expires, c.Winner.Price}
	})
	return applyInOrder(closings, "q4-categories", sumCountCodec, func(g sumCount, c closing, out runtime.Collector[Traced[Q4Result]]) sumCount {
		g.Sum += c.Price
		g.Count++
		out.Collect(Traced[Q4Result]{Q4Result{c.Key, g.Sum / g.Count, g.Count, c.Auction, c.Price, c.Expires}, -1})
		return g
	})
}

// ---- q6 ------------------------------------------------------------------

// EngineQ6 is q6: the average of each seller's last 10 closing prices,
// updated in (expiry, auction) order.
func EngineQ6(events runtime.Stream[Record]) runtime.Stream[Traced[Q6Result]] {
	closings := operators.Map(closeAuctions(events, "q6-auctions", false), func(c ClosedAuction) closing {
		return closing{c.Auction.Seller, c.Auction.ID, c.Auction.Expires, c.Winner.Price}
	})
	return applyInOrder(closings, "q6-sellers", int64sCodec, func(prices []int64, c closing, out runtime.Collector[Traced[Q6Result]]) []int64 {
		prices = append(slices.Clone(prices), c.Price) // not in place: the slice may be in a frozen copy
		if len(prices) > Q6Average {
			prices = prices[len(prices)-Q6Average:]
		}
		out.Collect(Traced[Q6Result]{Q6Result{c.Key, mean(prices), int64(len(prices)), c.Auction, c.Expires}, -1})
		return prices
	})
}

// ---- q9 ------------------------------------------------------------------

// EngineQ9 is q9: every auction with its winning bid, when it closes.
func EngineQ9(events runtime.Stream[Record]) runtime.Stream[Traced[Q9Result]] {
	return operators.Map(closeAuctions(events, "q9-auctions", true), func(c ClosedAuction) Traced[Q9Result] {
		return Traced[Q9Result]{c, -1}
	})
}
