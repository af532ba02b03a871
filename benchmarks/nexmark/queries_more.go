package nexmark

import (
	"cmp"
	"iter"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// References of q10–q22 (q6 and q9 are in queries_auctions.go).

const (
	// Q11SessionGap is the inactivity gap (ms) that ends a q11 session.
	Q11SessionGap = 10_000
	// Q12WindowSize is q12's processing-time window (ms).
	Q12WindowSize = 10_000
	// Q13SideInputRows is the number of rows of q13's side input, keyed
	// 0..Q13SideInputRows-1; a bid joins row auction % Q13SideInputRows.
	Q13SideInputRows = 10_000
	// Q14 keeps bids whose euro price (×0.908) lies strictly between these
	// bounds, in thousandths.
	Q14MinPriceMilli = 1_000_000 * 1000
	Q14MaxPriceMilli = 50_000_000 * 1000
	// Q19TopN is how many of an auction's highest bids q19 ranks.
	Q19TopN = 10
	// Price ranks of q15–q17: rank 1 below 10 000, rank 2 below 1 000 000,
	// rank 3 above.
	rank1Below = 10_000
	rank2Below = 1_000_000
	dayMillis  = 24 * 3600 * 1000
)

// date formats the day of t (ms, UTC) as yyyy-MM-dd, hourMinute as HH:mm.
func date(t int64) string       { return time.UnixMilli(t).UTC().Format("2006-01-02") }
func hourMinute(t int64) string { return time.UnixMilli(t).UTC().Format("15:04") }

// priceRank returns 1, 2 or 3 (see rank1Below).
func priceRank(price int64) int {
	switch {
	case price < rank1Below:
		return 1
	case price < rank2Below:
		return 2
	}
	return 3
}

// ---- q10 -----------------------------------------------------------------

// Q10Result is a bid as q10 logs it, with its partition: the day and the
// minute of its time.
type Q10Result struct {
	Auction, Bidder, Price, DateTime int64
	Extra                            string
	Date, Minute                     string // yyyy-MM-dd, HH:mm
}

// String returns the canonical line, which is also the line q10 writes.
func (r Q10Result) String() string { return string(r.appendLine(nil)) }

// appendLine appends the canonical line to dst: the file sink formats into
// its buffer with it, without a string per line.
func (r Q10Result) appendLine(dst []byte) []byte {
	return line(append(dst, "q10"...)).int("auction", r.Auction).int("bidder", r.Bidder).int("price", r.Price).
		int("time", r.DateTime).str("extra", r.Extra).str("dt", r.Date).str("hm", r.Minute)
}

// Q10Reference is q10, log to file system: every bid with its day and
// minute (nexmark-flink, which writes them to files partitioned by day and
// minute; the engine does the same with the exactly-once file sink).
func Q10Reference(events iter.Seq[Event]) []Q10Result {
	var out []Q10Result
	var minutes q10Minutes
	for e := range events {
		if e.Kind == KindBid {
			out = append(out, minutes.of(&e.Bid))
		}
	}
	return out
}

// q10Minutes makes q10's results, formatting the day and minute once per
// minute of event time (the reference and the engine alike): bids come
// about in time order, tens of thousands per minute.
type q10Minutes struct {
	minute   int64 // of date and hm; 0 before the first
	date, hm string
}

func (c *q10Minutes) of(b *Bid) Q10Result {
	if m := b.DateTime/60_000 + 1; m != c.minute || b.DateTime < 0 {
		c.minute, c.date, c.hm = m, date(b.DateTime), hourMinute(b.DateTime)
	}
	return Q10Result{b.Auction, b.Bidder, b.Price, b.DateTime, b.Extra, c.date, c.hm}
}

// ---- q11 -----------------------------------------------------------------

// Q11Result is the number of bids of one bidder's session.
type Q11Result struct {
	Bidder, Count, Start, End int64
}

// String returns the canonical line.
func (r Q11Result) String() string {
	return string(line("q11").int("bidder", r.Bidder).int("count", r.Count).int("start", r.Start).int("end", r.End))
}

// Q11Reference is q11, user sessions: the bids of each bidder grouped in
// session windows with a 10 s gap (SESSION(dateTime, INTERVAL '10' SECOND)):
// a bid at t opens [t, t+10s) and overlapping windows merge, so a session
// ends 10 s after its last bid; a bid exactly 10 s after the previous one
// starts a new session (weir's and Flink's session windows agree).
func Q11Reference(events iter.Seq[Event]) []Q11Result {
	times := map[int64][]int64{}
	for e := range events {
		if e.Kind == KindBid {
			times[e.Bid.Bidder] = append(times[e.Bid.Bidder], e.Bid.DateTime)
		}
	}
	var out []Q11Result
	for _, bidder := range slices.Sorted(maps.Keys(times)) {
		ts := times[bidder]
		slices.Sort(ts)
		start, end, n := ts[0], ts[0]+Q11SessionGap, int64(0)
		for _, t := range ts {
			if t >= end {
				out = append(out, Q11Result{bidder, n, start, end})
				start, n = t, 0
			}
			end = t + Q11SessionGap
			n++
		}
		out = append(out, Q11Result{bidder, n, start, end})
	}
	return out
}

// ---- q12 -----------------------------------------------------------------

// Q12Result is the number of bids of one bidder in one processing-time
// window.
type Q12Result struct {
	Bidder, Count, Start, End int64
}

// String returns the canonical line.
func (r Q12Result) String() string {
	return string(line("q12").int("bidder", r.Bidder).int("count", r.Count).int("start", r.Start).int("end", r.End))
}

// Q12Reference is q12, processing-time windows: bids per bidder in 10 s
// tumbling windows of processing time (TUMBLE(PROCTIME(), INTERVAL '10'
// SECOND)), on the harness's fixed processing-time clock
// (Generator.ProcessingTimeAt). events must be events 0, 1, … of g, in
// order.
func Q12Reference(g *Generator, events iter.Seq[Event]) []Q12Result {
	type key struct{ bidder, start int64 }
	counts := map[key]int64{}
	n := int64(0)
	for e := range events {
		if e.Kind == KindBid {
			counts[key{e.Bid.Bidder, floorDiv(g.ProcessingTimeAt(n), Q12WindowSize) * Q12WindowSize}]++
		}
		n++
	}
	out := make([]Q12Result, 0, len(counts))
	for k, c := range counts {
		out = append(out, Q12Result{k.bidder, c, k.start, k.start + Q12WindowSize})
	}
	slices.SortFunc(out, func(a, b Q12Result) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.Bidder, b.Bidder))
	})
	return out
}

