package nexmark

import (
	"errors"
	"hash/fnv"
	"io"
	"strings"
	"testing"
)

func TestGeneratorDeterministic(t *testing.T) {
	cfg := DefaultConfig(42)
	g1, g2 := MustNewGenerator(cfg), MustNewGenerator(cfg)
	other := MustNewGenerator(DefaultConfig(43))
	var e1, e2, e3 Event
	same := 0
	for n := range int64(5000) {
		if !g1.Next(&e1) || !g2.Next(&e2) || !other.Next(&e3) {
			t.Fatalf("unbounded generator ended at %d", n)
		}
		if e1 != e2 {
			t.Fatalf("event %d differs between runs:\n%v\n%v", n, e1, e2)
		}
		if e1 == e3 {
			same++
		}
	}
	if same > 100 {
		t.Errorf("seeds 42 and 43 agree on %d of 5000 events", same)
	}
}

// TestGeneratorGolden pins the stream for seed 1, so that a change in the
// generator (which would invalidate stored offsets and results) is noticed.
func TestGeneratorGolden(t *testing.T) {
	g := MustNewGenerator(Config{Seed: 1, NumEvents: 2000})
	h := fnv.New64a()
	var e Event
	for g.Next(&e) {
		io.WriteString(h, e.String())
		h.Write([]byte{'\n'})
	}
	const want = 0x5a8e8eff9b5a8f23 // URLs with three directories, as the Java generators'

	if got := h.Sum64(); got != want {
		t.Errorf("stream hash = %#x, want %#x; update want only for an intended change of the generator", got, want)
	}
}

// TestBidURLs checks the URL shape q21 and q22 read: three directories, as
// in the Java generators, and a channel_id parameter on most non-hot
// channels.
func TestBidURLs(t *testing.T) {
	g := MustNewGenerator(Config{Seed: 3, NumEvents: 20_000})
	withID := 0
	for e := range g.Events(0, g.NumEvents()) {
		if e.Kind != KindBid {
			continue
		}
		u := e.Bid.URL
		parts := strings.Split(u, "/")
		if len(parts) != 7 || parts[2] != "www.nexmark.com" || !strings.HasPrefix(parts[6], "item.htm?query=1") {
			t.Fatalf("URL %q: want https://www.nexmark.com/a/b/c/item.htm?query=1[&channel_id=n]", u)
		}
		if strings.Contains(u, "&channel_id=") {
			withID++
		}
	}
	if withID == 0 {
		t.Errorf("no URL has a channel_id")
	}
}

func TestEventAtMatchesSequential(t *testing.T) {
	for _, group := range []int64{1, 7, 100} {
		cfg := Config{Seed: 7, NumEvents: 3000, OutOfOrderGroupSize: group}
		g := MustNewGenerator(cfg)
		var seq []Event
		var e Event
		for g.Next(&e) {
			seq = append(seq, e)
		}
		if len(seq) != 3000 || g.Next(&e) {
			t.Fatalf("group %d: got %d events, want 3000 then end", group, len(seq))
		}
		// Random access in reverse order, from a fresh generator.
		ra := MustNewGenerator(cfg)
		for n := int64(len(seq)) - 1; n >= 0; n-- {
			if got := ra.EventAt(n); got != seq[n] {
				t.Fatalf("group %d: EventAt(%d) = %v, want %v", group, n, got, seq[n])
			}
		}
		// Replay from an offset, as after a restore.
		ra.SetOffset(1234)
		for n := int64(1234); ra.Next(&e); n++ {
			if e != seq[n] {
				t.Fatalf("group %d: replay from 1234: event %d differs", group, n)
			}
		}
		n := int64(100)
		for ev := range ra.Events(100, 200) {
			if ev != seq[n] {
				t.Fatalf("group %d: Events: event %d differs", group, n)
			}
			n++
		}
		if n != 200 {
			t.Fatalf("group %d: Events(100, 200) yielded %d events", group, n-100)
		}
	}
}

