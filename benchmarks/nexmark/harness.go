package nexmark

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/runtime"
)

// Query is one Nexmark query as the benchmark harness runs it: as a weir job
// (EngineQn) and as its reference implementation (QnReference), over the
// same events, with outputs that can be compared.
type Query interface {
	// Name returns "q0", "q1", ….
	Name() string
	// UsesEventTime reports whether the query needs event time and
	// watermarks (q4, q5, q7, q8).
	UsesEventTime() bool
	// RunEngine runs the query as a weir job over the events of
	// run.Generator and returns its committed output.
	RunEngine(ctx context.Context, run EngineRun) (*EngineResult, error)
	// RunReference runs the reference over the same events and returns its
	// output and the time the reference took (result hashing excluded).
	RunReference(g *Generator, keepLines bool) (*Output, time.Duration)
}

// Queries lists the queries in order.
var Queries = []Query{
	query[Q0Result]{"q0", EngineQ0, Q0Reference, hashBid, true, false},
	query[Q1Result]{"q1", EngineQ1, Q1Reference, hashQ1, true, false},
	query[Q2Result]{"q2", EngineQ2, Q2Reference, hashQ2, true, false},
	query[Q3Result]{"q3", EngineQ3, Q3Reference, hashQ3, false, false},
	query[Q4Result]{"q4", EngineQ4, Q4Reference, hashQ4, false, true},
	query[Q5Result]{"q5", EngineQ5, Q5Reference, hashQ5, false, true},
	query[Q7Result]{"q7", EngineQ7, Q7Reference, hashQ7, false, true},
	query[Q8Result]{"q8", EngineQ8, Q8Reference, hashQ8, false, true},
}

// QueryByName returns the query called name, or nil.
func QueryByName(name string) Query {
	for _, q := range Queries {
		if q.Name() == name {
			return q
		}
	}
	return nil
}

// Output is a query's output as a multiset: the number of results, the sum
// of their 64-bit hashes (a multiset hash: equal multisets have equal sums),
// and, when kept, the sorted canonical lines for an exact comparison.
type Output struct {
	Count int64
	Sum   uint64
	Lines []string // nil unless kept
}

// Equal reports whether o and p are the same multiset: same count and hash,
// and the same lines if both kept them.
func (o *Output) Equal(p *Output) bool {
	if o.Count != p.Count || o.Sum != p.Sum {
		return false
	}
	if o.Lines != nil && p.Lines != nil {
		return slices.Equal(o.Lines, p.Lines)
	}
	return true
}

// Diff describes how got differs from want, with at most max example lines
// when both kept lines.
func Diff(got, want *Output, max int) string {
	s := fmt.Sprintf("engine %d results (hash %016x), reference %d (hash %016x)", got.Count, got.Sum, want.Count, want.Sum)
	if got.Lines == nil || want.Lines == nil {
		return s
	}
	var extra, missing []string
	i, j := 0, 0
	for i < len(got.Lines) || j < len(want.Lines) {
		switch {
		case j == len(want.Lines) || i < len(got.Lines) && got.Lines[i] < want.Lines[j]:
			extra = append(extra, got.Lines[i])
			i++
		case i == len(got.Lines) || got.Lines[i] > want.Lines[j]:
			missing = append(missing, want.Lines[j])
			j++
		default:
			i++
			j++
		}
	}
	s += fmt.Sprintf("; %d unexpected, %d missing", len(extra), len(missing))
	for _, l := range extra[:min(len(extra), max)] {
		s += "\n  + " + l
	}
	for _, l := range missing[:min(len(missing), max)] {
		s += "\n  - " + l
	}
	return s
}

// EngineRun configures one engine run of a query.
type EngineRun struct {
	// Generator produces the events (it must be bounded).
	Generator *Generator
	// Config is the job configuration; CheckpointDir must be empty of
	// checkpoints, or the job resumes from them.
	Config runtime.Config
	// RatePerSecond limits the source (0: as fast as possible).
	RatePerSecond float64
	// KeepLines keeps the canonical lines of the results for an exact
	// comparison; otherwise only their count and hash are kept.
	KeepLines bool
	// Clock, if set, is used for latency; a new one is made otherwise.
	Clock *EmitClock
	// Emitted, if set, counts the events the source emitted.
	Emitted *atomic.Int64
	// Watermarks gives the source event time and watermarks also for the
	// queries that do not use them (q0–q3), at a cost per event.
	Watermarks bool

	// crashAfter, for tests, cancels the job once that many checkpoints
	// completed and the source emitted half the events (a crash without a
	// final checkpoint), and runs it again from its checkpoint directory.
	crashAfter int
}