// ---- q13 -----------------------------------------------------------------

// Q13SideInput returns the value of row key of q13's side input, a bounded
// table the harness writes to a CSV file (key,value) and the engine loads.
func Q13SideInput(key int64) string {
	return "side-" + strconv.FormatInt(key, 10) + "-" + strconv.FormatUint(mix64(uint64(key))%1_000_000, 10)
}

// Q13Result is a bid joined with its side input row.
type Q13Result struct {
	Auction, Bidder, Price, DateTime int64
	Value                            string
}

// String returns the canonical line.
func (r Q13Result) String() string {
	return string(line("q13").int("auction", r.Auction).int("bidder", r.Bidder).int("price", r.Price).
		int("time", r.DateTime).str("value", r.Value))
}

// Q13Reference is q13, bounded side input join: every bid joined with the
// side input row auction % 10000 (nexmark-flink joins FOR SYSTEM_TIME AS OF
// the bid's processing time; the table never changes, so that is every
// bid with its row).
func Q13Reference(events iter.Seq[Event]) []Q13Result {
	var out []Q13Result
	for e := range events {
		if e.Kind == KindBid {
			b := &e.Bid
			out = append(out, Q13Result{b.Auction, b.Bidder, b.Price, b.DateTime, Q13SideInput(b.Auction % Q13SideInputRows)})
		}
	}
	return out
}

// ---- q14 -----------------------------------------------------------------

// Q14Result is a bid with its euro price, time of day and number of 'c' in
// its extra.
type Q14Result struct {
	Auction, Bidder, PriceMilli int64
	BidTimeType                 string // dayTime, nightTime or otherTime
	DateTime                    int64
	Extra                       string
	CCount                      int64
}

// String returns the canonical line.
func (r Q14Result) String() string {
	return string(line("q14").int("auction", r.Auction).int("bidder", r.Bidder).milli("price", r.PriceMilli).
		str("type", r.BidTimeType).int("time", r.DateTime).str("extra", r.Extra).int("c_counts", r.CCount))
}

