package engine

import "context"

// Records cross goroutines in batches over channels with credit-based flow
// control, as in Flink: every connection between a sending and a receiving
// subtask owns a fixed number of batch buffers (its credits). The sender
// fills a free buffer and passes it to the receiver's gate; the receiver
// hands it back once processed. A sender without a free buffer waits, which
// is how backpressure travels upstream, and no queue is unbounded. Control
// events (barriers, end of data) travel in order with the data.

type envelopeKind uint8

const (
	dataEnvelope envelopeKind = iota
	barrierEnvelope
	endEnvelope       // end of data: the sender will send no more records
	watermarkEnvelope // the sender's watermark advanced
	idleEnvelope      // the sender is idle: ignore it for watermarks until its next one
)

type envelope struct {
	channel    int // index of the connection at the receiving gate
	kind       envelopeKind
	batch      any // *batch[T] for data
	checkpoint uint64
	final      bool  // barrier of the job's final checkpoint
	watermark  int64 // for watermark envelopes
}

// connection is the link from one sending subtask to one receiving subtask.
type connection struct {
	gate  *gate
	index int
	free  chan any // credits: empty batch buffers
}

// gate is the input of a task: every connection into it delivers to ch.
type gate struct {
	ch    chan envelope
	conns []*connection
	// per connection: the stream type and the edge input it belongs to
	types []StreamType
	edges []*Edge
}

func newGate() *gate { return &gate{} }

func (g *gate) connect(e *Edge, credits, batchSize int) *connection {
	c := &connection{gate: g, index: len(g.conns), free: make(chan any, credits)}
	for range credits {
		c.free <- e.From.Out.newBatch(batchSize)
	}
	g.conns = append(g.conns, c)
	g.types = append(g.types, e.From.Out)
	g.edges = append(g.edges, e)
	return c
}

// seal sizes the gate's channel once all connections are known: every data
// envelope holds a credit, so data never blocks on it; the slack leaves room
// for control events.
func (g *gate) seal(credits int) {
	g.ch = make(chan envelope, len(g.conns)*(credits+4))
}

// batch is the payload of a data envelope: records with, alongside, their
// event timestamps (NoTimestamp for none). A record's timestamp travels with
// it as Flink's StreamRecord carries it: a task keeps the timestamp of the
// record being processed in one variable (Env.Timestamp), which a gate sets
// per record it delivers and a writer reads per record it sends, so chained
// operators pass it by doing nothing.
type batch[T any] struct {
	recs []T
	ts   []int64
}

// StreamType holds the operations that depend on the record type of a
// stream, so that tasks can move batches without knowing it. TypeOf makes
// one.
type StreamType interface {
	newBatch(capacity int) any
	// deliver feeds every record of batch (a *[]T) to in (a Collector[T])
	// and empties the batch.
	deliver(batch any, in any, ts *int64)
	fanout(outs []any) any
	discard() any // a Collector[T] that drops records
	newWriter(ctx context.Context, conns []*connection, route any, batchSize int, ts *int64) outputWriter
}

// TypeOf returns the StreamType of records of type T.
func TypeOf[T any]() StreamType { return typeOps[T]{} }

type typeOps[T any] struct{}

// newBatch leaves ts to grow on first use: most streams carry no event time,
// and a batch keeps what it grew to, since it is reused.
func (typeOps[T]) newBatch(capacity int) any {
	return &batch[T]{recs: make([]T, 0, capacity)}
}

func (typeOps[T]) deliver(b any, in any, ts *int64) {
	bt := b.(*batch[T])
	c := in.(Collector[T])
	if len(bt.ts) == 0 { // the sender has no event time
		*ts = NoTimestamp
		for _, rec := range bt.recs {
			c.Collect(rec)
		}
	} else {
		for i, rec := range bt.recs {
			*ts = bt.ts[i]
			c.Collect(rec)
		}
	}
	clear(bt.recs) // drop references so that batches do not pin records
	bt.recs, bt.ts = bt.recs[:0], bt.ts[:0]
}

func (typeOps[T]) fanout(outs []any) any {
	if len(outs) == 1 {
		return outs[0]
	}
	f := make(fanout[T], len(outs))
	for i, o := range outs {
		f[i] = o.(Collector[T])
	}
	return f
}

func (typeOps[T]) newWriter(ctx context.Context, conns []*connection, route any, batchSize int, ts *int64) outputWriter {
	w := &writer[T]{ctx: ctx, conns: conns, bufs: make([]*batch[T], len(conns)), batch: batchSize, ts: ts}
	if route != nil {
		w.route = route.(func(T) int)
	}
	return w
}

func (typeOps[T]) discard() any { return Collector[T](discard[T]{}) }

// discard drops records, for an output no one reads.
type discard[T any] struct{}

func (discard[T]) Collect(T) {}

type fanout[T any] []Collector[T]

func (f fanout[T]) Collect(rec T) {
	for _, c := range f {
		c.Collect(rec)
	}
}

// outputWriter is the sending side of one edge in one task.
type outputWriter interface {
	collector() any
	// control flushes pending records, then sends env on every connection.
	control(env envelope)
}

// writer batches records of type T to the connections of an edge.
type writer[T any] struct {
	ctx   context.Context
	conns []*connection
	bufs  []*batch[T]
	ts    *int64      // the timestamp of the record being processed (Env.Timestamp); nil: none carried
	route func(T) int // target connection; nil means round robin by batch
	next  int
	batch int
	sent  uint64        // records sent, for metrics (task goroutine only)
	bp    *backpressure // the task's backpressure time; nil: not measured
}

func (w *writer[T]) collector() any { return Collector[T](w) }

func (w *writer[T]) Collect(rec T) {
	i := w.next
	if w.route != nil {
		i = w.route(rec)
	}
	b := w.bufs[i]
	if b == nil {
		b = w.acquire(i)
	}
	b.recs = append(b.recs, rec)
	if w.ts != nil {
		b.ts = append(b.ts, *w.ts)
	}
	if len(b.recs) >= w.batch {
		w.send(i)
		if w.route == nil && len(w.conns) > 1 {
			w.next = (w.next + 1) % len(w.conns)
		}
	}
}

// acquire takes a free buffer of connection i, waiting for the receiver to
// return one if necessary (backpressure).
func (w *writer[T]) acquire(i int) *batch[T] {
	select {
	case b := <-w.conns[i].free:
		w.bufs[i] = b.(*batch[T])
		return w.bufs[i]
	default:
	}
	if w.bp != nil { // the receiver is behind: time the wait
		defer w.bp.end(w.bp.begin())
	}
	select {
	case b := <-w.conns[i].free:
		w.bufs[i] = b.(*batch[T])
	case <-w.ctx.Done():
		// The job is failing: collect into a throwaway buffer until the
		// task notices.
		w.bufs[i] = typeOps[T]{}.newBatch(w.batch).(*batch[T])
	}
	return w.bufs[i]
}

func (w *writer[T]) send(i int) {
	b := w.bufs[i]
	w.bufs[i] = nil
	w.sent += uint64(len(b.recs))
	w.put(i, envelope{kind: dataEnvelope, batch: b})
}

func (w *writer[T]) put(i int, env envelope) {
	c := w.conns[i]
	env.channel = c.index
	select {
	case c.gate.ch <- env:
	case <-w.ctx.Done():
	}
}

func (w *writer[T]) control(env envelope) {
	for i, b := range w.bufs {
		if b != nil && len(b.recs) > 0 {
			w.send(i)
		}
	}
	for i := range w.conns {
		w.put(i, env)
	}
}
