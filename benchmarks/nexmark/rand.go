package nexmark

import (
	"math"
	"math/bits"
	"strconv"
	"strings"
	"sync"
)

// rng is a SplitMix64 generator. It is tiny, has no setup cost and is seeded
// per event, which is what makes Generator.EventAt a pure function.
type rng struct{ s uint64 }

const golden = 0x9E3779B97F4A7C15

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// eventRNG returns the generator for event id under seed. Hashing both keeps
// neighbouring ids and seeds uncorrelated.
func eventRNG(seed uint64, id int64) rng {
	return rng{s: mix64(seed+golden) ^ mix64(uint64(id)*golden+0x632BE59BD9B4E019)}
}

func (r *rng) next() uint64 {
	r.s += golden
	return mix64(r.s)
}

// intn returns a value in [0, n) for n > 0 (Lemire's multiply-shift; the bias
// is below 2^-40 for the small n used here).
func (r *rng) intn(n int64) int64 {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int64(hi)
}

// nextPrice follows the reference PriceGenerator: round(10^(6u) * 100) for a
// uniform u, a log-uniform price between 100 and 10^8. NB: 10^(6u) is
// interpolated in integer arithmetic from a table, so that prices do not
// depend on the platform's floating-point (FMA contraction, assembly
// math.Exp); the interpolation error is below 2e-6 relative.
func (p *pools) nextPrice(r *rng) int64 {
	x := r.next()
	i := x >> (64 - priceSegmentBits)
	f := (x >> (32 - priceSegmentBits)) & (1<<32 - 1)
	lo, hi := p.price[i], p.price[i+1]
	dh, dl := bits.Mul64(uint64(hi-lo), f)
	v := lo + int64(dh<<32|dl>>32)
	return (v + 1<<(priceScaleBits-1)) >> priceScaleBits
}

const (
	textPoolSize   = 1 << 20
	letterPoolSize = 1 << 16
	emailPoolSize  = 1 << 13
	cardPoolSize   = 1 << 13
	numChannels    = 10_000
	minStringLen   = 3
	poolSeed       = 0x6E65786D61726B // "nexmark"

	priceSegmentBits = 12 // the price curve is interpolated over 4096 segments
	priceScaleBits   = 20 // table entries are prices scaled by 2^20
)

var (
	firstNames = strings.Split("Peter,Paul,Luke,John,Saul,Vicky,Kate,Julie,Sarah,Deiter,Walter", ",")
	lastNames  = strings.Split("Shultz,Abrams,Spencer,White,Bartels,Walton,Smith,Jones,Noris", ",")
	usStates   = strings.Split("AZ,CA,ID,OR,WA,WY", ",")
	usCities   = strings.Split("Phoenix,Los Angeles,San Francisco,Boise,Portland,Bend,Redmond,Seattle,Kent,Cheyenne", ",")
	hotChannel = []string{"Google", "Facebook", "Baidu", "Apple"}
)

// pools holds every string the generator hands out. Generated strings are
// sub-slices of these, so producing an event never allocates.
type pools struct {
	text     string // [a-z ] with one space in 13, for item names and descriptions
	letters  string // [a-z], for extra padding
	names    []string
	emails   []string
	cards    []string
	chans    []string
	chanURLs []string
	hotURLs  []string
	price    [1<<priceSegmentBits + 1]int64 // 100 * 10^(6i/4096) * 2^20
}

var sharedPools = sync.OnceValue(buildPools)

func buildPools() *pools {
	r := rng{s: poolSeed}
	p := &pools{}
	for i := range p.price {
		e := 6 * float64(i) / (1 << priceSegmentBits)
		p.price[i] = int64(math.Round(100 * math.Pow(10, e) * (1 << priceScaleBits)))
	}
	b := make([]byte, textPoolSize)
	for i := range b {
		if r.intn(13) == 0 {
			b[i] = ' '
		} else {
			b[i] = byte('a' + r.intn(26))
		}
	}
	p.text = string(b)
	b = make([]byte, letterPoolSize)
	for i := range b {
		b[i] = byte('a' + r.intn(26))
	}
	p.letters = string(b)
	for _, f := range firstNames {
		for _, l := range lastNames {
			p.names = append(p.names, f+" "+l)
		}
	}
	p.emails = make([]string, emailPoolSize)
	for i := range p.emails {
		p.emails[i] = p.nextString(&r, 7) + "@" + p.nextString(&r, 5) + ".com"
	}
	p.cards = make([]string, cardPoolSize)
	for i := range p.cards {
		var c []byte
		for j := range 4 {
			if j > 0 {
				c = append(c, ' ')
			}
			v := r.intn(10000)
			c = append(c, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
		}
		p.cards[i] = string(c)
	}
	baseURL := func() string {
		// Three directories, as the Java generators' URLs (q22 splits them).
		dir := func() string { return strings.ReplaceAll(p.nextString(&r, 5), " ", "_") }
		return "https://www.nexmark.com/" + dir() + "/" + dir() + "/" + dir() + "/item.htm?query=1"
	}
	for range hotChannel {
		p.hotURLs = append(p.hotURLs, baseURL())
	}
	p.chans = make([]string, numChannels)
	p.chanURLs = make([]string, numChannels)
	for i := range numChannels {
		p.chans[i] = "channel-" + strconv.Itoa(i)
		u := baseURL()
		if r.intn(10) > 0 {
			u += "&channel_id=" + strconv.FormatUint(uint64(bits.Reverse32(uint32(i))), 10)
		}
		p.chanURLs[i] = u
	}
	return p
}

// nextString returns a string of 3 to maxLen-1 characters of the text pool
// with surrounding spaces trimmed, as the reference's nextString.
func (p *pools) nextString(r *rng, maxLen int64) string {
	n := minStringLen + r.intn(maxLen-minStringLen)
	off := r.intn(int64(len(p.text)) - n)
	return strings.Trim(p.text[off:off+n], " ")
}

// nextExtra returns padding such that currentSize+len(extra) is on average
// avgSize, as the reference's nextExtra.
func (p *pools) nextExtra(r *rng, currentSize, avgSize int64) string {
	if currentSize > avgSize {
		return ""
	}
	d := avgSize - currentSize
	delta := (2*d + 5) / 10 // Math.round(d * 0.2)
	n := d - delta
	if delta > 0 {
		n += r.intn(2 * delta)
	}
	off := r.intn(int64(len(p.letters)) - n + 1)
	return p.letters[off : off+n]
}