// Q14Reference is q14, calculation: bids whose euro price is strictly
// between 1 000 000 and 50 000 000, with the time of day of their hour
// (UTC): 8–18 dayTime, up to 6 or from 20 nightTime, else otherTime, and
// the number of 'c' in extra (nexmark-flink's count_char UDF).
func Q14Reference(events iter.Seq[Event]) []Q14Result {
	var out []Q14Result
	for e := range events {
		if e.Kind == KindBid {
			if r, ok := q14Of(&e.Bid); ok {
				out = append(out, r)
			}
		}
	}
	return out
}

func q14Of(b *Bid) (Q14Result, bool) {
	p := b.Price * Q1EuroPerDollarMilli
	if p <= Q14MinPriceMilli || p >= Q14MaxPriceMilli {
		return Q14Result{}, false
	}
	h := floorDiv(b.DateTime, 3600_000) % 24
	if h < 0 {
		h += 24
	}
	kind := "otherTime"
	switch {
	case h >= 8 && h <= 18:
		kind = "dayTime"
	case h <= 6 || h >= 20:
		kind = "nightTime"
	}
	return Q14Result{b.Auction, b.Bidder, p, kind, b.DateTime, b.Extra, int64(strings.Count(b.Extra, "c"))}, true
}

// ---- q15, q16 --------------------------------------------------------------

// BidStats are q15's and q16's statistics of a group of bids: bids,
// distinct bidders and distinct auctions, in total and per price rank.
type BidStats struct {
	Bids     [4]int64 // [0] total, [1..3] per rank
	Bidders  [4]int64
	Auctions [4]int64
}

func (s BidStats) fields(l line) line {
	for i, name := range []string{"bids", "bidders", "auctions"} {
		v := [3][4]int64{s.Bids, s.Bidders, s.Auctions}[i]
		l = l.int("total_"+name, v[0]).int("rank1_"+name, v[1]).int("rank2_"+name, v[2]).int("rank3_"+name, v[3])
	}
	return l
}

// bidStatsSets computes BidStats: bids counted, bidders and auctions as
// sets of the ranks they bid in (bit r-1 for rank r).
type bidStatsSets struct {
	bids     [4]int64
	bidders  map[int64]uint8
	auctions map[int64]uint8
}

func (s *bidStatsSets) add(b *Bid) {
	if s.bidders == nil {
		s.bidders, s.auctions = map[int64]uint8{}, map[int64]uint8{}
	}
	r := priceRank(b.Price)
	s.bids[0]++
	s.bids[r]++
	s.bidders[b.Bidder] |= 1 << (r - 1)
	s.auctions[b.Auction] |= 1 << (r - 1)
}

func countRanks(m map[int64]uint8) [4]int64 {
	var c [4]int64
	for _, bits := range m {
		c[0]++
		for r := 1; r <= 3; r++ {
			if bits&(1<<(r-1)) != 0 {
				c[r]++
			}
		}
	}
	return c
}

func (s *bidStatsSets) stats() BidStats {
	return BidStats{s.bids, countRanks(s.bidders), countRanks(s.auctions)}
}

// Q15Result is one day's bidding statistics.
type Q15Result struct {
	Day string
	BidStats
}

// String returns the canonical line.
func (r Q15Result) String() string { return string(r.fields(line("q15").str("day", r.Day))) }

// Q15Reference is q15, bidding statistics report: per day (UTC), the
// number of bids, of distinct bidders and of distinct auctions, in total
// and per price rank (below 10 000, below 1 000 000, above). nexmark-flink's
// GROUP BY day is an updating aggregate; we emit each day once, its final
// value, when the watermark passes the day's end.
func Q15Reference(events iter.Seq[Event]) []Q15Result {
	days := map[int64]*bidStatsSets{}
	for e := range events {
		if e.Kind == KindBid {
			d := floorDiv(e.Bid.DateTime, dayMillis)
			s := days[d]
			if s == nil {
				s = &bidStatsSets{}
				days[d] = s
			}
			s.add(&e.Bid)
		}
	}
	var out []Q15Result
	for _, d := range slices.Sorted(maps.Keys(days)) {
		out = append(out, Q15Result{date(d * dayMillis), days[d].stats()})
	}
	return out
}

