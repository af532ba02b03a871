package nexmark

import (
	"iter"
	"math"
)

// Id space constants of the reference generator.
const (
	FirstPersonID   = 1000 // id of the first person
	FirstAuctionID  = 1000 // id of the first auction
	FirstCategoryID = 10   // categories are FirstCategoryID .. FirstCategoryID+NumCategories-1
	NumCategories   = 5

	// Per block of ProportionDenominator consecutive event ids, the first
	// PersonProportion are persons, the next AuctionProportion auctions and the
	// rest bids.
	PersonProportion      = 1
	AuctionProportion     = 3
	BidProportion         = 46
	ProportionDenominator = PersonProportion + AuctionProportion + BidProportion

	personIDLead    = 10  // persons chosen may be this far past the last one
	auctionIDLead   = 10  // auctions chosen may be this far past the last one
	hotBatch        = 100 // hot sellers/bidders/auctions: first of each batch of 100
	hotChannelRatio = 100 // a bid uses one of the 4 hot channels with probability 99/100
	maxEventRate    = 1_000_000_000
)

// Generator produces the Nexmark event stream of a Config. Event n (n >= 0)
// is a pure function of the config and n, so a Generator can serve as a
// replayable source whose offset is the event number.
//
// EventAt, FillEvent, TimestampAt, WatermarkAt and Events are safe for
// concurrent use; Next and SetOffset move the Generator's own position and are not.
type Generator struct {
	cfg   Config
	p     *pools
	limit int64 // NumEvents, or MaxInt64 when unbounded
	pos   int64
}

// NewGenerator validates cfg (after EnsureDefaults) and returns a Generator
// positioned at event 0.
func NewGenerator(cfg Config) (*Generator, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Generator{cfg: cfg, p: sharedPools(), limit: cfg.NumEvents}
	if g.limit == 0 {
		g.limit = math.MaxInt64
	}
	return g, nil
}

// MustNewGenerator is NewGenerator that panics on an invalid config.
func MustNewGenerator(cfg Config) *Generator {
	g, err := NewGenerator(cfg)
	if err != nil {
		panic(err)
	}
	return g
}

// Config returns the generator's configuration, defaults filled in.
func (g *Generator) Config() Config { return g.cfg }

// NumEvents returns the number of events Next yields in total (MaxInt64 when
// unbounded).
func (g *Generator) NumEvents() int64 { return g.limit }

// Offset returns the number of the event Next yields next.
func (g *Generator) Offset() int64 { return g.pos }

// SetOffset positions the generator so that Next yields event n next. Setting a
// checkpointed offset replays exactly the events that followed it. (Named
// SetOffset rather than Seek, whose signature io.Seeker owns.)
func (g *Generator) SetOffset(n int64) {
	if n < 0 {
		n = 0
	}
	g.pos = n
}

// Next stores the next event in *e and advances; it returns false, leaving *e
// untouched, once NumEvents events have been produced.
func (g *Generator) Next(e *Event) bool {
	if g.pos >= g.limit {
		return false
	}
	g.FillEvent(g.pos, e)
	g.pos++
	return true
}

// Events yields events from, from+1, …, to-1 (to is capped at NumEvents)
// without moving the generator's position.
func (g *Generator) Events(from, to int64) iter.Seq[Event] {
	return func(yield func(Event) bool) {
		var e Event
		for n := max(from, 0); n < min(to, g.limit); n++ {
			g.FillEvent(n, &e)
			if !yield(e) {
				return
			}
		}
	}
}

// EventAt returns event n. It is defined for every n >= 0, also past
// NumEvents.
func (g *Generator) EventAt(n int64) Event {
	var e Event
	g.FillEvent(n, &e)
	return e
}

// adjusted returns the event id of event n: n itself, or with out-of-order
// groups n shuffled within its group (the reference's adjusted event number).
func (g *Generator) adjusted(n int64) int64 {
	k := g.cfg.OutOfOrderGroupSize
	if k == 1 {
		return n
	}
	return n/k*k + (n%k)*953%k
}

// timeOf returns the event time of event id a.
func (g *Generator) timeOf(a int64) int64 {
	r := g.cfg.FirstEventRate
	return g.cfg.BaseTime + a/r*1000 + a%r*1000/r
}

// TimestampAt returns the event time (ms) of event n.
func (g *Generator) TimestampAt(n int64) int64 { return g.timeOf(g.adjusted(n)) }

// FirstEventAt returns the first event number whose timestamp is at least
// t (NumEvents if none), by binary search: exact for in-order generators,
// an approximation for shuffled ones.
func (g *Generator) FirstEventAt(t int64) int64 { return g.firstAt(t, g.TimestampAt) }

// ProcessingTimeAt returns the processing time (ms) of event n on the
// harness's fixed processing-time clock: the time at which the generator's
// schedule (FirstEventRate events per second from BaseTime) delivers it,
// which a real-time Nexmark source would. It is the event time before the
// out-of-order shuffle, so with in-order generators processing and event
// time agree. NB: a real processing-time window depends on how fast the
// engine runs, so no two runs would agree; with this clock processing time
// is a property of the event, and q12's output can be compared with its
// reference.
func (g *Generator) ProcessingTimeAt(n int64) int64 { return g.timeOf(n) }