func TestProportionsAndIDs(t *testing.T) {
	for _, group := range []int64{1, 7} {
		const total = 50 * 7 * 100
		g := MustNewGenerator(Config{Seed: 3, NumEvents: total, OutOfOrderGroupSize: group})
		var counts [3]int
		persons := map[int64]bool{}
		auctions := map[int64]bool{}
		var e Event
		for n := int64(0); g.Next(&e); n++ {
			counts[e.Kind]++
			if g.KindOf(n) != e.Kind {
				t.Fatalf("KindOf(%d) = %v, event is %v", n, g.KindOf(n), e.Kind)
			}
			switch e.Kind {
			case KindPerson:
				if persons[e.Person.ID] {
					t.Fatalf("duplicate person id %d", e.Person.ID)
				}
				persons[e.Person.ID] = true
			case KindAuction:
				if auctions[e.Auction.ID] {
					t.Fatalf("duplicate auction id %d", e.Auction.ID)
				}
				auctions[e.Auction.ID] = true
			}
		}
		want := [3]int{total / 50, total * 3 / 50, total * 46 / 50}
		if counts != want {
			t.Errorf("group %d: person/auction/bid counts = %v, want %v", group, counts, want)
		}
		// Ids are dense from 1000.
		for id := int64(FirstPersonID); id < FirstPersonID+int64(want[0]); id++ {
			if !persons[id] {
				t.Fatalf("group %d: person %d missing", group, id)
			}
		}
		for id := int64(FirstAuctionID); id < FirstAuctionID+int64(want[1]); id++ {
			if !auctions[id] {
				t.Fatalf("group %d: auction %d missing", group, id)
			}
		}
	}
}

func TestReferences(t *testing.T) {
	g := MustNewGenerator(Config{Seed: 5, NumEvents: 100_000})
	e0, e1, e2, e3 := g.EventAt(0), g.EventAt(1), g.EventAt(3), g.EventAt(50)
	if e0.Kind != KindPerson || e0.Person.ID != 1000 || e1.Auction.ID != 1000 ||
		e2.Auction.ID != 1002 || e3.Person.ID != 1001 {
		t.Fatalf("first ids: %d %d %d %d", e0.Person.ID, e1.Auction.ID, e2.Auction.ID, e3.Person.ID)
	}
	var e Event
	var bids, hotAuction, hotBidder, hotSeller, auctions, bidBytes, cheap int64
	lastPerson, lastAuction := int64(-1), int64(-1)
	for g.Next(&e) {
		switch e.Kind {
		case KindPerson:
			lastPerson = e.Person.ID
		case KindAuction:
			a := &e.Auction
			lastAuction = a.ID
			auctions++
			if a.Seller > lastPerson+personIDLead || a.Seller < FirstPersonID {
				t.Fatalf("auction %d: seller %d, last person %d", a.ID, a.Seller, lastPerson)
			}
			if a.Seller == (lastPerson-FirstPersonID)/hotBatch*hotBatch+FirstPersonID {
				hotSeller++
			}
			if a.Category < FirstCategoryID || a.Category >= FirstCategoryID+NumCategories ||
				a.Expires <= a.DateTime || a.Reserve < a.InitialBid || a.InitialBid < 100 {
				t.Fatalf("bad auction %v", a)
			}
		case KindBid:
			b := &e.Bid
			bids++
			bidBytes += 32 + int64(len(b.Extra))
			if b.Price < 100_000 { // 10^(6*0.5) * 100: the median of the price
				cheap++
			}
			if b.Auction > lastAuction+auctionIDLead || b.Auction < FirstAuctionID {
				t.Fatalf("bid on auction %d, last auction %d", b.Auction, lastAuction)
			}
			if b.Auction == (lastAuction-FirstAuctionID)/hotBatch*hotBatch+FirstAuctionID {
				hotAuction++
			}
			if b.Bidder == (lastPerson-FirstPersonID)/hotBatch*hotBatch+FirstPersonID+1 {
				hotBidder++
			}
			if b.Price < 100 || b.Price > 100_000_000 || b.Channel == "" || b.URL == "" {
				t.Fatalf("bad bid %v", b)
			}
		}
	}
	// Expected shares: hot auction 1-1/2 (plus random hits), hot bidder and
	// hot seller 1-1/4.
	within := func(name string, got, of int64, lo, hi float64) {
		if f := float64(got) / float64(of); f < lo || f > hi {
			t.Errorf("%s share = %.3f, want in [%.2f, %.2f]", name, f, lo, hi)
		}
	}
	within("hot auction", hotAuction, bids, 0.48, 0.56)
	within("hot bidder", hotBidder, bids, 0.73, 0.78)
	within("hot seller", hotSeller, auctions, 0.72, 0.79)
	within("avg bid bytes", bidBytes, bids*100, 0.97, 1.03)
	within("price below median", cheap, bids, 0.49, 0.51)
}

