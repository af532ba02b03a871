package runtime

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
	batch      any // *[]T for data
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
	types []streamType
	edges []*edge
}

func newGate() *gate { return &gate{} }

func (g *gate) connect(e *edge, credits, batchSize int) *connection {
	c := &connection{gate: g, index: len(g.conns), free: make(chan any, credits)}
	for range credits {
		c.free <- e.from.out.newBatch(batchSize)
	}
	g.conns = append(g.conns, c)
	g.types = append(g.types, e.from.out)
	g.edges = append(g.edges, e)
	return c
}

// seal sizes the gate's channel once all connections are known: every data
// envelope holds a credit, so data never blocks on it; the slack leaves room
// for control events.
func (g *gate) seal(credits int) {
	g.ch = make(chan envelope, len(g.conns)*(credits+4))
}

// streamType holds the operations that depend on the record type of a
// stream, so that tasks can move batches without knowing it.
type streamType interface {
	newBatch(capacity int) any
	// deliver feeds every record of batch (a *[]T) to in (a Collector[T])
	// and empties the batch.
	deliver(batch any, in any)
	fanout(outs []any) any
	discard() any // a Collector[T] that drops records
	newWriter(ctx context.Context, conns []*connection, route any, batchSize int) outputWriter
}

func typeOf[T any]() streamType { return typeOps[T]{} }

type typeOps[T any] struct{}

func (typeOps[T]) newBatch(capacity int) any {
	b := make([]T, 0, capacity)
	return &b
}

func (typeOps[T]) deliver(batch any, in any) {
	b := batch.(*[]T)
	c := in.(Collector[T])
	for _, rec := range *b {
		c.Collect(rec)
	}
	clear(*b) // drop references so that batches do not pin records
	*b = (*b)[:0]
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

func (typeOps[T]) newWriter(ctx context.Context, conns []*connection, route any, batchSize int) outputWriter {
	w := &writer[T]{ctx: ctx, conns: conns, bufs: make([]*[]T, len(conns)), batch: batchSize}
	if route != nil {
		w.route = route.(func(T) int)
	}
	return w
}

func (typeOps[T]) discard() any { return CollectorFunc[T](func(T) {}) }

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
	bufs  []*[]T
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
	*b = append(*b, rec)
	if len(*b) >= w.batch {
		w.send(i)
		if w.route == nil && len(w.conns) > 1 {
			w.next = (w.next + 1) % len(w.conns)
		}
	}
}

// acquire takes a free buffer of connection i, waiting for the receiver to
// return one if necessary (backpressure).
func (w *writer[T]) acquire(i int) *[]T {
	select {
	case b := <-w.conns[i].free:
		w.bufs[i] = b.(*[]T)
		return w.bufs[i]
	default:
	}
	if w.bp != nil { // the receiver is behind: time the wait
		defer w.bp.end(w.bp.begin())
	}
	select {
	case b := <-w.conns[i].free:
		w.bufs[i] = b.(*[]T)
	case <-w.ctx.Done():
		// The job is failing: collect into a throwaway buffer until the
		// task notices.
		b := make([]T, 0, w.batch)
		w.bufs[i] = &b
	}
	return w.bufs[i]
}

func (w *writer[T]) send(i int) {
	b := w.bufs[i]
	w.bufs[i] = nil
	w.sent += uint64(len(*b))
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
		if b != nil && len(*b) > 0 {
			w.send(i)
		}
	}
	for i := range w.conns {
		w.put(i, env)
	}
}