// Q16Result is one channel's bidding statistics of one day.
type Q16Result struct {
	Channel string
	Day     string
	Minute  string // the latest HH:mm of a bid
	BidStats
}

// String returns the canonical line.
func (r Q16Result) String() string {
	return string(r.fields(line("q16").str("channel", r.Channel).str("day", r.Day).str("minute", r.Minute)))
}

// Q16Reference is q16, channel statistics report: q15's statistics per
// channel and day, with the latest minute (HH:mm) of a bid; final values,
// emitted when the day ends, as in q15.
func Q16Reference(events iter.Seq[Event]) []Q16Result {
	type key struct {
		channel string
		day     int64
	}
	type group struct {
		bidStatsSets
		last int64
	}
	groups := map[key]*group{}
	for e := range events {
		if e.Kind == KindBid {
			k := key{e.Bid.Channel, floorDiv(e.Bid.DateTime, dayMillis)}
			g := groups[k]
			if g == nil {
				g = &group{last: e.Bid.DateTime}
				groups[k] = g
			}
			g.add(&e.Bid)
			g.last = max(g.last, e.Bid.DateTime)
		}
	}
	out := make([]Q16Result, 0, len(groups))
	for k, g := range groups {
		out = append(out, Q16Result{k.channel, date(k.day * dayMillis), hourMinute(g.last), g.stats()})
	}
	slices.SortFunc(out, func(a, b Q16Result) int { return cmp.Or(cmp.Compare(a.Day, b.Day), cmp.Compare(a.Channel, b.Channel)) })
	return out
}

// ---- q17 -----------------------------------------------------------------

// AuctionDayStats are q17's statistics of one auction's bids of one day.
type AuctionDayStats struct {
	Bids               [4]int64 // [0] total, [1..3] per price rank
	Min, Max, Sum, Avg int64    // Avg = Sum/Bids[0], truncated
}

// Q17Result is one auction's bid statistics of one day.
type Q17Result struct {
	Auction int64
	Day     string
	AuctionDayStats
}

// String returns the canonical line.
func (r Q17Result) String() string {
	return string(line("q17").int("auction", r.Auction).str("day", r.Day).int("total_bids", r.Bids[0]).
		int("rank1_bids", r.Bids[1]).int("rank2_bids", r.Bids[2]).int("rank3_bids", r.Bids[3]).
		int("min_price", r.Min).int("max_price", r.Max).int("avg_price", r.Avg).int("sum_price", r.Sum))
}

func (s AuctionDayStats) add(price int64) AuctionDayStats {
	if s.Bids[0] == 0 || price < s.Min {
		s.Min = price
	}
	s.Max = max(s.Max, price)
	s.Bids[0]++
	s.Bids[priceRank(price)]++
	s.Sum += price
	return s
}

func (s AuctionDayStats) merge(o AuctionDayStats) AuctionDayStats {
	if o.Bids[0] == 0 {
		return s
	}
	if s.Bids[0] == 0 || o.Min < s.Min {
		s.Min = o.Min
	}
	s.Max = max(s.Max, o.Max)
	for i := range s.Bids {
		s.Bids[i] += o.Bids[i]
	}
	s.Sum += o.Sum
	return s
}

func (s AuctionDayStats) final() AuctionDayStats {
	s.Avg = s.Sum / s.Bids[0]
	return s
}

// Q17Reference is q17, auction statistics report: per auction and day, the
// number of bids in total and per price rank, and the minimum, maximum,
// average (truncated, as AVG over BIGINT) and sum of their prices; final
// values, emitted when the day ends (as q15).
func Q17Reference(events iter.Seq[Event]) []Q17Result {
	type key struct{ auction, day int64 }
	groups := map[key]AuctionDayStats{}
	for e := range events {
		if e.Kind == KindBid {
			k := key{e.Bid.Auction, floorDiv(e.Bid.DateTime, dayMillis)}
			groups[k] = groups[k].add(e.Bid.Price)
		}
	}
	out := make([]Q17Result, 0, len(groups))
	for k, s := range groups {
		out = append(out, Q17Result{k.auction, date(k.day * dayMillis), s.final()})
	}
	slices.SortFunc(out, func(a, b Q17Result) int { return cmp.Or(cmp.Compare(a.Day, b.Day), cmp.Compare(a.Auction, b.Auction)) })
	return out
}

