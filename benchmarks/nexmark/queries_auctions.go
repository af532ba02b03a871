package nexmark

import "iter"

// References of the queries built on closed auctions (q4 is in queries.go):
// q6 and q9.

// Q6Average is how many of a seller's last closed auctions q6 averages.
const Q6Average = 10

// Q6Result is a seller's new average selling price after one of their
// auctions closed.
type Q6Result struct {
	Seller  int64
	Avg     int64 // mean of the last Count closing prices, truncated
	Count   int64 // min(closed auctions of Seller so far, 10)
	Auction int64 // the auction whose close produced this update
	Expires int64 // its expiry: the event time of the update
}

// String returns the canonical line.
func (r Q6Result) String() string {
	l := line("q6").int("seller", r.Seller).int("avg", r.Avg).int("count", r.Count).
		int("auction", r.Auction).int("expires", r.Expires)
	return string(l)
}

// Q6Reference is q6, average selling price by seller (Beam's Query6; Flink
// has none): whenever an auction closes with a winning bid (as in q4), the
// average closing price of its seller's last 10 closed auctions, in
// (Expires, Auction) order. Beam emits on every closing too, but counts
// only winning bids at or above the reserve price and orders by processing
// time; we follow q4's rules so that the output is deterministic.
func Q6Reference(events iter.Seq[Event]) []Q6Result {
	last := map[int64][]int64{} // seller -> last prices, oldest first
	var out []Q6Result
	for _, c := range closeAuctionsReference(events) {
		a := &c.Auction
		prices := append(last[a.Seller], c.Winner.Price)
		if len(prices) > Q6Average {
			prices = prices[len(prices)-Q6Average:]
		}
		last[a.Seller] = prices
		out = append(out, Q6Result{a.Seller, mean(prices), int64(len(prices)), a.ID, a.Expires})
	}
	return out
}

func mean(xs []int64) int64 {
	var sum int64
	for _, x := range xs {
		sum += x
	}
	return sum / int64(len(xs))
}

// Q9Result is an auction with its winning bid.
type Q9Result = ClosedAuction

// String returns the canonical line: the auction's columns, then the bid's.
func (c ClosedAuction) String() string {
	a, b := &c.Auction, &c.Winner
	l := line("q9").int("id", a.ID).str("item", a.ItemName).str("desc", a.Description).
		int("initial", a.InitialBid).int("reserve", a.Reserve).int("time", a.DateTime).
		int("expires", a.Expires).int("seller", a.Seller).int("category", a.Category).
		str("extra", a.Extra).int("bidder", b.Bidder).int("price", b.Price).
		str("channel", b.Channel).str("url", b.URL).int("bid_time", b.DateTime).str("bid_extra", b.Extra)
	return string(l)
}

// Q9Reference is q9, winning bids: every auction with its winning bid, the
// highest priced of its bids in [A.dateTime, A.expires], ties to the
// earliest (nexmark-flink's ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY
// B.price DESC, B.dateTime ASC) = 1; remaining ties to BetterBid's order),
// emitted when the auction closes. Auctions without such a bid have no
// row, as in the SQL's inner join.
func Q9Reference(events iter.Seq[Event]) []Q9Result {
	return closeAuctionsReference(events)
}
