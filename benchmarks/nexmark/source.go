package nexmark

// This file and queries_engine.go, codec.go and harness.go are the weir half
// of the harness: the generator as a replayable runtime source, the queries
// written in the DSL, and the plumbing that runs them and compares their
// output with the references above.

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/runtime"
)

// Record is an event as the Nexmark source emits it, with its event number,
// which is also the source's offset. Only the payload named by Kind is set;
// the other two are zero.
//
// NB: persons and auctions are held by value, as in Event, so the source
// allocates nothing per event. Held by pointer (8% of the events), a Record
// was 120 bytes rather than 320, cheaper to copy at every operator of the
// source's chain, but the source allocated 9 bytes an event on average,
// and collecting that garbage cost q7 more than the copies: its engine CPU
// at 2M events went 0.19 → 0.17 s by value (interleaved runs; GOGC=off had
// made the pointer version 15% faster), while the stateless queries that
// pass every record on, q0, q13 and q22, lost about 8–10% (noisy).
type Record struct {
	N        int64 // event number
	ProcTime int64 // processing time: Generator.ProcessingTimeAt(N)
	Kind     EventKind
	Bid      Bid
	Person   Person
	Auction  Auction
}

// Event returns the payload as an Event.
func (r *Record) Event() Event {
	switch r.Kind {
	case KindPerson:
		return PersonEvent(r.Person)
	case KindAuction:
		return AuctionEvent(r.Auction)
	default:
		return BidEvent(r.Bid)
	}
}

// Traced is a query result with the number of the input event it is traced
// to, for latency measurement: the event it was computed from or, for results
// fired by the watermark, the newest event the firing operator had seen.
// Origin is -1 when unknown.
type Traced[R any] struct {
	Result R
	Origin int64
}

// SourceConfig configures Source.
type SourceConfig struct {
	// Generator produces the events; the source emits events 0 to
	// Generator.NumEvents()-1 (it must be bounded for a job to end).
	Generator *Generator
	// RatePerSecond limits the events per second over all subtasks; 0 means
	// as fast as possible.
	RatePerSecond float64
	// ChunkSize is the number of events per Read (default 1024). The
	// watermark advances after each Read.
	ChunkSize int
	// Clock, if set, records when sampled events were emitted.
	Clock *EmitClock
	// Emitted, if set, is increased by the number of events emitted, once
	// per Read (for progress reports).
	Emitted *atomic.Int64

	// beforeRead, for tests, is called before each read; its error fails
	// the read.
	beforeRead func(context.Context) error
}

// Source returns a source factory for runtime.From. Subtask s of p emits the
// event numbers s, s+p, s+2p, …; its checkpointed offset is the next event
// number it would emit, so a restored source replays exactly what followed
// the checkpoint.
func Source(cfg SourceConfig) runtime.SourceFactory[Record] {
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = 1024
	}
	return func() (runtime.Source[Record], error) { return &source{cfg: cfg, g: cfg.Generator}, nil }
}

// Watermarks returns the watermark strategy matching g: monotonous
// timestamps when g keeps events in order, otherwise bounded by g's
// out-of-orderness, so that the watermark never passes an event still to
// come and no event is late. The strategy has no Timestamp function: the
// source gives each record's event time with CollectAt, as it generates
// it (a function of the record was a copy of it per event).
func Watermarks(g *Generator) runtime.SourceOption[Record] {
	var s runtime.WatermarkStrategy[Record]
	if g.Config().OutOfOrderGroupSize > 1 {
		s.MaxOutOfOrderness = g.MaxOutOfOrderness()
	}
	return runtime.WithWatermarks(s)
}

// MaxOutOfOrderness returns how much earlier than the latest event so far a
// later event's time can be: zero for in-order generators, otherwise a bound
// on the spread of event times inside one out-of-order group.
func (g *Generator) MaxOutOfOrderness() time.Duration {
	k := g.cfg.OutOfOrderGroupSize
	if k == 1 {
		return 0
	}
	r := g.cfg.FirstEventRate
	ms := ((k-1)*1000+r-1)/r + 1
	return time.Duration(ms) * time.Millisecond
}

type source struct {
	cfg SourceConfig
	g   *Generator
	seq generator.Sequence // event numbers
}

func (s *source) Open(_ context.Context, info runtime.TaskInfo, restored []byte) error {
	if s.g == nil {
		return errors.New("nexmark: SourceConfig.Generator is nil")
	}
	return s.seq.Open(info, restored, s.cfg.RatePerSecond)
}