// EngineResult is what an engine run measured.
type EngineResult struct {
	Output  *Output
	Elapsed time.Duration // from start to the end of the job
	// Latencies are samples of the time from the source's emission of an
	// event to the sink's receipt of a result traced to it (see Traced and
	// EmitClock).
	Latencies []time.Duration
	// Checkpoints are the durations of the completed checkpoints (trigger
	// to durable manifest), the final one included.
	Checkpoints []time.Duration

	crashed bool // for tests: the simulated crash happened
}

type query[R fmt.Stringer] struct {
	name      string
	engine    func(runtime.Stream[Record]) runtime.Stream[Traced[R]]
	reference func(iter.Seq[Event]) []R
	hash      func(R) uint64
	// stateless references depend on one event per result, so they may run
	// over segments of the input (bounding their memory) with the same
	// output multiset.
	stateless bool
	// eventTime queries need the source's watermarks; the others (q0–q3)
	// run without unless EngineRun.Watermarks asks for them.
	eventTime bool
}

func (q query[R]) Name() string { return q.name }

func (q query[R]) UsesEventTime() bool { return q.eventTime }

var errCrash = errors.New("nexmark: simulated crash")

// referenceSegment is the number of events per call of a stateless
// reference (a variable for tests).
var referenceSegment int64 = 1 << 20

func (q query[R]) RunReference(g *Generator, keepLines bool) (*Output, time.Duration) {
	out := &Output{}
	var vals []R
	var elapsed time.Duration
	step := g.NumEvents()
	if q.stateless {
		step = referenceSegment
	}
	for from := int64(0); from < g.NumEvents(); from += step {
		start := time.Now()
		rs := q.reference(g.Events(from, from+step))
		elapsed += time.Since(start)
		for _, r := range rs {
			out.Count++
			out.Sum += q.hash(r)
		}
		if keepLines {
			vals = append(vals, rs...)
		}
	}
	if keepLines {
		out.Lines = SortedLines(vals)
		if out.Lines == nil {
			out.Lines = []string{}
		}
	}
	return out, elapsed
}

func (q query[R]) RunEngine(ctx context.Context, run EngineRun) (*EngineResult, error) {
	if run.Generator == nil || run.Generator.NumEvents() == 1<<63-1 {
		return nil, errors.New("nexmark: RunEngine needs a bounded generator")
	}
	clock := run.Clock
	if clock == nil {
		clock = NewEmitClock()
	}
	store := &resultStore[R]{hash: q.hash, keep: run.KeepLines, clock: clock, pre: map[preKey]*resultBatch[R]{}}
	res := &EngineResult{}
	var mu sync.Mutex
	emitted := run.Emitted
	if emitted == nil {
		emitted = new(atomic.Int64)
	}
	start := time.Now()
	for attempt := 0; ; attempt++ {
		p := runtime.NewPipeline("nexmark-" + q.name)
		var opts []runtime.SourceOption[Record]
		if q.eventTime || run.Watermarks {
			opts = append(opts, Watermarks(run.Generator))
		}
		events := runtime.From(p, "events", Source(SourceConfig{
			Generator: run.Generator, RatePerSecond: run.RatePerSecond, Clock: clock, Emitted: emitted,
		}), opts...)
		runtime.To(q.engine(events), "results", store.newSink)

		jobCtx, crash := context.WithCancelCause(ctx)
		crashing := attempt == 0 && run.crashAfter > 0
		cfg := run.Config
		prev := cfg.Events.CheckpointCompleted
		completed := 0
		cfg.Events.CheckpointCompleted = func(info runtime.CheckpointInfo) {
			mu.Lock()
			res.Checkpoints = append(res.Checkpoints, info.Duration)
			completed++
			mu.Unlock()
			if prev != nil {
				prev(info)
			}
		}
		if crashing {
			go func() {
				for jobCtx.Err() == nil {
					mu.Lock()
					due := completed >= run.crashAfter && emitted.Load() >= run.Generator.NumEvents()/2
					mu.Unlock()
					if due {
						crash(errCrash)
						return
					}
					time.Sleep(time.Millisecond)
				}
			}()
		}
		err := runtime.Run(jobCtx, p, cfg)
		crash(nil)
		if crashing && (errors.Is(err, errCrash) || errors.Is(err, context.Canceled)) {
			res.crashed = true
			continue // restart from the checkpoint directory
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", q.name, err)
		}
		break
	}
	res.Elapsed = time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	store.mu.Lock()
	defer store.mu.Unlock()
	res.Output = &Output{Count: store.done.n, Sum: store.done.sum}
	if run.KeepLines {
		res.Output.Lines = SortedLines(store.done.vals)
		if res.Output.Lines == nil {
			res.Output.Lines = []string{}
		}
	}
	res.Latencies = store.latencies
	return res, nil
}