// ---- q18, q19: updating queries --------------------------------------------
//
// q18 and q19 are updating queries: their SQL result is a table that
// changes with every bid. The engine emits the changes as an upsert stream
// (a new row for a key replaces the key's previous one); the harness folds
// the committed stream into the final table and compares that with the
// reference's.

// Q18Result is the last bid of one bidder on one auction.
type Q18Result = Bid

// LaterBid reports whether a is later than b as q18 orders bids: the later
// time, then, among bids of the same millisecond, the one BetterBid ranks
// first (a total order, so that the last bid is well defined).
func LaterBid(a, b *Bid) bool {
	if a.DateTime != b.DateTime {
		return a.DateTime > b.DateTime
	}
	return BetterBid(a, b)
}

// Q18Reference is q18, find last bid: the last bid (LaterBid) of each
// bidder on each auction (nexmark-flink: ROW_NUMBER() OVER (PARTITION BY
// bidder, auction ORDER BY dateTime DESC) <= 1), as the final table.
func Q18Reference(events iter.Seq[Event]) []Q18Result {
	type key struct{ bidder, auction int64 }
	last := map[key]Bid{}
	for e := range events {
		if e.Kind == KindBid {
			k := key{e.Bid.Bidder, e.Bid.Auction}
			if cur, ok := last[k]; !ok || LaterBid(&e.Bid, &cur) {
				last[k] = e.Bid
			}
		}
	}
	return slices.Collect(maps.Values(last))
}

func q18Key(b Bid) upsertKey { return upsertKey{b.Bidder, b.Auction} }

// Q19Result is one of the highest bids of an auction, with its rank.
type Q19Result struct {
	Rank int64
	Bid
}

// String returns the canonical line.
func (r Q19Result) String() string {
	b := &r.Bid
	return string(line("q19").int("auction", b.Auction).int("rank", r.Rank).int("bidder", b.Bidder).int("price", b.Price).
		str("channel", b.Channel).str("url", b.URL).int("time", b.DateTime).str("extra", b.Extra))
}

// Q19Reference is q19, auction top-10 price: the 10 highest bids of each
// auction, ranked (ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price
// DESC) <= 10; ties in BetterBid's order, a total order), as the final
// table.
func Q19Reference(events iter.Seq[Event]) []Q19Result {
	top := map[int64][]Bid{}
	for e := range events {
		if e.Kind == KindBid {
			q19Rank(top, e.Bid)
		}
	}
	var out []Q19Result
	for _, l := range top {
		for i, b := range l {
			out = append(out, Q19Result{int64(i + 1), b})
		}
	}
	return out
}

// q19Rank enters b into its auction's ranking in top if it ranks, and
// returns the ranking and b's index in it, -1 if it does not rank.
func q19Rank(top map[int64][]Bid, b Bid) ([]Bid, int) {
	l := top[b.Auction]
	i, _ := slices.BinarySearchFunc(l, b, func(x, y Bid) int {
		if BetterBid(&x, &y) {
			return -1
		}
		return 1
	})
	if i >= Q19TopN {
		return l, -1
	}
	l = slices.Insert(l, i, b)
	l = l[:min(len(l), Q19TopN)]
	top[b.Auction] = l
	return l, i
}

// ---- q20 -----------------------------------------------------------------

// Q20Result is a bid with its category-10 auction.
type Q20Result struct {
	Bid     Bid
	Auction Auction
}

// String returns the canonical line: the bid's columns, then the auction's.
func (r Q20Result) String() string {
	b, a := &r.Bid, &r.Auction
	return string(line("q20").int("auction", b.Auction).int("bidder", b.Bidder).int("price", b.Price).
		str("channel", b.Channel).str("url", b.URL).int("bid_time", b.DateTime).str("bid_extra", b.Extra).
		str("item", a.ItemName).str("desc", a.Description).int("initial", a.InitialBid).int("reserve", a.Reserve).
		int("time", a.DateTime).int("expires", a.Expires).int("seller", a.Seller).int("category", a.Category).
		str("extra", a.Extra))
}

