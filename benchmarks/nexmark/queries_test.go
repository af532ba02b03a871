package nexmark

import (
	"cmp"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/testseed"
)

// Handcrafted events. Only the fields the queries read are set.
func person(id int64, name, state string, t int64) Event {
	return PersonEvent(Person{ID: id, Name: name, City: "City" + name, State: state, DateTime: t})
}

func auction(id, seller, category, t, expires int64) Event {
	return AuctionEvent(Auction{ID: id, Seller: seller, Category: category, DateTime: t, Expires: expires})
}

func bid(auction, bidder, price, t int64) Event {
	return BidEvent(Bid{Auction: auction, Bidder: bidder, Price: price, DateTime: t, Extra: "x"})
}

// lines returns the canonical lines of rs in result order.
func lines[T fmt.Stringer](rs []T) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.String()
	}
	return out
}

func checkLines(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestQ0(t *testing.T) {
	in := []Event{person(1, "A", "OR", 0), bid(7, 1, 100, 5), auction(7, 1, 10, 1, 9), bid(8, 2, 3, 6)}
	checkLines(t, lines(Q0Reference(slices.Values(in))), []string{
		`bid auction=7 bidder=1 price=100 channel="" url="" time=5 extra="x"`,
		`bid auction=8 bidder=2 price=3 channel="" url="" time=6 extra="x"`,
	})
}

func TestQ1(t *testing.T) {
	in := []Event{bid(7, 1, 1000, 5), person(1, "A", "OR", 0), bid(8, 2, 1, 6), bid(9, 3, 12345, 7), bid(9, 3, 0, 8)}
	checkLines(t, lines(Q1Reference(slices.Values(in))), []string{
		`q1 auction=7 bidder=1 price=908.000 time=5 extra="x"`,
		`q1 auction=8 bidder=2 price=0.908 time=6 extra="x"`,
		`q1 auction=9 bidder=3 price=11209.260 time=7 extra="x"`,
		`q1 auction=9 bidder=3 price=0.000 time=8 extra="x"`,
	})
}

func TestQ2(t *testing.T) {
	in := []Event{bid(123, 1, 10, 0), bid(1000, 1, 11, 1), auction(246, 1, 10, 2, 3), bid(246, 2, 12, 3), bid(1107, 3, 13, 4), bid(1108, 3, 14, 5)}
	checkLines(t, lines(Q2Reference(slices.Values(in))), []string{
		`q2 auction=123 price=10`,
		`q2 auction=246 price=12`,
		`q2 auction=1107 price=13`,
	})
}

func TestQ3(t *testing.T) {
	in := []Event{
		auction(100, 1, 10, 0, 9),  // seller 1 arrives later: emitted with person 1
		person(1, "A", "OR", 1),    //   -> (A, 100)
		person(2, "B", "WA", 2),    // wrong state
		auction(101, 2, 10, 3, 9),  //   so no match
		person(3, "C", "CA", 4),    //
		auction(102, 3, 11, 5, 9),  // wrong category
		auction(103, 3, 10, 6, 9),  //   -> (C, 103)
		auction(104, 1, 10, 7, 9),  //   -> (A, 104)
		auction(105, 99, 10, 8, 9), // seller never arrives
		person(4, "D", "ID", 9),    // no auctions
	}
	checkLines(t, lines(Q3Reference(slices.Values(in))), []string{
		`q3 name="A" city="CityA" state="OR" id=100`,
		`q3 name="C" city="CityC" state="CA" id=103`,
		`q3 name="A" city="CityA" state="OR" id=104`,
	})
}

func TestQ4(t *testing.T) {
	in := []Event{
		bid(2, 9, 60, 2000),             // before its auction arrives, at its start: counts
		auction(1, 9, 10, 1000, 5000),   // category 10, open [1000, 5000]
		bid(1, 9, 50, 1500),             //
		bid(1, 9, 80, 999),              // before the start: ignored
		bid(1, 9, 71, 5000),             // at expiry: counts -> final 71
		bid(1, 9, 999, 5001),            // after expiry: ignored
		auction(2, 9, 10, 2000, 3000),   // category 10, final 60
		bid(2, 9, 40, 2500),             //
		auction(3, 9, 11, 0, 100),       // category 11
		bid(3, 9, 5, 100),               //   final 5
		auction(4, 9, 10, 0, 10000),     // no bids: no closing price
		auction(3, 9, 12, 0, 1_000_000), // repeated id: ignored
		bid(5, 9, 1, 0),                 // auction never seen
	}
	checkLines(t, lines(Q4Reference(slices.Values(in))), []string{
		`q4 category=11 avg=5 count=1 auction=3 final=5 expires=100`,
		`q4 category=10 avg=60 count=1 auction=2 final=60 expires=3000`,
		`q4 category=10 avg=65 count=2 auction=1 final=71 expires=5000`, // (60+71)/2 truncated
	})
}

func TestQ5(t *testing.T) {
	in := []Event{
		bid(1, 9, 1, 0), bid(1, 9, 1, 1000), bid(2, 9, 1, 1000), // pane [0, 2000)
		bid(2, 9, 1, 9000), bid(2, 9, 1, 9500), // pane [8000, 10000)
		bid(3, 9, 1, 11000), bid(4, 9, 1, 11500), // pane [10000, 12000)
		person(1, "A", "OR", 50_000), // not a bid: opens no window
	}
	checkLines(t, lines(Q5Reference(slices.Values(in))), []string{
		`q5 start=-8000 end=2000 auction=1 num=2`,
		`q5 start=-6000 end=4000 auction=1 num=2`,
		`q5 start=-4000 end=6000 auction=1 num=2`,
		`q5 start=-2000 end=8000 auction=1 num=2`,
		`q5 start=0 end=10000 auction=2 num=3`,
		`q5 start=2000 end=12000 auction=2 num=2`,
		`q5 start=4000 end=14000 auction=2 num=2`,
		`q5 start=6000 end=16000 auction=2 num=2`,
		`q5 start=8000 end=18000 auction=2 num=2`,
		`q5 start=10000 end=20000 auction=3 num=1`, // tie: both emitted
		`q5 start=10000 end=20000 auction=4 num=1`,
	})
}

func TestQ7(t *testing.T) {
	in := []Event{
		bid(1, 9, 5, 100),
		bid(2, 9, 9, 200),
		bid(6, 9, 7, 300),
		bid(3, 9, 9, 9999),   // ties with auction 2
		bid(4, 9, 9, 10000),  // next window: not joined back into [0, 10000)
		bid(5, 9, 3, 15000),  //
		bid(7, 9, 2, -1),     // window [-10000, 0)
		bid(8, 9, 10, 40000), // window [40000, 50000)
	}
	checkLines(t, lines(Q7Reference(slices.Values(in))), []string{
		`q7 start=-10000 end=0 auction=7 bidder=9 price=2 time=-1 extra="x"`,
		`q7 start=0 end=10000 auction=2 bidder=9 price=9 time=200 extra="x"`,
		`q7 start=0 end=10000 auction=3 bidder=9 price=9 time=9999 extra="x"`,
		`q7 start=10000 end=20000 auction=4 bidder=9 price=9 time=10000 extra="x"`,
		`q7 start=40000 end=50000 auction=8 bidder=9 price=10 time=40000 extra="x"`,
	})
}

func TestQ8(t *testing.T) {
	in := []Event{
		auction(10, 3, 10, 9000, 0),  // seller 3 not a new person in [0, 10000)
		person(1, "A", "OR", 1000),   //
		person(2, "B", "WA", 2000),   //
		auction(11, 1, 10, 5000, 0),  // -> (1, A, 0)
		auction(12, 1, 10, 6000, 0),  //    once, not twice
		auction(13, 2, 10, 10000, 0), // person 2 was in the previous window
		auction(14, 3, 10, 19999, 0), // -> (3, C, 10000), auction before person
		person(3, "C", "CA", 12000),  //
		bid(3, 3, 1, 12000),          // bids are irrelevant
	}
	checkLines(t, lines(Q8Reference(slices.Values(in))), []string{
		`q8 id=1 name="A" start=0`,
		`q8 id=3 name="C" start=10000`,
	})
}

// TestReferencesOrderIndependent checks the documented contract that the
// output multiset does not depend on the arrival order of the events (no
// event is late), on generated data with a few seconds of event time.
func TestReferencesOrderIndependent(t *testing.T) {
	g := MustNewGenerator(Config{Seed: 9, FirstEventRate: 2000, NumEvents: 60_000})
	in := slices.Collect(g.Events(0, g.NumEvents()))
	shuffled := slices.Clone(in)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) {
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	})
	for _, q := range allQueries {
		a := q.run(slices.Values(in))
		b := q.run(slices.Values(shuffled))
		if len(a) == 0 {
			t.Errorf("%s: no output on %d generated events", q.name, len(in))
		}
		if !slices.Equal(a, b) {
			t.Errorf("%s: output differs after shuffling the input (%d vs %d lines)", q.name, len(a), len(b))
		}
		t.Logf("%s: %d results", q.name, len(a))
	}
}