// resultStore is the in-memory, two-phase output of a query's results
// sinks: results become part of done only when the checkpoint they were
// pre-committed in completes, as with an exactly-once file sink.
type resultStore[R any] struct {
	hash  func(R) uint64
	keep  bool
	clock *EmitClock

	mu        sync.Mutex
	done      resultBatch[R]
	pre       map[preKey]*resultBatch[R]
	latencies []time.Duration
}

type preKey struct {
	subtask    int
	checkpoint uint64
}

type resultBatch[R any] struct {
	n    int64
	sum  uint64
	vals []R
}

func (b *resultBatch[R]) add(o *resultBatch[R]) {
	b.n += o.n
	b.sum += o.sum
	b.vals = append(b.vals, o.vals...)
}

// commit makes the subtask's pre-commits up to checkpoint id part of the
// output and, after a restore (discardLater), drops those after it.
func (s *resultStore[R]) commit(subtask int, id uint64, discardLater bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, b := range s.pre {
		if k.subtask != subtask {
			continue
		}
		if k.checkpoint <= id {
			s.done.add(b)
			delete(s.pre, k)
		} else if discardLater {
			delete(s.pre, k)
		}
	}
}

func (s *resultStore[R]) newSink() runtime.Sink[Traced[R]] {
	return &resultSink[R]{store: s, hash: s.hash, keep: s.keep, clock: s.clock, lastBlock: -1}
}

// resultSink is a two-phase sink into a resultStore. It samples latency once
// per block of origins (see EmitClock).
type resultSink[R any] struct {
	store     *resultStore[R]
	hash      func(R) uint64
	keep      bool
	clock     *EmitClock
	subtask   int
	cur       resultBatch[R]
	lastBlock int64
	latencies []time.Duration
}

func (s *resultSink[R]) Open(_ context.Context, info runtime.TaskInfo, restored []byte) error {
	s.subtask = info.Subtask
	s.store.mu.Lock()
	for k := range s.store.pre {
		if k.subtask == s.subtask && restored == nil {
			delete(s.store.pre, k) // a fresh start: nothing was promised
		}
	}
	s.store.mu.Unlock()
	if restored != nil {
		if len(restored) != 8 {
			return errors.New("nexmark: unreadable results sink state")
		}
		s.store.commit(s.subtask, binary.BigEndian.Uint64(restored), true)
	}
	return nil
}

func (s *resultSink[R]) Write(_ context.Context, rec Traced[R]) error {
	s.cur.n++
	s.cur.sum += s.hash(rec.Result)
	if s.keep {
		s.cur.vals = append(s.cur.vals, rec.Result)
	}
	if rec.Origin >= 0 {
		if b := Block(rec.Origin); b != s.lastBlock {
			s.lastBlock = b
			if d, ok := s.clock.Since(rec.Origin); ok {
				s.latencies = append(s.latencies, d)
			}
		}
	}
	return nil
}

func (s *resultSink[R]) PreCommit(_ context.Context, id uint64) ([]byte, error) {
	b := s.cur
	s.cur = resultBatch[R]{}
	s.store.mu.Lock()
	s.store.pre[preKey{s.subtask, id}] = &b
	s.store.mu.Unlock()
	return binary.BigEndian.AppendUint64(nil, id), nil
}

func (s *resultSink[R]) Commit(_ context.Context, id uint64) error {
	s.store.commit(s.subtask, id, false)
	return nil
}

func (s *resultSink[R]) Close() error {
	s.store.mu.Lock()
	s.store.latencies = append(s.store.latencies, s.latencies...)
	s.store.mu.Unlock()
	s.latencies = nil
	return nil
}