// Q20Reference is q20, expand bid with auction: the unwindowed inner join
// of bids with the auctions of category 10 on B.auction = A.id, kept
// forever (as q3): each pair is emitted when its second side arrives.
func Q20Reference(events iter.Seq[Event]) []Q20Result {
	auctions := map[int64][]Auction{}
	bids := map[int64][]Bid{}
	var out []Q20Result
	for e := range events {
		switch e.Kind {
		case KindAuction:
			a := e.Auction
			if a.Category != Q3Category {
				continue
			}
			auctions[a.ID] = append(auctions[a.ID], a)
			for _, b := range bids[a.ID] {
				out = append(out, Q20Result{b, a})
			}
		case KindBid:
			b := e.Bid
			bids[b.Auction] = append(bids[b.Auction], b)
			for _, a := range auctions[b.Auction] {
				out = append(out, Q20Result{b, a})
			}
		}
	}
	return out
}

// ---- q21 -----------------------------------------------------------------

// Q21Result is a bid with its channel id.
type Q21Result struct {
	Auction, Bidder, Price int64
	Channel, ChannelID     string
}

// String returns the canonical line.
func (r Q21Result) String() string {
	return string(line("q21").int("auction", r.Auction).int("bidder", r.Bidder).int("price", r.Price).
		str("channel", r.Channel).str("channel_id", r.ChannelID))
}

// Q21Reference is q21, add channel id: bids with the id of their channel,
// '0'–'3' for apple, google, facebook and baidu (case-insensitive), else
// the channel_id parameter of the URL (REGEXP_EXTRACT(url,
// '(&|^)channel_id=([^&]*)', 2)); bids with neither are dropped.
func Q21Reference(events iter.Seq[Event]) []Q21Result {
	var out []Q21Result
	for e := range events {
		if e.Kind == KindBid {
			if r, ok := q21Of(&e.Bid); ok {
				out = append(out, r)
			}
		}
	}
	return out
}

func q21Of(b *Bid) (Q21Result, bool) {
	id, ok := "", true
	switch strings.ToLower(b.Channel) {
	case "apple":
		id = "0"
	case "google":
		id = "1"
	case "facebook":
		id = "2"
	case "baidu":
		id = "3"
	default:
		id, ok = urlParam(b.URL, "channel_id")
	}
	return Q21Result{b.Auction, b.Bidder, b.Price, b.Channel, id}, ok
}

// urlParam is REGEXP_EXTRACT(url, '(&|^)name=([^&]*)', 2): the value after
// the first "name=" at the start of url or after an '&'.
func urlParam(url, name string) (string, bool) {
	for i := 0; i <= len(url)-len(name)-1; i++ {
		if (i == 0 || url[i-1] == '&') && strings.HasPrefix(url[i:], name) && url[i+len(name)] == '=' {
			v := url[i+len(name)+1:]
			if j := strings.IndexByte(v, '&'); j >= 0 {
				v = v[:j]
			}
			return v, true
		}
	}
	return "", false
}

// ---- q22 -----------------------------------------------------------------

// Q22Result is a bid with the first three directories of its URL.
type Q22Result struct {
	Auction, Bidder, Price int64
	Channel                string
	Dir1, Dir2, Dir3       string
}

// String returns the canonical line.
func (r Q22Result) String() string {
	return string(line("q22").int("auction", r.Auction).int("bidder", r.Bidder).int("price", r.Price).
		str("channel", r.Channel).str("dir1", r.Dir1).str("dir2", r.Dir2).str("dir3", r.Dir3))
}

// Q22Reference is q22, get URL directories: every bid with
// SPLIT_INDEX(url, '/', 3), 4 and 5: the parts 3 to 5 (from 0) of its URL
// split at '/' ("" where there is no such part: Flink's NULL).
func Q22Reference(events iter.Seq[Event]) []Q22Result {
	var out []Q22Result
	for e := range events {
		if e.Kind == KindBid {
			out = append(out, q22Of(&e.Bid))
		}
	}
	return out
}

func q22Of(b *Bid) Q22Result {
	var dirs [6]string
	rest := b.URL
	for i := range dirs {
		part, tail, found := strings.Cut(rest, "/")
		dirs[i] = part
		if !found {
			break
		}
		rest = tail
	}
	return Q22Result{b.Auction, b.Bidder, b.Price, b.Channel, dirs[3], dirs[4], dirs[5]}
}
