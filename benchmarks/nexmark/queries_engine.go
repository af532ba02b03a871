package nexmark

import (
	"cmp"
	"maps"
	"slices"

	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// The queries as weir pipelines. Each EngineQn takes the stream of the
// Nexmark source (Source; q4, q5, q7 and q8 need it WithWatermarks, q0-q3
// work with or without) and returns the stream of its results, which equal
// QnReference's as a multiset for the same events.
//
// Shapes:
//
//   - q0, q1, q2 are one stateless operator chained to the source.
//   - q3 filters in the source's chain, keys persons and auctions by person
//     id and joins them with keyed state (every person and auction kept).
//   - q4 pre-aggregates bids in the source's chain (the highest valid bid
//     per auction between watermarks), keys bids and auctions by buckets of
//     64 auction ids (map state per bucket); an event-time timer per bucket
//     and second closes the auctions expired by then; closings are keyed by
//     category and applied in (expiry, auction) order once the watermark
//     passes the expiry.
//   - q5, q7 and q8 pre-aggregate per window (pane for q5) in the source's
//     chain (a local combiner with operator state, like Flink's local-global
//     aggregation), emit a window's partial result when the watermark passes
//     its end, and merge the partials keyed by window start, firing with an
//     event-time timer at the window's last millisecond.

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
		func(ctx *operators.ProcessContext[int64]) (operators.ProcessFunc[int64, q3In, Traced[Q3Result]], error) {
			persons, err := state.NewValue(ctx.Scope, "persons", state.Codec[[]q3Person](q3PersonsCodec))
			if err != nil {
				return nil, err
			}
			auctions, err := state.NewValue(ctx.Scope, "auctions", state.Codec[[]int64](int64sCodec))
			if err != nil {
				return nil, err
			}
			return func(_ int64, in q3In, out runtime.Collector[Traced[Q3Result]]) error {
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

// ---- q4 ------------------------------------------------------------------

// q4In is an auction or a bid, keyed by auction id.
type q4In struct {
	Auction   int64
	IsAuction bool
	Category  int64
	Time      int64 // auction start or bid time
	Expires   int64
	Price     int64
	Origin    int64
}

// q4Auction is the keyed state of one auction id in q4.
type q4Auction struct {
	Known    bool // the auction event arrived
	Closed   bool // its expiry passed: a tombstone
	Category int64
	Start    int64
	Expires  int64
	HasFinal bool
	Final    int64
	Pending  []q4Bid // bids that arrived before the auction
}

type q4Bid struct{ Time, Price int64 }

func (a *q4Auction) offer(t, price int64) bool {
	if t >= a.Start && t <= a.Expires && (!a.HasFinal || price > a.Final) {
		a.HasFinal, a.Final = true, price
		return true
	}
	return false
}

var q4AuctionCodec = codec[q4Auction]{
	enc: func(dst []byte, a q4Auction) []byte {
		dst = appendBool(appendBool(dst, a.Known), a.Closed)
		dst = appendInt(appendInt(appendInt(dst, a.Category), a.Start), a.Expires)
		dst = appendInt(appendBool(dst, a.HasFinal), a.Final)
		return appendSlice(dst, a.Pending, func(dst []byte, b q4Bid) []byte { return appendInt(appendInt(dst, b.Time), b.Price) })
	},
	dec: func(d *decoder) q4Auction {
		a := q4Auction{Known: d.bool(), Closed: d.bool(), Category: d.int(), Start: d.int(), Expires: d.int(), HasFinal: d.bool(), Final: d.int()}
		a.Pending = decodeSlice(d, func(d *decoder) q4Bid { return q4Bid{d.int(), d.int()} })
		return a
	},
}

// q4 closes auctions and applies closings per category at a granularity of
// q4ApplyEvery ms of event time: an auction expiring at t is closed when the
// watermark reaches q4Due(t), the last millisecond of t's second. Closing
// later does not change the result (bids after the expiry do not count, and
// closings are applied in (expiry, auction) order), only its latency.
const (
	q4ApplyEvery = 1000
	q4BucketBits = 6 // 64 auction ids per key of q4-auctions
)

func q4Due(t int64) int64 { return floorDiv(t, q4ApplyEvery)*q4ApplyEvery + q4ApplyEvery - 1 }

// q4Closing is a closed auction with its winning price, keyed by category.
type q4Closing struct {
	Category, Auction, Expires, Final, Origin int64
}

type q4Category struct {
	Sum, Count int64
	Pending    []q4Closing // closings whose expiry the watermark has not passed
}

var q4CategoryCodec = codec[q4Category]{
	enc: func(dst []byte, c q4Category) []byte {
		dst = appendInt(appendInt(dst, c.Sum), c.Count)
		return appendSlice(dst, c.Pending, func(dst []byte, x q4Closing) []byte {
			return appendInt(appendInt(appendInt(appendInt(appendInt(dst, x.Category), x.Auction), x.Expires), x.Final), x.Origin)
		})
	},
	dec: func(d *decoder) q4Category {
		c := q4Category{Sum: d.int(), Count: d.int()}
		c.Pending = decodeSlice(d, func(d *decoder) q4Closing {
			return q4Closing{d.int(), d.int(), d.int(), d.int(), d.int()}
		})
		return c
	},
}

// q4Local is q4's local combiner, chained to the source: it forwards
// auctions, remembers the validity interval of those it saw until the
// watermark passes their expiry, drops bids outside it and keeps only the
// highest valid bid per auction between two watermarks. Bids for auctions it
// has not seen go through unchanged. Its open state is operator state in
// checkpoints.
//
// NB: this assumes the keyed stage sees the same first auction event for an
// id as this subtask, which holds at parallelism 1 and whenever auction ids
// are unique (the generator's are).
type q4Local struct {
	recordOp[q4In]
	spans map[int64]q4Span // auctions seen, until their expiry passes
	best  map[int64]q4In   // highest valid bid per auction since the last watermark
}

type q4Span struct{ Start, Expires int64 }

func (o *q4Local) Open(ctx *runtime.OperatorContext, out runtime.Collector[q4In]) error {
	o.out, o.spans, o.best = out, map[int64]q4Span{}, map[int64]q4In{}
	if ctx.Restored == nil {
		return nil
	}
	d := decoder{b: ctx.Restored}
	for range d.len() {
		id := d.int()
		o.spans[id] = q4Span{d.int(), d.int()}
	}
	for range d.len() {
		b := q4In{Auction: d.int(), Time: d.int(), Price: d.int(), Origin: d.int()}
		o.best[b.Auction] = b
	}
	if d.err != nil || len(d.b) != 0 {
		return errShortState
	}
	return nil
}

func (o *q4Local) Process(r Record) {
	switch e := &r; e.Kind {
	case KindAuction:
		a := e.Auction
		if _, ok := o.spans[a.ID]; !ok {
			o.spans[a.ID] = q4Span{a.DateTime, a.Expires}
		}
		o.out.Collect(q4In{Auction: a.ID, IsAuction: true, Category: a.Category, Time: a.DateTime, Expires: a.Expires, Origin: r.N})
	case KindBid:
		b := &e.Bid
		span, ok := o.spans[b.Auction]
		if !ok {
			o.out.Collect(q4In{Auction: b.Auction, Time: b.DateTime, Price: b.Price, Origin: r.N})
			return
		}
		if b.DateTime < span.Start || b.DateTime > span.Expires {
			return // cannot be the auction's winning bid
		}
		if cur, ok := o.best[b.Auction]; !ok || b.Price > cur.Price {
			o.best[b.Auction] = q4In{Auction: b.Auction, Time: b.DateTime, Price: b.Price, Origin: r.N}
		}
	}
}

func (o *q4Local) OnWatermark(wm int64) {
	for _, b := range o.best {
		o.out.Collect(b)
	}
	clear(o.best)
	for id, span := range o.spans {
		if span.Expires <= wm {
			delete(o.spans, id)
		}
	}
}

func (o *q4Local) Snapshot(uint64) ([]byte, error) {
	b := appendInt(nil, int64(len(o.spans)))
	for id, span := range o.spans {
		b = appendInt(appendInt(appendInt(b, id), span.Start), span.Expires)
	}
	b = appendInt(b, int64(len(o.best)))
	for _, x := range o.best {
		b = appendInt(appendInt(appendInt(appendInt(b, x.Auction), x.Time), x.Price), x.Origin)
	}
	return b, nil
}

// EngineQ4 is q4: the running average closing price per category, updated
// in (expiry, auction) order.
func EngineQ4(events runtime.Stream[Record]) runtime.Stream[Traced[Q4Result]] {
	in := runtime.Apply(events, "q4-local", func() runtime.Operator[Record, q4In] { return &q4Local{} })
	// Auctions are keyed by bucket (id / q4BucketSize) with a map state per
	// bucket, and closed by one event-time timer per bucket and second: far
	// fewer keys and timers than one per auction, which dominated the cost.
	closings := operators.ProcessWithTimers(operators.KeyBy(in, func(x q4In) int64 { return x.Auction >> q4BucketBits }), "q4-auctions",
		func(ctx *runtime.KeyedContext[int64]) (operators.ProcessFunc[int64, q4In, q4Closing], operators.TimerFunc[int64, q4Closing], error) {
			auctions, err := state.NewMap(ctx.Scope, "auctions", state.Int64, state.Codec[q4Auction](q4AuctionCodec))
			if err != nil {
				return nil, nil, err
			}
			var newest int64 = -1 // origin of the newest record seen
			process := func(_ int64, x q4In, _ runtime.Collector[q4Closing]) error {
				newest = max(newest, x.Origin)
				a, _ := auctions.Get(x.Auction)
				switch {
				case a.Closed:
					// A bid after the auction closed, or a repeated auction:
					// ignored.
				case x.IsAuction:
					if a.Known {
						return nil // repeated auction id
					}
					a.Known, a.Category, a.Start, a.Expires = true, x.Category, x.Time, x.Expires
					for _, b := range a.Pending {
						a.offer(b.Time, b.Price)
					}
					a.Pending = nil
					auctions.Put(x.Auction, a)
					ctx.Timers.RegisterEventTime(q4Due(a.Expires))
				case a.Known:
					if a.offer(x.Time, x.Price) {
						auctions.Put(x.Auction, a)
					}
				default:
					// The auction has not arrived yet: keep the bid for it.
					// NB: no timer drops the bid once the watermark passes
					// its time (it could not count any more): a timer per
					// such bid was a large part of q4's cost, and the
					// generator's bids only name auctions that arrive soon
					// after. Bids for auctions that never arrive stay.
					// Appending in place is safe: a frozen copy of the value
					// keeps its own length.
					a.Pending = append(a.Pending, q4Bid{x.Time, x.Price})
					auctions.Put(x.Auction, a)
				}
				return nil
			}
			var due []int64
			onTimer := func(_ int64, t runtime.Timer, out runtime.Collector[q4Closing]) error {
				due = due[:0]
				for id, a := range auctions.All() {
					if a.Known && !a.Closed && a.Expires <= t.At {
						due = append(due, id)
					}
				}
				for _, id := range due {
					a, _ := auctions.Get(id)
					if a.HasFinal {
						out.Collect(q4Closing{a.Category, id, a.Expires, a.Final, newest})
					}
					// Keep a tombstone, as the reference remembers every
					// auction: later bids and a repeated auction event are
					// ignored. It costs a few bytes per auction.
					auctions.Put(id, q4Auction{Known: true, Closed: true})
				}
				return nil
			}
			return process, onTimer, nil
		})
	return operators.ProcessWithTimers(operators.KeyBy(closings, func(c q4Closing) int64 { return c.Category }), "q4-categories",
		func(ctx *runtime.KeyedContext[int64]) (operators.ProcessFunc[int64, q4Closing, Traced[Q4Result]], operators.TimerFunc[int64, Traced[Q4Result]], error) {
			cats, err := state.NewValue(ctx.Scope, "categories", state.Codec[q4Category](q4CategoryCodec))
			if err != nil {
				return nil, nil, err
			}
			process := func(_ int64, c q4Closing, _ runtime.Collector[Traced[Q4Result]]) error {
				g, _ := cats.Get()
				g.Pending = append(g.Pending, c) // in place: see q4-auctions
				cats.Put(g)
				// One timer per category and q4ApplyEvery ms: the closings
				// due by then are applied in (expiry, auction) order, so the
				// output is that of a timer per closing, a little later.
				ctx.Timers.RegisterEventTime(q4Due(c.Expires))
				return nil
			}
			onTimer := func(category int64, t runtime.Timer, out runtime.Collector[Traced[Q4Result]]) error {
				g, _ := cats.Get()
				due := slices.Clone(g.Pending)
				due = slices.DeleteFunc(due, func(c q4Closing) bool { return c.Expires > t.At })
				if len(due) == 0 {
					return nil
				}
				g.Pending = slices.DeleteFunc(slices.Clone(g.Pending), func(c q4Closing) bool { return c.Expires <= t.At })
				slices.SortFunc(due, func(x, y q4Closing) int {
					return cmp.Or(cmp.Compare(x.Expires, y.Expires), cmp.Compare(x.Auction, y.Auction))
				})
				for _, c := range due {
					g.Sum += c.Final
					g.Count++
					out.Collect(Traced[Q4Result]{Q4Result{category, g.Sum / g.Count, g.Count, c.Auction, c.Final, c.Expires}, c.Origin})
				}
				cats.Put(g)
				return nil
			}
			return process, onTimer, nil
		})
}

// ---- windowed queries: local combiner and keyed merge ----------------------

// combiner pre-aggregates the records of one subtask per window (of size
// size, aligned to 0) in accumulators of type Acc. When the watermark passes
// a window's last millisecond it hands the accumulator to emit and forgets
// it. Open accumulators are the operator's (non-keyed) checkpoint state.
//
// A query embeds it in an operator whose Process finds the accumulator with
// window and updates it. NB: Process is written per query, without calls
// through function values that take the record's address, so that the
// record stays on the stack.
type combiner[Acc, Out any] struct {
	runtime.OperatorBase
	size   int64
	newAcc func() *Acc
	emit   func(start int64, acc *Acc, origin int64, out runtime.Collector[Out])
	codec  codec[Acc]

	out      runtime.Collector[Out]
	open     map[int64]*Acc
	last     int64 // start of the window last added to, cached with lastAcc
	lastAcc  *Acc
	firstEnd int64 // smallest last millisecond of the open windows
	newest   int64 // origin of the newest record seen
}

func (c *combiner[Acc, Out]) Open(ctx *runtime.OperatorContext, out runtime.Collector[Out]) error {
	c.out, c.open, c.newest, c.firstEnd = out, map[int64]*Acc{}, -1, runtime.MaxWatermark
	if ctx.Restored == nil {
		return nil
	}
	d := decoder{b: ctx.Restored}
	for range d.len() {
		start := d.int()
		acc := c.codec.dec(&d)
		c.open[start] = &acc
		c.firstEnd = min(c.firstEnd, start+c.size-1)
	}
	if d.err != nil || len(d.b) != 0 {
		return errShortState
	}
	return nil
}

// window returns the accumulator of the window containing time t for the
// record with event number n.
func (c *combiner[Acc, Out]) window(t, n int64) *Acc {
	c.newest = max(c.newest, n)
	start := floorDiv(t, c.size) * c.size
	if c.lastAcc != nil && start == c.last {
		return c.lastAcc
	}
	acc := c.open[start]
	if acc == nil {
		acc = c.newAcc()
		c.open[start] = acc
		c.firstEnd = min(c.firstEnd, start+c.size-1)
	}
	c.last, c.lastAcc = start, acc
	return acc
}

func (c *combiner[Acc, Out]) OnWatermark(wm int64) {
	if wm < c.firstEnd {
		return
	}
	starts := slices.Sorted(maps.Keys(c.open))
	c.firstEnd = runtime.MaxWatermark
	for _, start := range starts {
		if end := start + c.size - 1; end > wm {
			c.firstEnd = min(c.firstEnd, end)
			continue
		}
		c.emit(start, c.open[start], c.newest, c.out)
		delete(c.open, start)
	}
	c.last, c.lastAcc = 0, nil
}

func (c *combiner[Acc, Out]) Snapshot(uint64) ([]byte, error) {
	var b []byte
	b = appendInt(b, int64(len(c.open)))
	for start, acc := range c.open {
		b = c.codec.enc(appendInt(b, start), *acc)
	}
	return b, nil
}

// mergeWindows merges the partial results P of the windows keyed by window
// start and, when the watermark passes a window's last millisecond, fires
// it: fire emits the window's results.
func mergeWindows[P, R any](parts runtime.Stream[P], name string, size int64, windowOf func(P) int64, origin func(P) int64,
	merge func(acc, p P) P, codec codec[P], fire func(start int64, acc P, out runtime.Collector[Traced[R]])) runtime.Stream[Traced[R]] {
	return operators.ProcessWithTimers(operators.KeyBy(parts, windowOf), name,
		func(ctx *runtime.KeyedContext[int64]) (operators.ProcessFunc[int64, P, Traced[R]], operators.TimerFunc[int64, Traced[R]], error) {
			windows, err := state.NewValue(ctx.Scope, "windows", state.Codec[P](codec))
			if err != nil {
				return nil, nil, err
			}
			var newest int64 = -1
			process := func(start int64, p P, _ runtime.Collector[Traced[R]]) error {
				newest = max(newest, origin(p))
				if acc, ok := windows.Get(); ok {
					p = merge(acc, p)
				}
				windows.Put(p)
				ctx.Timers.RegisterEventTime(start + size - 1)
				return nil
			}
			onTimer := func(start int64, _ runtime.Timer, out runtime.Collector[Traced[R]]) error {
				acc, ok := windows.Get()
				if !ok {
					return nil
				}
				windows.Delete()
				fire(start, acc, runtime.CollectorFunc[Traced[R]](func(r Traced[R]) {
					r.Origin = newest
					out.Collect(r)
				}))
				return nil
			}
			return process, onTimer, nil
		})
}

// ---- q5 ------------------------------------------------------------------

type auctionCount struct{ Auction, Num int64 }

// q5Part is a partial count of bids per auction in one sliding window.
type q5Part struct {
	Window int64 // start
	Counts []auctionCount
	Origin int64
}

var q5PartCodec = codec[q5Part]{
	enc: func(dst []byte, p q5Part) []byte {
		dst = appendInt(appendInt(dst, p.Window), p.Origin)
		return appendSlice(dst, p.Counts, appendAuctionCount)
	},
	dec: func(d *decoder) q5Part {
		p := q5Part{Window: d.int(), Origin: d.int()}
		p.Counts = decodeSlice(d, decodeAuctionCount)
		return p
	},
}

func appendAuctionCount(dst []byte, c auctionCount) []byte {
	return appendInt(appendInt(dst, c.Auction), c.Num)
}
func decodeAuctionCount(d *decoder) auctionCount { return auctionCount{d.int(), d.int()} }

// paneCounts counts bids per auction in one pane. Auction ids in a pane are
// mostly recent and close together, so counts live in a slice indexed by id
// from a base, with a map for the ids too far away.
type paneCounts struct {
	base   int64
	counts []int64
	other  map[int64]int64
}

const paneSpan = 1 << 16 // largest id range the slice covers

func (p *paneCounts) add(auction int64, n int64) {
	if i := auction - p.base; uint64(i) < uint64(len(p.counts)) {
		p.counts[i] += n
		return
	}
	p.grow(auction, n)
}

func (p *paneCounts) grow(auction int64, n int64) {
	if p.counts == nil {
		p.base, p.counts = auction-256, make([]int64, 1024)
		p.counts[256] = n
		return
	}
	if i := auction - p.base; i >= 0 && i < paneSpan {
		grown := make([]int64, min(paneSpan, max(i+1, 2*int64(len(p.counts)))))
		copy(grown, p.counts)
		p.counts = grown
		p.counts[i] += n
		return
	}
	if p.other == nil {
		p.other = map[int64]int64{}
	}
	p.other[auction] += n
}

func (p *paneCounts) list() []auctionCount {
	var out []auctionCount
	for i, n := range p.counts {
		if n != 0 {
			out = append(out, auctionCount{p.base + int64(i), n})
		}
	}
	for a, n := range p.other {
		out = append(out, auctionCount{a, n})
	}
	return out
}

var paneCountsCodec = codec[paneCounts]{
	enc: func(dst []byte, p paneCounts) []byte { return appendSlice(dst, p.list(), appendAuctionCount) },
	dec: func(d *decoder) paneCounts {
		var p paneCounts
		for _, c := range decodeSlice(d, decodeAuctionCount) {
			p.add(c.Auction, c.Num)
		}
		return p
	},
}

// q5Panes counts bids per auction and 2 s pane; a closed pane goes to each
// of the five windows that contain it.
type q5Panes struct {
	combiner[paneCounts, q5Part]
}

func (o *q5Panes) Process(r Record) {
	if r.Kind == KindBid {
		o.window(r.Bid.DateTime, r.N).add(r.Bid.Auction, 1)
	}
}

// EngineQ5 is q5: the auctions with the most bids per sliding window of
// 10 s every 2 s (all ties).
func EngineQ5(events runtime.Stream[Record]) runtime.Stream[Traced[Q5Result]] {
	const panesPerWindow = WindowSize / Q5Slide
	panes := runtime.Apply(events, "q5-panes", func() runtime.Operator[Record, q5Part] {
		return &q5Panes{combiner[paneCounts, q5Part]{
			size:   Q5Slide,
			newAcc: func() *paneCounts { return &paneCounts{} },
			emit: func(start int64, p *paneCounts, origin int64, out runtime.Collector[q5Part]) {
				counts := p.list()
				for w := start - (panesPerWindow-1)*Q5Slide; w <= start; w += Q5Slide {
					out.Collect(q5Part{w, counts, origin})
				}
			},
			codec: paneCountsCodec,
		}}
	})
	merge := func(acc, p q5Part) q5Part {
		m := make(map[int64]int64, len(acc.Counts)+len(p.Counts))
		for _, c := range acc.Counts {
			m[c.Auction] += c.Num
		}
		for _, c := range p.Counts {
			m[c.Auction] += c.Num
		}
		out := q5Part{Window: acc.Window, Counts: make([]auctionCount, 0, len(m)), Origin: max(acc.Origin, p.Origin)}
		for a, n := range m {
			out.Counts = append(out.Counts, auctionCount{a, n})
		}
		return out
	}
	return mergeWindows(panes, "q5-windows", WindowSize, func(p q5Part) int64 { return p.Window }, func(p q5Part) int64 { return p.Origin },
		merge, q5PartCodec, func(start int64, acc q5Part, out runtime.Collector[Traced[Q5Result]]) {
			var best int64
			for _, c := range acc.Counts {
				best = max(best, c.Num)
			}
			for _, c := range acc.Counts {
				if c.Num == best {
					out.Collect(Traced[Q5Result]{Result: Q5Result{start, start + WindowSize, c.Auction, c.Num}})
				}
			}
		})
}

// ---- q7 ------------------------------------------------------------------

// q7Part is the highest bids of one tumbling window seen by one subtask.
type q7Part struct {
	Window int64
	Max    int64
	Bids   []Q7Result
	Origin int64
}

var q7PartCodec = codec[q7Part]{
	enc: func(dst []byte, p q7Part) []byte {
		dst = appendInt(appendInt(appendInt(dst, p.Window), p.Max), p.Origin)
		return appendSlice(dst, p.Bids, func(dst []byte, r Q7Result) []byte {
			dst = appendInt(appendInt(appendInt(dst, r.WindowStart), r.WindowEnd), r.Auction)
			dst = appendInt(appendInt(appendInt(dst, r.Bidder), r.Price), r.DateTime)
			return appendString(dst, r.Extra)
		})
	},
	dec: func(d *decoder) q7Part {
		p := q7Part{Window: d.int(), Max: d.int(), Origin: d.int()}
		p.Bids = decodeSlice(d, func(d *decoder) Q7Result {
			return Q7Result{WindowStart: d.int(), WindowEnd: d.int(), Auction: d.int(), Bidder: d.int(), Price: d.int(), DateTime: d.int(), Extra: d.string()}
		})
		return p
	},
}

// q7Local keeps the highest bids of each window seen by its subtask.
type q7Local struct {
	combiner[q7Part, q7Part]
}

func (o *q7Local) Process(r Record) {
	if r.Kind != KindBid {
		return
	}
	b := &r.Bid
	p := o.window(b.DateTime, r.N)
	switch {
	case p.Window == -1 || b.Price > p.Max: // the first bid or a new maximum
		p.Max, p.Bids = b.Price, p.Bids[:0]
	case b.Price < p.Max:
		return
	}
	start := floorDiv(b.DateTime, WindowSize) * WindowSize
	p.Window = start
	p.Bids = append(p.Bids, Q7Result{start, start + WindowSize, b.Auction, b.Bidder, b.Price, b.DateTime, b.Extra})
}

// EngineQ7 is q7: the highest bids of every 10 s tumbling window (all ties).
func EngineQ7(events runtime.Stream[Record]) runtime.Stream[Traced[Q7Result]] {
	local := runtime.Apply(events, "q7-local", func() runtime.Operator[Record, q7Part] {
		return &q7Local{combiner[q7Part, q7Part]{
			size:   WindowSize,
			newAcc: func() *q7Part { return &q7Part{Window: -1} },
			emit: func(_ int64, p *q7Part, origin int64, out runtime.Collector[q7Part]) {
				p.Origin = origin
				out.Collect(*p)
			},
			codec: q7PartCodec,
		}}
	})
	merge := func(acc, p q7Part) q7Part {
		switch {
		case p.Max > acc.Max:
			return p
		case p.Max < acc.Max:
			return acc
		}
		acc.Bids = append(slices.Clip(acc.Bids), p.Bids...)
		acc.Origin = max(acc.Origin, p.Origin)
		return acc
	}
	return mergeWindows(local, "q7-windows", WindowSize, func(p q7Part) int64 { return p.Window }, func(p q7Part) int64 { return p.Origin },
		merge, q7PartCodec, func(_ int64, acc q7Part, out runtime.Collector[Traced[Q7Result]]) {
			for _, b := range acc.Bids {
				out.Collect(Traced[Q7Result]{Result: b})
			}
		})
}

// ---- q8 ------------------------------------------------------------------

type q8Person struct {
	ID   int64
	Name string
}

// q8Acc collects one window's new persons and sellers in a combiner.
type q8Acc struct {
	Persons map[q8Person]struct{}
	Sellers map[int64]struct{}
}

// q8Part is one window's persons and sellers seen by one subtask.
type q8Part struct {
	Window  int64
	Persons []q8Person
	Sellers []int64
	Origin  int64
}

func appendQ8Person(dst []byte, p q8Person) []byte { return appendString(appendInt(dst, p.ID), p.Name) }
func decodeQ8Person(d *decoder) q8Person           { return q8Person{d.int(), d.string()} }

var q8PartCodec = codec[q8Part]{
	enc: func(dst []byte, p q8Part) []byte {
		dst = appendInt(appendInt(dst, p.Window), p.Origin)
		dst = appendSlice(dst, p.Persons, appendQ8Person)
		return appendSlice(dst, p.Sellers, appendInt)
	},
	dec: func(d *decoder) q8Part {
		p := q8Part{Window: d.int(), Origin: d.int()}
		p.Persons = decodeSlice(d, decodeQ8Person)
		p.Sellers = decodeSlice(d, (*decoder).int)
		return p
	},
}

var q8AccCodec = codec[q8Acc]{
	enc: func(dst []byte, a q8Acc) []byte {
		return q8PartCodec.enc(dst, q8Part{Persons: slices.Collect(maps.Keys(a.Persons)), Sellers: slices.Collect(maps.Keys(a.Sellers))})
	},
	dec: func(d *decoder) q8Acc {
		p := q8PartCodec.dec(d)
		a := q8Acc{Persons: map[q8Person]struct{}{}, Sellers: map[int64]struct{}{}}
		for _, x := range p.Persons {
			a.Persons[x] = struct{}{}
		}
		for _, s := range p.Sellers {
			a.Sellers[s] = struct{}{}
		}
		return a
	},
}

// q8Local collects the new persons and sellers of each window seen by its
// subtask.
type q8Local struct {
	combiner[q8Acc, q8Part]
}

func (o *q8Local) Process(r Record) {
	switch e := &r; e.Kind {
	case KindPerson:
		o.window(e.Person.DateTime, r.N).Persons[q8Person{e.Person.ID, e.Person.Name}] = struct{}{}
	case KindAuction:
		o.window(e.Auction.DateTime, r.N).Sellers[e.Auction.Seller] = struct{}{}
	}
}

// EngineQ8 is q8: persons who registered and opened an auction in the same
// 10 s tumbling window.
func EngineQ8(events runtime.Stream[Record]) runtime.Stream[Traced[Q8Result]] {
	local := runtime.Apply(events, "q8-local", func() runtime.Operator[Record, q8Part] {
		return &q8Local{combiner[q8Acc, q8Part]{
			size:   WindowSize,
			newAcc: func() *q8Acc { return &q8Acc{Persons: map[q8Person]struct{}{}, Sellers: map[int64]struct{}{}} },
			emit: func(start int64, a *q8Acc, origin int64, out runtime.Collector[q8Part]) {
				out.Collect(q8Part{start, slices.Collect(maps.Keys(a.Persons)), slices.Collect(maps.Keys(a.Sellers)), origin})
			},
			codec: q8AccCodec,
		}}
	})
	merge := func(acc, p q8Part) q8Part {
		acc.Persons = append(slices.Clip(acc.Persons), p.Persons...)
		acc.Sellers = append(slices.Clip(acc.Sellers), p.Sellers...)
		acc.Origin = max(acc.Origin, p.Origin)
		return acc
	}
	return mergeWindows(local, "q8-windows", WindowSize, func(p q8Part) int64 { return p.Window }, func(p q8Part) int64 { return p.Origin },
		merge, q8PartCodec, func(start int64, acc q8Part, out runtime.Collector[Traced[Q8Result]]) {
			sellers := make(map[int64]struct{}, len(acc.Sellers))
			for _, s := range acc.Sellers {
				sellers[s] = struct{}{}
			}
			seen := make(map[q8Person]struct{}, len(acc.Persons))
			for _, p := range acc.Persons {
				if _, ok := sellers[p.ID]; !ok {
					continue
				}
				if _, dup := seen[p]; dup {
					continue
				}
				seen[p] = struct{}{}
				out.Collect(Traced[Q8Result]{Result: Q8Result{p.ID, p.Name, start}})
			}
		})
}