func (s *source) Read(ctx context.Context, out runtime.Collector[Record]) error {
	if f := s.cfg.beforeRead; f != nil {
		if err := f(ctx); err != nil {
			return err
		}
	}
	n, err := s.seq.Quota(ctx, s.cfg.ChunkSize)
	if err != nil {
		return err
	}
	limit, emitted := s.g.NumEvents(), 0
	defer func() {
		if s.cfg.Emitted != nil {
			s.cfg.Emitted.Add(int64(emitted))
		}
	}()
	clock := s.cfg.Clock
	stride := int64(s.seq.Stride)
	// With Watermarks the source gives the event times.
	timed, isTimed := out.(runtime.TimestampCollector[Record])
	var rec Record // on the stack: filling it needs no write barriers
	for range n {
		next := int64(s.seq.Next)
		if next >= limit {
			return runtime.ErrEndOfInput
		}
		if clock != nil && next&(emitBlock-1) < stride {
			clock.record(next) // the first event of its block this subtask emits
		}
		if ts := s.g.fillRecord(next, &rec); isTimed {
			timed.CollectAt(rec, ts)
		} else {
			out.Collect(rec)
		}
		s.seq.Next += s.seq.Stride
		emitted++
	}
	return nil
}

// fillRecord stores event n in *r, the record of the previous event or a
// zero one, as FillEvent would in an Event, but generated in place: the
// payload straight into its field of r, with no Event to copy from (the
// source's share of the work the reference loop does not have), and the
// processing time taken from the event time when the events are in order,
// where the two are equal, rather than computed again. It returns the
// event's time.
func (g *Generator) fillRecord(n int64, r *Record) (eventTime int64) {
	id := g.adjusted(n)
	ts := g.timeOf(id)
	rng := eventRNG(g.cfg.Seed, id)
	prev := r.Kind
	r.N, r.ProcTime, r.Kind = n, ts, kindOfID(id)
	if id != n {
		r.ProcTime = g.ProcessingTimeAt(n)
	}
	if prev != r.Kind {
		r.clear(prev)
	}
	switch r.Kind {
	case KindPerson:
		g.person(&r.Person, id, ts, &rng)
	case KindAuction:
		g.auction(&r.Auction, id, ts, &rng)
	default:
		g.bid(&r.Bid, id, ts, &rng)
	}
	return ts
}

// clear zeroes the payload of kind k. NB: fillRecord clears only the payload
// the previous record set, when the kind changes, rather than the two
// others at every event (216 bytes at every bid).
func (r *Record) clear(k EventKind) {
	switch k {
	case KindPerson:
		r.Person = Person{}
	case KindAuction:
		r.Auction = Auction{}
	default:
		r.Bid = Bid{}
	}
}

func (s *source) Snapshot() ([]byte, error) { return s.seq.Snapshot(), nil }

func (s *source) Close() error { return nil }

// emitBlock is the sampling granularity of EmitClock: the emission time of
// the first event of each block of this many event numbers is recorded.
const emitBlock = 128

// EmitClock records when a source emitted the first event of each block of
// 128 event numbers, in a fixed ring that sources write and sinks read
// without locks. A sink that receives a result traced to event n looks up
// n's block; the latency so measured is at most one block's emission time
// too long.
type EmitClock struct {
	start time.Time
	slots []emitSlot
	mask  int64
}

type emitSlot struct {
	block atomic.Int64 // block number + 1; 0 means empty
	nanos atomic.Int64 // since start
}

// maxEmitSlots is the most blocks an EmitClock remembers.
const maxEmitSlots = 1 << 20

// NewEmitClock returns a clock that remembers the last 1<<20 blocks (134M
// events), plenty for results traced to recent events.
func NewEmitClock() *EmitClock { return emitClockFor(maxEmitSlots * emitBlock) }

// emitClockFor returns a clock that remembers every block of the first
// events event numbers, or the last 1<<20 blocks if there are more.
//
// NB: a job of few events needs few slots. Zeroing all 1<<20 (16 MiB) was
// 4.3 of the 23 ms of CPU a 1000-event q8 job took (100 jobs, one core),
// and its pages returned to the OS 1.6 more: a fixed cost charged to every
// engine run, which the reference loop does not pay.
func emitClockFor(events int64) *EmitClock {
	slots := int64(1)
	for slots < maxEmitSlots && slots*emitBlock < events {
		slots *= 2
	}
	return &EmitClock{start: time.Now(), slots: make([]emitSlot, slots), mask: slots - 1}
}

func (c *EmitClock) record(n int64) {
	b := n / emitBlock
	sl := &c.slots[b&c.mask]
	if sl.block.Load() == b+1 {
		return // another subtask recorded this block first
	}
	sl.nanos.Store(int64(time.Since(c.start)))
	sl.block.Store(b + 1)
}

// Since returns the time elapsed since the block of event n was emitted, and
// false if it was not recorded (or already overwritten).
func (c *EmitClock) Since(n int64) (time.Duration, bool) {
	if n < 0 {
		return 0, false
	}
	b := n / emitBlock
	sl := &c.slots[b&c.mask]
	if sl.block.Load() != b+1 {
		return 0, false
	}
	t := sl.nanos.Load()
	if sl.block.Load() != b+1 {
		return 0, false
	}
	return time.Since(c.start) - time.Duration(t), true
}

// Block returns the block of event n, so that a sink can measure once per
// block.
func Block(n int64) int64 { return n / emitBlock }
