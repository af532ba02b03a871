package nexmark

import (
	"errors"
	"fmt"
)

// ErrInvalidConfig marks every error returned by Config.Validate.
var ErrInvalidConfig = errors.New("nexmark: invalid config")

// Defaults of Config, as in Beam's and nexmark-flink's NexmarkConfiguration.
const (
	DefaultFirstEventRate      = 10_000
	DefaultNumActivePeople     = 1000
	DefaultNumInFlightAuctions = 100
	DefaultHotAuctionRatio     = 2
	DefaultHotSellersRatio     = 4
	DefaultHotBiddersRatio     = 4
	DefaultAvgPersonByteSize   = 200
	DefaultAvgAuctionByteSize  = 500
	DefaultAvgBidByteSize      = 100

	// maxAvgByteSize bounds the Avg*ByteSize settings so that "extra" padding
	// always fits in the generator's letter pool.
	maxAvgByteSize = letterPoolSize / 2
)

// Config parametrises a Generator. Zero fields take the defaults above
// (EnsureDefaults); Seed, BaseTime and NumEvents are used as given.
//
// Only the constant-rate ("square" with equal first and next rate) event
// schedule of the references is supported, with one logical generator; the
// person:auction:bid proportions are fixed at 1:3:46.
type Config struct {
	// Seed selects the random choices. Same Seed and config, same events.
	Seed uint64
	// BaseTime is the event time (ms) of event 0.
	BaseTime int64
	// FirstEventRate is the event rate (events per second of event time) that
	// spaces the event timestamps: event n has time BaseTime + n*1000/rate.
	FirstEventRate int64
	// NumEvents is the number of events Next yields; 0 means unbounded.
	NumEvents int64
	// OutOfOrderGroupSize shuffles events inside consecutive groups of this
	// many, as the references' outOfOrderGroupSize does; 1 (default) keeps
	// event times non-decreasing. Must not be a multiple of 953.
	OutOfOrderGroupSize int64
	// NumActivePeople is how many of the most recent persons may sell or bid.
	NumActivePeople int64
	// NumInFlightAuctions is how many of the most recent auctions non-hot bids
	// choose from; it also sets the average auction length.
	NumInFlightAuctions int64
	// HotAuctionRatio: a bid goes to the current hot auction with probability
	// 1-1/HotAuctionRatio.
	HotAuctionRatio int64
	// HotSellersRatio: an auction is sold by the current hot seller with
	// probability 1-1/HotSellersRatio.
	HotSellersRatio int64
	// HotBiddersRatio: a bid comes from the current hot bidder with probability
	// 1-1/HotBiddersRatio.
	HotBiddersRatio int64
	// Avg*ByteSize are the idealised average event sizes that the Extra
	// padding aims for.
	AvgPersonByteSize  int64
	AvgAuctionByteSize int64
	AvgBidByteSize     int64
}

// DefaultConfig returns the default configuration with the given seed.
func DefaultConfig(seed uint64) Config {
	c := Config{Seed: seed}
	c.EnsureDefaults()
	return c
}

// EnsureDefaults sets every zero field that has a default to its default.
func (c *Config) EnsureDefaults() {
	def := func(p *int64, v int64) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.FirstEventRate, DefaultFirstEventRate)
	def(&c.OutOfOrderGroupSize, 1)
	def(&c.NumActivePeople, DefaultNumActivePeople)
	def(&c.NumInFlightAuctions, DefaultNumInFlightAuctions)
	def(&c.HotAuctionRatio, DefaultHotAuctionRatio)
	def(&c.HotSellersRatio, DefaultHotSellersRatio)
	def(&c.HotBiddersRatio, DefaultHotBiddersRatio)
	def(&c.AvgPersonByteSize, DefaultAvgPersonByteSize)
	def(&c.AvgAuctionByteSize, DefaultAvgAuctionByteSize)
	def(&c.AvgBidByteSize, DefaultAvgBidByteSize)
}

// Validate reports the first invalid setting. It expects EnsureDefaults to
// have run.
func (c *Config) Validate() error {
	bad := func(field string, v int64, want string) error {
		return fmt.Errorf("%w: %s = %d, want %s", ErrInvalidConfig, field, v, want)
	}
	switch {
	case c.BaseTime < 0:
		return bad("BaseTime", c.BaseTime, ">= 0")
	case c.FirstEventRate <= 0 || c.FirstEventRate > maxEventRate:
		return bad("FirstEventRate", c.FirstEventRate, fmt.Sprintf("in [1, %d]", maxEventRate))
	case c.NumEvents < 0:
		return bad("NumEvents", c.NumEvents, ">= 0")
	case c.OutOfOrderGroupSize <= 0 || c.OutOfOrderGroupSize%953 == 0:
		return bad("OutOfOrderGroupSize", c.OutOfOrderGroupSize, "> 0 and not a multiple of 953")
	case c.NumActivePeople <= 0:
		return bad("NumActivePeople", c.NumActivePeople, "> 0")
	case c.NumInFlightAuctions <= 0:
		return bad("NumInFlightAuctions", c.NumInFlightAuctions, "> 0")
	case c.HotAuctionRatio <= 0:
		return bad("HotAuctionRatio", c.HotAuctionRatio, "> 0")
	case c.HotSellersRatio <= 0:
		return bad("HotSellersRatio", c.HotSellersRatio, "> 0")
	case c.HotBiddersRatio <= 0:
		return bad("HotBiddersRatio", c.HotBiddersRatio, "> 0")
	case c.AvgPersonByteSize <= 0 || c.AvgPersonByteSize > maxAvgByteSize:
		return bad("AvgPersonByteSize", c.AvgPersonByteSize, fmt.Sprintf("in [1, %d]", maxAvgByteSize))
	case c.AvgAuctionByteSize <= 0 || c.AvgAuctionByteSize > maxAvgByteSize:
		return bad("AvgAuctionByteSize", c.AvgAuctionByteSize, fmt.Sprintf("in [1, %d]", maxAvgByteSize))
	case c.AvgBidByteSize <= 0 || c.AvgBidByteSize > maxAvgByteSize:
		return bad("AvgBidByteSize", c.AvgBidByteSize, fmt.Sprintf("in [1, %d]", maxAvgByteSize))
	}
	return nil
}