// allQueries runs each reference and returns its sorted canonical lines.
var allQueries = []struct {
	name string
	run  func(iter.Seq[Event]) []string
}{
	{"q0", func(s iter.Seq[Event]) []string { return SortedLines(Q0Reference(s)) }},
	{"q1", func(s iter.Seq[Event]) []string { return SortedLines(Q1Reference(s)) }},
	{"q2", func(s iter.Seq[Event]) []string { return SortedLines(Q2Reference(s)) }},
	{"q3", func(s iter.Seq[Event]) []string { return SortedLines(Q3Reference(s)) }},
	{"q4", func(s iter.Seq[Event]) []string { return SortedLines(Q4Reference(s)) }},
	{"q5", func(s iter.Seq[Event]) []string { return SortedLines(Q5Reference(s)) }},
	{"q7", func(s iter.Seq[Event]) []string { return SortedLines(Q7Reference(s)) }},
	{"q6", func(s iter.Seq[Event]) []string { return SortedLines(Q6Reference(s)) }},
	{"q8", func(s iter.Seq[Event]) []string { return SortedLines(Q8Reference(s)) }},
	{"q9", func(s iter.Seq[Event]) []string { return SortedLines(Q9Reference(s)) }},
	{"q10", func(s iter.Seq[Event]) []string { return SortedLines(Q10Reference(s)) }},
	{"q11", func(s iter.Seq[Event]) []string { return SortedLines(Q11Reference(s)) }},
	// q12 is missing on purpose: processing time depends on the order.
	{"q13", func(s iter.Seq[Event]) []string { return SortedLines(Q13Reference(s)) }},
	{"q14", func(s iter.Seq[Event]) []string { return SortedLines(Q14Reference(s)) }},
	{"q15", func(s iter.Seq[Event]) []string { return SortedLines(Q15Reference(s)) }},
	{"q16", func(s iter.Seq[Event]) []string { return SortedLines(Q16Reference(s)) }},
	{"q17", func(s iter.Seq[Event]) []string { return SortedLines(Q17Reference(s)) }},
	{"q18", func(s iter.Seq[Event]) []string { return SortedLines(Q18Reference(s)) }},
	{"q19", func(s iter.Seq[Event]) []string { return SortedLines(Q19Reference(s)) }},
	{"q20", func(s iter.Seq[Event]) []string { return SortedLines(Q20Reference(s)) }},
	{"q21", func(s iter.Seq[Event]) []string { return SortedLines(Q21Reference(s)) }},
	{"q22", func(s iter.Seq[Event]) []string { return SortedLines(Q22Reference(s)) }},
}

