package nexmark

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/operators"
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
	// output and the time the reference took, hashing and keeping its
	// results included, as the engine's time includes its sink's.
	RunReference(g *Generator, keepLines bool) (*Output, time.Duration)
}

// Queries lists the queries in order.
var Queries = []Query{
	query[Q0Result]{name: "q0", engine: EngineQ0, reference: Q0Reference, hash: hashBid, stateless: true},
	query[Q1Result]{name: "q1", engine: EngineQ1, reference: Q1Reference, hash: hashQ1, stateless: true},
	query[Q2Result]{name: "q2", engine: EngineQ2, reference: Q2Reference, hash: hashQ2, stateless: true},
	query[Q3Result]{name: "q3", engine: EngineQ3, reference: Q3Reference, hash: hashQ3},
	query[Q4Result]{name: "q4", engine: EngineQ4, reference: Q4Reference, hash: hashQ4, eventTime: true,
		firedAt: func(r Q4Result) int64 { return applyDue(r.Expires) + 1 }},
	query[Q5Result]{name: "q5", engine: EngineQ5, reference: Q5Reference, hash: hashQ5, eventTime: true,
		firedAt: func(r Q5Result) int64 { return r.WindowEnd }},
	query[Q6Result]{name: "q6", engine: EngineQ6, reference: Q6Reference, hash: hashQ6, eventTime: true,
		firedAt: func(r Q6Result) int64 { return applyDue(r.Expires) + 1 }},
	query[Q7Result]{name: "q7", engine: EngineQ7, reference: Q7Reference, hash: hashQ7, eventTime: true,
		firedAt: func(r Q7Result) int64 { return r.WindowEnd }},
	query[Q8Result]{name: "q8", engine: EngineQ8, reference: Q8Reference, hash: hashQ8, eventTime: true,
		firedAt: func(r Q8Result) int64 { return r.WindowStart + WindowSize }},
	query[Q9Result]{name: "q9", engine: EngineQ9, reference: Q9Reference, hash: hashQ9, eventTime: true,
		firedAt: func(r Q9Result) int64 { return r.Auction.Expires + 1 }},
	query[Q10Result]{name: "q10", engine: EngineQ10, reference: Q10Reference, hash: hashQ10, stateless: true,
		files: toFiles(q10Partition, func(dst []byte, r Q10Result) []byte { return r.appendLine(dst) })},
	query[Q11Result]{name: "q11", engine: EngineQ11, reference: Q11Reference, hash: hashQ11, eventTime: true,
		firedAt: func(r Q11Result) int64 { return r.End }},
	query[Q12Result]{name: "q12", engine: EngineQ12, generatorReference: Q12Reference, hash: hashQ12, processingTime: true,
		origin: func(g *Generator, r Q12Result) int64 { return g.firstAt(r.End, g.ProcessingTimeAt) }},
	query[Q13Result]{name: "q13", sideInput: EngineQ13, reference: Q13Reference, hash: hashQ13, stateless: true},
	query[Q14Result]{name: "q14", engine: EngineQ14, reference: Q14Reference, hash: hashQ14, stateless: true},
	query[Q15Result]{name: "q15", engine: EngineQ15, reference: Q15Reference, hash: hashQ15, eventTime: true,
		firedAt: func(r Q15Result) int64 { return dayEnd(r.Day) }},
	query[Q16Result]{name: "q16", engine: EngineQ16, reference: Q16Reference, hash: hashQ16, eventTime: true,
		firedAt: func(r Q16Result) int64 { return dayEnd(r.Day) }},
	query[Q17Result]{name: "q17", engine: EngineQ17, reference: Q17Reference, hash: hashQ17, eventTime: true,
		firedAt: func(r Q17Result) int64 { return dayEnd(r.Day) }},
	query[Q18Result]{name: "q18", engine: EngineQ18, reference: Q18Reference, hash: hashBid, upsertKey: q18Key},
	query[Q19Result]{name: "q19", engine: EngineQ19, reference: Q19Reference, hash: hashQ19, upsertKey: q19Key, upsertGrouped: true},
	query[Q20Result]{name: "q20", engine: EngineQ20, reference: Q20Reference, hash: hashQ20},
	query[Q21Result]{name: "q21", engine: EngineQ21, reference: Q21Reference, hash: hashQ21, stateless: true},
	query[Q22Result]{name: "q22", engine: EngineQ22, reference: Q22Reference, hash: hashQ22, stateless: true},
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
//
// The lines are made on first use, by Lines, Equal or Diff: formatting and
// sorting millions of lines is the comparison's cost, not the engine's or
// the reference's, and made inside RunEngine and RunReference it counted in
// both CPU times (40% of q19's profile), which pulled every CPU ratio
// towards 1.
type Output struct {
	Count int64
	Sum   uint64
	lines []string
	// makeLines, while set, makes the lines; nil when they are not kept.
	makeLines func() []string
}

// Lines returns the sorted canonical lines; nil unless they were kept.
func (o *Output) Lines() []string {
	if o.makeLines != nil {
		o.lines, o.makeLines = o.makeLines(), nil
	}
	return o.lines
}

// Equal reports whether o and p are the same multiset: same count and hash,
// and the same lines if both kept them.
func (o *Output) Equal(p *Output) bool {
	if o.Count != p.Count || o.Sum != p.Sum {
		return false
	}
	if ol, pl := o.Lines(), p.Lines(); ol != nil && pl != nil {
		return slices.Equal(ol, pl)
	}
	return true
}

// Diff describes how got differs from want, with at most max example lines
// when both kept lines.
func Diff(got, want *Output, max int) string {
	s := fmt.Sprintf("engine %d results (hash %016x), reference %d (hash %016x)", got.Count, got.Sum, want.Count, want.Sum)
	gl, wl := got.Lines(), want.Lines()
	if gl == nil || wl == nil {
		return s
	}
	var extra, missing []string
	i, j := 0, 0
	for i < len(gl) || j < len(wl) {
		switch {
		case j == len(wl) || i < len(gl) && gl[i] < wl[j]:
			extra = append(extra, gl[i])
			i++
		case i == len(gl) || gl[i] > wl[j]:
			missing = append(missing, wl[j])
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
	// kills, for tests, cancels the job (a crash without a final
	// checkpoint) once the source has emitted kills[i] events in all
	// (replays included), for each i in turn, restarting it each time
	// from its checkpoint directory.
	kills []int64
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
	kills   int  // for tests: the jobs killed
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
	// firedAt, for results that a watermark fires (Traced.Origin -1), is
	// the event time whose arrival fires the result (a window's end): the
	// latency is traced to the first event at or after it.
	firedAt func(R) int64
	// origin, if set instead, returns the event a result is traced to.
	origin func(g *Generator, r R) int64
	// processingTime queries window on the fixed processing-time clock
	// (Generator.ProcessingTimeAt), which the source's watermarks then
	// follow.
	processingTime bool
	// generatorReference, if set instead of reference, is a reference that
	// needs the generator (q12's processing-time clock).
	generatorReference func(g *Generator, events iter.Seq[Event]) []R
	// sideInput, if set instead of engine, builds a query that reads the
	// file of q13's side input, which the harness writes.
	sideInput func(events runtime.Stream[Record], sideInput string) runtime.Stream[Traced[R]]
	// upsertKey marks an updating query: its output is an upsert stream,
	// which the harness folds into a table (the last result per key, in
	// commit order) before comparing.
	upsertKey func(R) upsertKey
	// upsertGrouped says that an upsert key's first part groups a few rows
	// written together (an auction's ranks): the table indexes its rows by
	// group (see resultBatch).
	upsertGrouped bool
	// files, if set, makes the harness write the results with the
	// exactly-once file sink and read the committed files back as the
	// output.
	files *fileOutput[R]
}

// fileOutput is how a query's results are written to files: partitioned
// into the directory that partition appends to its buffer, one line each.
type fileOutput[R fmt.Stringer] struct {
	partition func([]byte, R) []byte
	// line appends a result's line (its String) to a buffer: the file
	// sink's format. Without it, the line is String's.
	line func([]byte, R) []byte
	// write sends the results to the file sinks under dir.
	write func(results runtime.Stream[Traced[R]], dir string)
}

// toFiles returns the fileOutput of partition and line. NB: the pipeline
// that writes files is built here, not in RunEngine, so that it is compiled
// only for the result types that go to files (q10's): as code of RunEngine,
// the file sink (connectors/file, partitionedSink and their runtime sink
// wrappers) was instantiated for each of the 23 result types: 13% of the
// package's machine code under -race (20.3 → 17.6 MB, 47,956 → 42,321
// functions), a fifth of its compile time.
func toFiles[R fmt.Stringer](partition, line func([]byte, R) []byte) *fileOutput[R] {
	format := func(dst []byte, r R) []byte { return append(append(dst, r.String()...), '\n') }
	if line != nil {
		format = func(dst []byte, r R) []byte { return append(line(dst, r), '\n') }
	}
	return &fileOutput[R]{partition: partition, line: line, write: func(results runtime.Stream[Traced[R]], dir string) {
		lines := operators.Map(results, func(t Traced[R]) R { return t.Result })
		runtime.To(lines, "results", partitionedFileSink(dir, partition, format))
	}}
}

func (q query[R]) Name() string { return q.name }

func (q query[R]) UsesEventTime() bool { return q.eventTime }

var errCrash = errors.New("nexmark: simulated crash")

// killAt returns a SourceConfig.beforeRead that, once the source subtasks
// have emitted at least at events in all, crashes the job and waits for
// the crash to reach the source.
func killAt(emitted *atomic.Int64, at int64, crash context.CancelCauseFunc) func(context.Context) error {
	return func(ctx context.Context) error {
		if emitted.Load() < at {
			return nil
		}
		crash(errCrash)
		<-ctx.Done()
		return context.Cause(ctx)
	}
}

// referenceSegment is the number of events per call of a stateless
// reference (a variable for tests).
var referenceSegment int64 = 1 << 20

func (q query[R]) RunReference(g *Generator, keepLines bool) (*Output, time.Duration) {
	out := &Output{}
	var vals []R
	var scratch []byte
	var elapsed time.Duration
	step := g.NumEvents()
	if q.stateless {
		step = referenceSegment
	}
	for from := int64(0); from < g.NumEvents(); from += step {
		start := time.Now()
		var rs []R
		if q.generatorReference != nil {
			rs = q.generatorReference(g, g.Events(from, from+step))
		} else {
			rs = q.reference(g.Events(from, from+step))
		}
		for _, r := range rs {
			out.Count++
			out.Sum += q.hashOf(r, &scratch)
		}
		if keepLines {
			vals = append(vals, rs...)
		}
		elapsed += time.Since(start)
	}
	if keepLines {
		out.makeLines = func() []string { return q.sortedLines(vals) }
	}
	return out, elapsed
}

// hashOf is the multiset hash of a result: of its line with its partition
// for queries written to files (which are read back as lines, hashed the
// same way); scratch is a buffer for that line.
func (q query[R]) hashOf(r R, scratch *[]byte) uint64 {
	if q.files != nil {
		*scratch = q.appendFileLine((*scratch)[:0], r)
		return hashLineBytes(*scratch)
	}
	return q.hash(r)
}

// appendFileLine appends the line of r with its partition, as
// readPartitionedFiles reads it, to dst.
func (q query[R]) appendFileLine(dst []byte, r R) []byte {
	dst = append(q.files.partition(dst, r), ' ')
	if q.files.line != nil {
		return q.files.line(dst, r)
	}
	return append(dst, r.String()...)
}

// lineOf is the canonical line of r, prefixed with its partition for
// queries written to files.
func (q query[R]) lineOf(r R) string {
	if q.files != nil {
		return string(q.appendFileLine(nil, r))
	}
	return r.String()
}

// sortedLines returns the sorted lines of the results in chunks.
func (q query[R]) sortedLines(chunks ...[]R) []string {
	n := 0
	for _, c := range chunks {
		n += len(c)
	}
	out := make([]string, 0, n)
	for _, c := range chunks {
		for _, r := range c {
			out = append(out, q.lineOf(r))
		}
	}
	slices.Sort(out)
	return out
}

func (q query[R]) RunEngine(ctx context.Context, run EngineRun) (*EngineResult, error) {
	if run.Generator == nil || run.Generator.NumEvents() == 1<<63-1 {
		return nil, errors.New("nexmark: RunEngine needs a bounded generator")
	}
	clock := run.Clock
	if clock == nil {
		clock = emitClockFor(run.Generator.NumEvents())
	}
	store := &resultStore[R]{hash: q.hash, keep: run.KeepLines, upsert: q.upsertKey, grouped: q.upsertGrouped, clock: clock, pre: map[preKey]*resultBatch[R]{}}
	g := run.Generator
	switch {
	case q.firedAt != nil:
		firedAt := q.firedAt
		store.origin = func(r R) int64 { return g.FirstEventAt(firedAt(r)) }
	case q.origin != nil:
		origin := q.origin
		store.origin = func(r R) int64 { return origin(g, r) }
	}
	engine := q.engine
	if q.sideInput != nil {
		dir, err := os.MkdirTemp("", "weir-nexmark-side-input-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "side_input.csv")
		if err := WriteQ13SideInput(path); err != nil {
			return nil, err
		}
		engine = func(events runtime.Stream[Record]) runtime.Stream[Traced[R]] { return q.sideInput(events, path) }
	}
	var outDir string
	if q.files != nil {
		dir, err := os.MkdirTemp("", "weir-nexmark-"+q.name+"-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		outDir = dir
	}
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
		switch {
		case q.processingTime:
			opts = append(opts, runtime.WithWatermarks(runtime.Monotonic(func(r Record) int64 { return r.ProcTime })))
		case q.eventTime || run.Watermarks:
			opts = append(opts, Watermarks(run.Generator))
		}
		jobCtx, crash := context.WithCancelCause(ctx)
		src := SourceConfig{Generator: run.Generator, RatePerSecond: run.RatePerSecond, Clock: clock, Emitted: emitted}
		if attempt < len(run.kills) {
			// The source itself kills the job at the kill point, before
			// its next read: a watcher could be too late, the job ended.
			src.beforeRead = killAt(emitted, run.kills[attempt], crash)
		}
		events := runtime.From(p, "events", Source(src), opts...)
		results := engine(events)
		if q.files != nil {
			q.files.write(results, outDir)
		} else {
			runtime.To(results, "results", func() (runtime.Sink[Traced[R]], error) { return store.newSink(), nil })
		}

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
		crashing := attempt < len(run.kills)
		if attempt == 0 && run.crashAfter > 0 {
			crashing = true
			// Checkpoints complete apart from the source's reads, so this
			// crash is watched for.
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
			res.kills++
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
	res.Latencies = store.latencies
	switch {
	case q.files != nil:
		out, err := readPartitionedFiles(outDir, run.KeepLines)
		if err != nil {
			return nil, fmt.Errorf("%s: read the output files: %w", q.name, err)
		}
		res.Output = out
	case q.upsertKey != nil:
		// The table's rows: one per key.
		res.Output = &Output{}
		store.eachRow(func(r R) {
			res.Output.Count++
			res.Output.Sum += q.hash(r)
		})
		if run.KeepLines {
			res.Output.makeLines = func() []string {
				var vals []R
				store.eachRow(func(r R) { vals = append(vals, r) })
				return q.sortedLines(vals)
			}
		}
	default:
		res.Output = &Output{Count: store.done.n, Sum: store.done.sum}
		if run.KeepLines {
			vals := store.done.vals
			res.Output.makeLines = func() []string { return q.sortedLines(vals...) }
		}
	}
	return res, nil
}

// resultStore is the in-memory, two-phase output of a query's results
// sinks: results become part of done only when the checkpoint they were
// pre-committed in completes, as with an exactly-once file sink.
type resultStore[R any] struct {
	hash   func(R) uint64
	keep   bool              // keep every result, for an exact comparison
	upsert func(R) upsertKey // an upsert stream: keep the last result per key
	// grouped keeps an upsert stream's rows grouped by the key's first part
	// (query.upsertGrouped).
	grouped bool
	clock   *EmitClock
	origin  func(R) int64 // of results without one; nil: none

	mu        sync.Mutex
	done      resultBatch[R]
	pre       map[preKey]*resultBatch[R]
	tables    map[int]*upsertTable[R] // a flat upsert stream's, by subtask
	latencies []time.Duration
}

// flatUpsert reports whether the store is a flat upsert stream's, kept in
// upsertTables.
func (s *resultStore[R]) flatUpsert() bool { return s.upsert != nil && !s.grouped }

// table returns the upsert table of a subtask. s.mu must be held.
func (s *resultStore[R]) table(subtask int) *upsertTable[R] {
	t := s.tables[subtask]
	if t == nil {
		t = newUpsertTable[R]()
		if s.tables == nil {
			s.tables = map[int]*upsertTable[R]{}
		}
		s.tables[subtask] = t
	}
	return t
}

// eachRow calls f with each committed row of an upsert stream's table.
func (s *resultStore[R]) eachRow(f func(R)) {
	if !s.flatUpsert() {
		s.done.eachRow(f)
		return
	}
	for _, st := range slices.Sorted(maps.Keys(s.tables)) {
		s.tables[st].eachRow(f)
	}
}

type preKey struct {
	subtask    int
	checkpoint uint64
}

// upsertKey is the key of an upsert stream's result (two ids).
type upsertKey [2]int64

// resultBatch holds results. The sink's own costs count in the engine's
// time (the reference keeps its results outside its clock), so keeping is
// cheap: results are kept in chunks that are never copied, and a grouped
// upsert stream keeps only the last result per key, overwritten in place,
// from the first write on (q19 writes about six results per final row:
// keeping them all until the commit folded them into a map of rows cost a
// fifth of its CPU time). A flat upsert stream has a table of its own per
// subtask (upsertTable).
//
// A grouped upsert stream (query.upsertGrouped) indexes its rows by group,
// the key's first part, as a table clustered on its primary key would:
// q19 writes 2.9M rows over 2M events, of 0.97M rankings of 0.12M auctions,
// and with one map entry per row (0.88M in the end) every write, and every
// row folded into the committed table at a commit, looked a row up in a map
// too large for the caches: a third of q19's CPU profile. By group, a
// ranking's rows cost one lookup (they come in a run, and the group written
// last is remembered), and a commit moves a group that the committed table
// does not hold yet (the common case: an auction's bids come within
// seconds) by its index alone, its rows staying in their chunk. The sink's
// share of q19's profile went from 31% (writes 13%, commits 18%) to 16%
// (writes 14%, commits 2%).
type resultBatch[R any] struct {
	n    int64
	sum  uint64
	vals [][]R // chunks of keepChunk results

	// groups, for a grouped upsert stream, is the index in grouped of each
	// group, and groupKeys[i] the key of grouped[i], which lists the
	// group's rows: the rest of each one's key and its place in vals
	// (chunk*keepChunk + index in the chunk).
	groups    map[int64]int32
	grouped   [][]groupSlot
	groupKeys []int64
	// lastGroup is 1 + the index of the group written last (0: none), of
	// key lastKey.
	lastGroup int32
	lastKey   int64
}

// groupSlot is a row of a group: the rest of its key, and where it is.
type groupSlot struct {
	k int64
	i int32
}

const keepChunk = 4096

func (b *resultBatch[R]) keep(r R) {
	if n := len(b.vals); n == 0 || len(b.vals[n-1]) == keepChunk {
		b.vals = append(b.vals, make([]R, 0, keepChunk))
	}
	last := &b.vals[len(b.vals)-1]
	*last = append(*last, r)
}

// at returns the result at place i of vals (chunk*keepChunk + index in
// the chunk).
func (b *resultBatch[R]) at(i int32) R { return b.vals[i/keepChunk][i%keepChunk] }

// setAt replaces the result at place i of vals.
func (b *resultBatch[R]) setAt(i int32, r R) { b.vals[i/keepChunk][i%keepChunk] = r }

// kept returns the number of results in vals.
func (b *resultBatch[R]) kept() int {
	if len(b.vals) == 0 {
		return 0
	}
	return (len(b.vals)-1)*keepChunk + len(b.vals[len(b.vals)-1])
}

// group returns the index in grouped of group g, which it adds if absent.
func (b *resultBatch[R]) group(g int64) int32 {
	if b.lastGroup > 0 && b.lastKey == g {
		return b.lastGroup - 1
	}
	if b.groups == nil {
		b.groups = map[int64]int32{}
	}
	i, ok := b.groups[g]
	if !ok {
		i = b.addGroup(g, nil)
	}
	b.lastGroup, b.lastKey = i+1, g
	return i
}

func (b *resultBatch[R]) addGroup(g int64, slots []groupSlot) int32 {
	i := int32(len(b.grouped))
	b.groups[g] = i
	b.grouped = append(b.grouped, slots)
	b.groupKeys = append(b.groupKeys, g)
	return i
}

// upsertGrouped makes r the result of key k in a grouped upsert stream.
func (b *resultBatch[R]) upsertGrouped(k upsertKey, r R) {
	b.setRow(b.group(k[0]), k[1], r)
}

// setRow makes r the row of key k in group i.
func (b *resultBatch[R]) setRow(i int32, k int64, r R) {
	slots := b.grouped[i]
	for _, s := range slots {
		if s.k == k {
			b.setAt(s.i, r)
			return
		}
	}
	b.keep(r)
	at := int32((len(b.vals)-1)*keepChunk + len(b.vals[len(b.vals)-1]) - 1)
	if slots == nil {
		slots = make([]groupSlot, 0, 4)
	}
	b.grouped[i] = append(slots, groupSlot{k, at})
}

// eachRow calls f with each row of an upsert stream's table.
func (b *resultBatch[R]) eachRow(f func(R)) {
	if b.groups == nil {
		for _, c := range b.vals {
			for _, r := range c {
				f(r)
			}
		}
		return
	}
	for _, slots := range b.grouped {
		for _, s := range slots {
			f(b.at(s.i))
		}
	}
}

// add appends o, which comes later in the stream, to b; a grouped upsert
// stream keeps only the last result per key. o is not used after: its
// chunks may become b's.
func (b *resultBatch[R]) add(o *resultBatch[R]) {
	b.n += o.n
	b.sum += o.sum
	if o.groups != nil {
		b.addGrouped(o)
		return
	}
	b.vals = append(b.vals, o.vals...)
}

// addGrouped folds the grouped upsert stream o into b. o's chunks become
// b's, after b's own: a group that b does not hold yet moves with its
// slots rebased; one that it holds has its rows set one by one. Chunks
// that are not full may then sit before others: a slot says where its row
// is, so rows need not be counted.
func (b *resultBatch[R]) addGrouped(o *resultBatch[R]) {
	if b.groups == nil {
		b.groups = make(map[int64]int32, len(o.groups))
	}
	base := int32(len(b.vals)) * keepChunk
	b.vals = append(b.vals, o.vals...)
	for i, slots := range o.grouped {
		g := o.groupKeys[i]
		j, ok := b.groups[g]
		if !ok {
			for s := range slots {
				slots[s].i += base
			}
			b.addGroup(g, slots)
			continue
		}
		for _, s := range slots {
			b.setRow(j, s.k, o.at(s.i))
		}
	}
	b.lastGroup = 0
}

// commit makes the subtask's pre-commits up to checkpoint id part of the
// output and, after a restore (discardLater), drops those after it.
func (s *resultStore[R]) commit(subtask int, id uint64, discardLater bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.flatUpsert() {
		t := s.table(subtask)
		t.commit(id)
		if discardLater {
			t.discard()
		}
		return
	}
	// In checkpoint order: an upsert stream's order matters.
	keys := slices.SortedFunc(maps.Keys(s.pre), func(a, b preKey) int { return cmp.Compare(a.checkpoint, b.checkpoint) })
	for _, k := range keys {
		if k.subtask != subtask {
			continue
		}
		if k.checkpoint <= id {
			s.done.add(s.pre[k])
			delete(s.pre, k)
		} else if discardLater {
			delete(s.pre, k)
		}
	}
}

func (s *resultStore[R]) newSink() runtime.Sink[Traced[R]] {
	return &resultSink[R]{store: s, hash: s.hash, keep: s.keep, upsert: s.upsert, grouped: s.grouped, clock: s.clock, origin: s.origin, lastBlock: -1}
}

// resultSink is a two-phase sink into a resultStore. It samples latency once
// per block of origins (see EmitClock).
type resultSink[R any] struct {
	store     *resultStore[R]
	hash      func(R) uint64
	keep      bool
	upsert    func(R) upsertKey // nil unless an upsert stream
	grouped   bool              // a grouped upsert stream
	table     *upsertTable[R]   // a flat upsert stream's, of this subtask
	clock     *EmitClock
	origin    func(R) int64
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
	if s.store.flatUpsert() {
		s.table = s.store.table(s.subtask)
		if restored == nil {
			s.table.discard()
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
	switch {
	case s.grouped: // counted and hashed once folded into its table
		s.cur.upsertGrouped(s.upsert(rec.Result), rec.Result)
	case s.table != nil:
		s.table.set(s.upsert(rec.Result), rec.Result)
	case s.keep:
		s.cur.keep(rec.Result)
		fallthrough
	default:
		s.cur.n++
		s.cur.sum += s.hash(rec.Result)
	}
	origin := rec.Origin
	if origin < 0 && s.origin != nil {
		origin = s.origin(rec.Result)
	}
	if origin >= 0 {
		if b := Block(origin); b != s.lastBlock {
			s.lastBlock = b
			if d, ok := s.clock.Since(origin); ok {
				s.latencies = append(s.latencies, d)
			}
		}
	}
	return nil
}

func (s *resultSink[R]) PreCommit(_ context.Context, id uint64) ([]byte, error) {
	state := binary.BigEndian.AppendUint64(nil, id)
	if s.table != nil {
		s.store.mu.Lock()
		s.table.preCommit(id)
		s.store.mu.Unlock()
		return state, nil
	}
	b := s.cur
	s.cur = resultBatch[R]{}
	if b.groups != nil {
		s.cur.groups = make(map[int64]int32, len(b.groups))
	}
	s.store.mu.Lock()
	s.store.pre[preKey{s.subtask, id}] = &b
	s.store.mu.Unlock()
	return state, nil
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