// firstAt returns the first event number n with at(n) >= t.
func (g *Generator) firstAt(t int64, at func(int64) int64) int64 {
	lo, hi := int64(0), g.limit
	for lo < hi {
		mid := lo + (hi-lo)/2
		if at(mid) >= t {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// WatermarkAt returns a lower bound on the event time of events n, n+1, …:
// a source that has emitted events before n may declare this watermark.
func (g *Generator) WatermarkAt(n int64) int64 {
	k := g.cfg.OutOfOrderGroupSize
	return g.timeOf(n / k * k)
}

// KindOf returns the kind of event n without generating it.
func (g *Generator) KindOf(n int64) EventKind { return kindOfID(g.adjusted(n)) }

func kindOfID(id int64) EventKind {
	switch rem := id % ProportionDenominator; {
	case rem < PersonProportion:
		return KindPerson
	case rem < PersonProportion+AuctionProportion:
		return KindAuction
	default:
		return KindBid
	}
}

// FillEvent stores event n in *e, overwriting all of *e.
func (g *Generator) FillEvent(n int64, e *Event) {
	id := g.adjusted(n)
	ts := g.timeOf(id)
	r := eventRNG(g.cfg.Seed, id)
	*e = Event{Kind: kindOfID(id)}
	switch e.Kind {
	case KindPerson:
		g.person(&e.Person, id, ts, &r)
	case KindAuction:
		g.auction(&e.Auction, id, ts, &r)
	default:
		g.bid(&e.Bid, id, ts, &r)
	}
}

// lastPerson returns the last valid base-0 person id at event id.
func lastPerson(id int64) int64 {
	return id / ProportionDenominator * PersonProportion // PersonProportion == 1
}

// lastAuction returns the last valid base-0 auction id at event id (-1 before
// the first auction).
func lastAuction(id int64) int64 {
	epoch, off := id/ProportionDenominator, id%ProportionDenominator
	switch {
	case off < PersonProportion:
		epoch--
		off = AuctionProportion - 1
	case off >= PersonProportion+AuctionProportion:
		off = AuctionProportion - 1
	default:
		off -= PersonProportion
	}
	return epoch*AuctionProportion + off
}

// randomPerson picks a base-0 person among the active ones plus a few not yet
// created.
func (g *Generator) randomPerson(id int64, r *rng) int64 {
	people := lastPerson(id) + 1
	active := min(people, g.cfg.NumActivePeople)
	return people - active + r.intn(active+personIDLead)
}

// randomAuction picks a base-0 auction among those likely in flight plus a few
// not yet created.
func (g *Generator) randomAuction(id int64, r *rng) int64 {
	last := lastAuction(id)
	lo := max(last-g.cfg.NumInFlightAuctions, 0)
	return lo + r.intn(last-lo+1+auctionIDLead)
}

func (g *Generator) person(p *Person, id, ts int64, r *rng) {
	pl := g.p
	p.ID = lastPerson(id) + FirstPersonID
	p.Name = pl.names[r.intn(int64(len(pl.names)))]
	p.EmailAddress = pl.emails[r.intn(emailPoolSize)]
	p.CreditCard = pl.cards[r.intn(cardPoolSize)]
	p.City = usCities[r.intn(int64(len(usCities)))]
	p.State = usStates[r.intn(int64(len(usStates)))]
	p.DateTime = ts
	size := int64(8 + len(p.Name) + len(p.EmailAddress) + len(p.CreditCard) + len(p.City) + len(p.State))
	p.Extra = pl.nextExtra(r, size, g.cfg.AvgPersonByteSize)
}

func (g *Generator) auction(a *Auction, id, ts int64, r *rng) {
	pl := g.p
	a.ID = lastAuction(id) + FirstAuctionID
	var seller int64
	if r.intn(g.cfg.HotSellersRatio) > 0 {
		seller = lastPerson(id) / hotBatch * hotBatch
	} else {
		seller = g.randomPerson(id, r)
	}
	a.Seller = seller + FirstPersonID
	a.Category = FirstCategoryID + r.intn(NumCategories)
	a.InitialBid = pl.nextPrice(r)
	// Auction length: uniform in [1, 2*horizon] where horizon is the time until
	// NumInFlightAuctions more auctions have been created.
	ahead := g.cfg.NumInFlightAuctions * ProportionDenominator / AuctionProportion
	horizon := g.timeOf(id+ahead) - ts
	a.Expires = ts + 1 + r.intn(max(2*horizon, 1))
	a.ItemName = pl.nextString(r, 20)
	a.Description = pl.nextString(r, 100)
	a.Reserve = a.InitialBid + pl.nextPrice(r)
	a.DateTime = ts
	size := int64(8 + len(a.ItemName) + len(a.Description) + 8 + 8 + 8 + 8 + 8)
	a.Extra = pl.nextExtra(r, size, g.cfg.AvgAuctionByteSize)
}

func (g *Generator) bid(b *Bid, id, ts int64, r *rng) {
	pl := g.p
	var auction int64
	if r.intn(g.cfg.HotAuctionRatio) > 0 {
		auction = lastAuction(id) / hotBatch * hotBatch
	} else {
		auction = g.randomAuction(id, r)
	}
	b.Auction = auction + FirstAuctionID
	var bidder int64
	if r.intn(g.cfg.HotBiddersRatio) > 0 {
		// The second person of the batch, so hot bidders and sellers differ.
		bidder = lastPerson(id)/hotBatch*hotBatch + 1
	} else {
		bidder = g.randomPerson(id, r)
	}
	b.Bidder = bidder + FirstPersonID
	b.Price = pl.nextPrice(r)
	if r.intn(hotChannelRatio) > 0 {
		i := r.intn(int64(len(hotChannel)))
		b.Channel, b.URL = hotChannel[i], pl.hotURLs[i]
	} else {
		i := r.intn(numChannels)
		b.Channel, b.URL = pl.chans[i], pl.chanURLs[i]
	}
	b.DateTime = ts
	b.Extra = pl.nextExtra(r, 8+8+8+8, g.cfg.AvgBidByteSize)
}