func bidAt(auction, bidder, price, t int64, channel, url, extra string) Event {
	return BidEvent(Bid{Auction: auction, Bidder: bidder, Price: price, DateTime: t, Channel: channel, URL: url, Extra: extra})
}

func TestQ6(t *testing.T) {
	var in []Event
	// Seller 9 closes 12 auctions (ids 1..12, expiring in id order) with
	// winning prices 10, 20, …, 120: the average covers the last 10.
	for id := int64(1); id <= 12; id++ {
		in = append(in, auction(id, 9, 10, 0, 1000*id), bid(id, 5, 10*id, 500), bid(id, 5, 1, 600))
	}
	in = append(in, auction(13, 9, 10, 0, 99), bid(13, 5, 7, 100)) // bid after expiry: no winner
	got := lines(Q6Reference(slices.Values(in)))
	if len(got) != 12 {
		t.Fatalf("%d results, want 12:\n%s", len(got), strings.Join(got, "\n"))
	}
	checkLines(t, got[9:], []string{
		`q6 seller=9 avg=55 count=10 auction=10 expires=10000`,
		`q6 seller=9 avg=65 count=10 auction=11 expires=11000`, // 20..110
		`q6 seller=9 avg=75 count=10 auction=12 expires=12000`,
	})
}

func TestQ9(t *testing.T) {
	in := []Event{
		auction(1, 9, 10, 100, 200),
		bid(1, 5, 50, 150),
		bid(1, 6, 50, 120),       // same price, earlier: wins
		bid(1, 7, 99, 201),       // after expiry
		bid(1, 8, 99, 99),        // before the start
		auction(2, 9, 10, 0, 10), // no bid
	}
	checkLines(t, lines(Q9Reference(slices.Values(in))), []string{
		`q9 id=1 item="" desc="" initial=0 reserve=0 time=100 expires=200 seller=9 category=10 extra="" bidder=6 price=50 channel="" url="" bid_time=120 bid_extra="x"`,
	})
}

