package nexmark

import (
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
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
	{"q8", func(s iter.Seq[Event]) []string { return SortedLines(Q8Reference(s)) }},
}