func TestTimestamps(t *testing.T) {
	g := MustNewGenerator(Config{Seed: 1, BaseTime: 1_000_000, FirstEventRate: 3, NumEvents: 1000})
	prev := int64(-1)
	var e Event
	for n := int64(0); g.Next(&e); n++ {
		want := 1_000_000 + n*1000/3
		if e.Time() != want || g.TimestampAt(n) != want || g.WatermarkAt(n) != want {
			t.Fatalf("event %d: time %d, TimestampAt %d, WatermarkAt %d, want %d", n, e.Time(), g.TimestampAt(n), g.WatermarkAt(n), want)
		}
		if e.Time() < prev {
			t.Fatalf("event %d: time %d before previous %d", n, e.Time(), prev)
		}
		prev = e.Time()
	}
	// Out of order: every event is at or after the watermark of its own and
	// all earlier positions, and the watermark never decreases.
	g = MustNewGenerator(Config{Seed: 1, FirstEventRate: 1000, NumEvents: 5000, OutOfOrderGroupSize: 100})
	wm, inversions := int64(0), 0
	prev = 0
	for n := int64(0); g.Next(&e); n++ {
		w := g.WatermarkAt(n)
		if w < wm || e.Time() < w {
			t.Fatalf("event %d: time %d, watermark %d, previous watermark %d", n, e.Time(), w, wm)
		}
		if e.Time() < prev {
			inversions++
		}
		wm, prev = w, e.Time()
	}
	if inversions == 0 {
		t.Errorf("OutOfOrderGroupSize 100 produced no out-of-order events")
	}
}

func TestGeneratorNoAllocs(t *testing.T) {
	g := MustNewGenerator(DefaultConfig(1))
	var e Event
	n := int64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		g.FillEvent(n, &e)
		n++
	})
	if allocs != 0 {
		t.Errorf("FillEvent allocates %.1f times per event", allocs)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, bad := range []Config{
		{FirstEventRate: -1},
		{NumEvents: -1},
		{OutOfOrderGroupSize: 953},
		{AvgBidByteSize: maxAvgByteSize + 1},
		{HotAuctionRatio: -2},
		{BaseTime: -5},
	} {
		if _, err := NewGenerator(bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("NewGenerator(%+v) error = %v, want ErrInvalidConfig", bad, err)
		}
	}
	c := DefaultConfig(0)
	if c.FirstEventRate != 10_000 || c.NumActivePeople != 1000 || c.NumInFlightAuctions != 100 ||
		c.AvgAuctionByteSize != 500 || c.OutOfOrderGroupSize != 1 {
		t.Errorf("DefaultConfig = %+v", c)
	}
}

// TestFillRecordMatchesEventAt checks that the source's records, generated
// in place into one reused Record, carry exactly event n and its processing
// time, in and out of order, with the payloads of the other kinds zero
// (none left over from an earlier record).
func TestFillRecordMatchesEventAt(t *testing.T) {
	for _, group := range []int64{1, 100} {
		g := MustNewGenerator(Config{Seed: 7, NumEvents: 3000, OutOfOrderGroupSize: group})
		var r Record
		for n := range g.NumEvents() {
			g.fillRecord(n, &r)
			want := Record{N: n, ProcTime: g.ProcessingTimeAt(n)}
			switch e := g.EventAt(n); e.Kind {
			case KindPerson:
				want.Kind, want.Person = KindPerson, e.Person
			case KindAuction:
				want.Kind, want.Auction = KindAuction, e.Auction
			default:
				want.Kind, want.Bid = KindBid, e.Bid
			}
			if r != want {
				t.Fatalf("group %d: record %d = %+v, want %+v", group, n, r, want)
			}
		}
	}
}