func TestQ11(t *testing.T) {
	in := []Event{bid(1, 7, 1, 0), bid(1, 7, 1, 9999), bid(1, 7, 1, 19999), bid(1, 7, 1, 29999), bid(1, 8, 1, 5), bid(1, 7, 1, 45000)}
	checkLines(t, lines(Q11Reference(slices.Values(in))), []string{
		`q11 bidder=7 count=2 start=0 end=19999`,
		`q11 bidder=7 count=1 start=19999 end=29999`, // exactly the gap after 9999: a new session
		`q11 bidder=7 count=1 start=29999 end=39999`,
		`q11 bidder=7 count=1 start=45000 end=55000`,
		`q11 bidder=8 count=1 start=5 end=10005`,
	})
}

func TestQ12(t *testing.T) {
	// Event n is processed at n*1000/rate ms: with 1000 events per second,
	// events 0..9999 fall into [0, 10000) and 10000.. into the next window,
	// whatever their event times.
	g := MustNewGenerator(Config{Seed: 1, FirstEventRate: 1000, NumEvents: 10_001})
	in := make([]Event, 10_001)
	for i := range in {
		in[i] = person(1, "A", "OR", 0)
	}
	in[0], in[9999], in[10_000] = bid(1, 7, 1, 50_000), bid(1, 7, 1, -5), bid(1, 7, 1, 0)
	checkLines(t, lines(Q12Reference(g, slices.Values(in))), []string{
		`q12 bidder=7 count=2 start=0 end=10000`,
		`q12 bidder=7 count=1 start=10000 end=20000`,
	})
}

