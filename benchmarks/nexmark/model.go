package nexmark

import "strconv"

// Person is a new user registering with the auction site.
type Person struct {
	ID           int64
	Name         string
	EmailAddress string
	CreditCard   string
	City         string
	State        string
	DateTime     int64 // event time, ms
	Extra        string
}

// Auction is a new item put up for auction.
type Auction struct {
	ID          int64
	ItemName    string
	Description string
	InitialBid  int64
	Reserve     int64
	DateTime    int64 // event time, ms
	Expires     int64 // ms; the auction accepts bids up to and including Expires
	Seller      int64 // a Person ID
	Category    int64
	Extra       string
}

// Bid is a bid on an auction.
type Bid struct {
	Auction  int64 // an Auction ID
	Bidder   int64 // a Person ID
	Price    int64
	Channel  string
	URL      string
	DateTime int64 // event time, ms
	Extra    string
}

// EventKind says which of the three payloads of an Event is set. The values
// match the event_type column of nexmark-flink.
type EventKind uint8

const (
	KindPerson  EventKind = 0
	KindAuction EventKind = 1
	KindBid     EventKind = 2
)

// String returns "person", "auction" or "bid".
func (k EventKind) String() string {
	switch k {
	case KindPerson:
		return "person"
	case KindAuction:
		return "auction"
	case KindBid:
		return "bid"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one Nexmark event. Only the payload named by Kind is meaningful;
// the generator leaves the other two zero. The payloads are held by value so
// that producing and passing an event does not allocate.
type Event struct {
	Kind    EventKind
	Person  Person
	Auction Auction
	Bid     Bid
}

// PersonEvent wraps p in an Event.
func PersonEvent(p Person) Event { return Event{Kind: KindPerson, Person: p} }

// AuctionEvent wraps a in an Event.
func AuctionEvent(a Auction) Event { return Event{Kind: KindAuction, Auction: a} }

// BidEvent wraps b in an Event.
func BidEvent(b Bid) Event { return Event{Kind: KindBid, Bid: b} }

// Time returns the event time (ms) of the payload.
func (e *Event) Time() int64 {
	switch e.Kind {
	case KindPerson:
		return e.Person.DateTime
	case KindAuction:
		return e.Auction.DateTime
	default:
		return e.Bid.DateTime
	}
}

// String returns the canonical line of the payload.
func (e Event) String() string {
	switch e.Kind {
	case KindPerson:
		return e.Person.String()
	case KindAuction:
		return e.Auction.String()
	case KindBid:
		return e.Bid.String()
	}
	return e.Kind.String()
}

// String returns the canonical line form of p.
func (p Person) String() string {
	l := line("person")
	l = l.int("id", p.ID).str("name", p.Name).str("email", p.EmailAddress).
		str("card", p.CreditCard).str("city", p.City).str("state", p.State).
		int("time", p.DateTime).str("extra", p.Extra)
	return string(l)
}

// String returns the canonical line form of a.
func (a Auction) String() string {
	l := line("auction")
	l = l.int("id", a.ID).str("item", a.ItemName).str("desc", a.Description).
		int("initial", a.InitialBid).int("reserve", a.Reserve).int("time", a.DateTime).
		int("expires", a.Expires).int("seller", a.Seller).int("category", a.Category).
		str("extra", a.Extra)
	return string(l)
}

// String returns the canonical line form of b.
func (b Bid) String() string {
	l := line("bid")
	l = l.int("auction", b.Auction).int("bidder", b.Bidder).int("price", b.Price).
		str("channel", b.Channel).str("url", b.URL).int("time", b.DateTime).
		str("extra", b.Extra)
	return string(l)
}

// line builds canonical result lines: a tag followed by " key=value" pairs,
// strings Go-quoted so that any content stays on one unambiguous line.
type line []byte

func (l line) int(key string, v int64) line {
	l = append(l, ' ')
	l = append(l, key...)
	l = append(l, '=')
	return strconv.AppendInt(l, v, 10)
}

func (l line) str(key, v string) line {
	l = append(l, ' ')
	l = append(l, key...)
	l = append(l, '=')
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return strconv.AppendQuote(l, v)
		}
	}
	// Printable ASCII without quote or backslash, as generated strings
	// are: Go quotes it as it is (strconv.AppendQuote costs 6x more).
	l = append(l, '"')
	l = append(l, v...)
	return append(l, '"')
}

// milli appends v/1000 as an exact decimal with three fraction digits.
func (l line) milli(key string, v int64) line {
	l = append(l, ' ')
	l = append(l, key...)
	l = append(l, '=')
	u := uint64(v)
	if v < 0 {
		l = append(l, '-')
		u = -u
	}
	l = strconv.AppendUint(l, u/1000, 10)
	f := u % 1000
	return append(l, '.', byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
}