func TestQ14(t *testing.T) {
	const hour = 3600_000
	in := []Event{
		bidAt(1, 2, 1_101_322, 9*hour, "", "", "abc cc"), // 1000000.376: kept, day, 3 c
		bidAt(1, 2, 1_101_321, 9*hour, "", "", ""),       // 999999.468: too cheap
		bidAt(1, 2, 2_000_000, 19*hour+1, "", "", "c"),   // otherTime
		bidAt(1, 2, 2_000_000, 30*hour, "", "", ""),      // 06:00 next day: nightTime
		bidAt(1, 2, 55_066_079, 20*hour, "", "", ""),     // 49999999.732: kept, nightTime
		bidAt(1, 2, 55_066_080, 20*hour, "", "", ""),     // 50000000.640: too expensive
	}
	checkLines(t, lines(Q14Reference(slices.Values(in))), []string{
		`q14 auction=1 bidder=2 price=1000000.376 type="dayTime" time=32400000 extra="abc cc" c_counts=3`,
		`q14 auction=1 bidder=2 price=1816000.000 type="otherTime" time=68400001 extra="c" c_counts=1`,
		`q14 auction=1 bidder=2 price=1816000.000 type="nightTime" time=108000000 extra="" c_counts=0`,
		`q14 auction=1 bidder=2 price=49999999.732 type="nightTime" time=72000000 extra="" c_counts=0`,
	})
}

func TestQ15AndQ17(t *testing.T) {
	const day = 86_400_000
	in := []Event{
		bid(1, 7, 5, 0), bid(1, 7, 50_000, 10), bid(2, 8, 5_000_000, 20), bid(1, 8, 6, 30),
		bid(1, 7, 5, day), // next day
	}
	checkLines(t, lines(Q15Reference(slices.Values(in))), []string{
		`q15 day="1970-01-01" total_bids=4 rank1_bids=2 rank2_bids=1 rank3_bids=1 total_bidders=2 rank1_bidders=2 rank2_bidders=1 rank3_bidders=1 total_auctions=2 rank1_auctions=1 rank2_auctions=1 rank3_auctions=1`,
		`q15 day="1970-01-02" total_bids=1 rank1_bids=1 rank2_bids=0 rank3_bids=0 total_bidders=1 rank1_bidders=1 rank2_bidders=0 rank3_bidders=0 total_auctions=1 rank1_auctions=1 rank2_auctions=0 rank3_auctions=0`,
	})
	checkLines(t, lines(Q17Reference(slices.Values(in))), []string{
		`q17 auction=1 day="1970-01-01" total_bids=3 rank1_bids=2 rank2_bids=1 rank3_bids=0 min_price=5 max_price=50000 avg_price=16670 sum_price=50011`,
		`q17 auction=2 day="1970-01-01" total_bids=1 rank1_bids=0 rank2_bids=0 rank3_bids=1 min_price=5000000 max_price=5000000 avg_price=5000000 sum_price=5000000`,
		`q17 auction=1 day="1970-01-02" total_bids=1 rank1_bids=1 rank2_bids=0 rank3_bids=0 min_price=5 max_price=5 avg_price=5 sum_price=5`,
	})
}

func TestQ16(t *testing.T) {
	in := []Event{bidAt(1, 7, 5, 60_000, "A", "", ""), bidAt(2, 7, 5, 3_600_000, "A", "", ""), bidAt(1, 8, 20_000, 0, "B", "", "")}
	checkLines(t, lines(Q16Reference(slices.Values(in))), []string{
		`q16 channel="A" day="1970-01-01" minute="01:00" total_bids=2 rank1_bids=2 rank2_bids=0 rank3_bids=0 total_bidders=1 rank1_bidders=1 rank2_bidders=0 rank3_bidders=0 total_auctions=2 rank1_auctions=2 rank2_auctions=0 rank3_auctions=0`,
		`q16 channel="B" day="1970-01-01" minute="00:00" total_bids=1 rank1_bids=0 rank2_bids=1 rank3_bids=0 total_bidders=1 rank1_bidders=0 rank2_bidders=1 rank3_bidders=0 total_auctions=1 rank1_auctions=0 rank2_auctions=1 rank3_auctions=0`,
	})
}

func TestQ18AndQ19(t *testing.T) {
	var in []Event
	for i := int64(0); i < 12; i++ {
		in = append(in, bid(1, 7, 100+i, 1000-i)) // bidder 7's last bid: the first (time 1000)
	}
	in = append(in, bid(1, 8, 5, 3), bid(1, 8, 6, 3)) // same time: the higher price is later
	got := SortedLines(Q18Reference(slices.Values(in)))
	checkLines(t, got, []string{
		`bid auction=1 bidder=7 price=100 channel="" url="" time=1000 extra="x"`,
		`bid auction=1 bidder=8 price=6 channel="" url="" time=3 extra="x"`,
	})
	top := SortedLines(Q19Reference(slices.Values(in)))
	if len(top) != Q19TopN || !strings.Contains(top[0], "rank=1 bidder=7 price=111") || !strings.Contains(top[1], "rank=10 bidder=7 price=102") {
		t.Errorf("q19:\n%s", strings.Join(top, "\n"))
	}
}

func TestQ20(t *testing.T) {
	in := []Event{bid(1, 7, 5, 0), auction(1, 9, 10, 0, 9), bid(1, 8, 6, 1), auction(2, 9, 11, 0, 9), bid(2, 7, 5, 2)}
	got := lines(Q20Reference(slices.Values(in)))
	if len(got) != 2 || !strings.Contains(got[0], "bidder=7") || !strings.Contains(got[1], "bidder=8") {
		t.Errorf("q20:\n%s", strings.Join(got, "\n"))
	}
}

func TestQ21AndQ22(t *testing.T) {
	in := []Event{
		bidAt(1, 2, 3, 0, "Apple", "https://www.nexmark.com/a/b/c/item.htm?query=1", ""),
		bidAt(1, 2, 3, 0, "channel-7", "https://www.nexmark.com/d/e/f/item.htm?query=1&channel_id=77&x=1", ""),
		bidAt(1, 2, 3, 0, "channel-8", "https://www.nexmark.com/g/item.htm?query=1", ""),
		bidAt(1, 2, 3, 0, "channel-9", "channel_id=5", ""),
	}
	checkLines(t, lines(Q21Reference(slices.Values(in))), []string{
		`q21 auction=1 bidder=2 price=3 channel="Apple" channel_id="0"`,
		`q21 auction=1 bidder=2 price=3 channel="channel-7" channel_id="77"`,
		`q21 auction=1 bidder=2 price=3 channel="channel-9" channel_id="5"`,
	})
	checkLines(t, lines(Q22Reference(slices.Values(in))), []string{
		`q22 auction=1 bidder=2 price=3 channel="Apple" dir1="a" dir2="b" dir3="c"`,
		`q22 auction=1 bidder=2 price=3 channel="channel-7" dir1="d" dir2="e" dir3="f"`,
		`q22 auction=1 bidder=2 price=3 channel="channel-8" dir1="g" dir2="item.htm?query=1" dir3=""`,
		`q22 auction=1 bidder=2 price=3 channel="channel-9" dir1="" dir2="" dir3=""`,
	})
}

// TestCompareBidsIsBetterBid checks that compareBids, q19's engine
// comparator, orders bids as BetterBid does (q19's reference): bids drawn
// from two values per field, so that pairs tie on every prefix of fields.
func TestCompareBidsIsBetterBid(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 19))
	strs := []string{"a", "b"}
	bid := func() Bid {
		return Bid{Price: rng.Int64N(2), DateTime: rng.Int64N(2), Bidder: rng.Int64N(2),
			Channel: strs[rng.IntN(2)], URL: strs[rng.IntN(2)], Extra: strs[rng.IntN(2)]}
	}
	for range 2000 {
		a, b := bid(), bid()
		want := 0
		switch {
		case BetterBid(&a, &b):
			want = -1
		case BetterBid(&b, &a):
			want = 1
		}
		if got := compareBids(&a, &b); cmp.Compare(got, 0) != want {
			t.Fatalf("compareBids(%+v, %+v) = %d, BetterBid says %d", a, b, got, want)
		}
	}
}
