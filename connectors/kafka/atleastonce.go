package kafka

import (
	"context"
	"fmt"
	"github.com/weirstream/weir/runtime"
	"sync"

	"github.com/weirstream/weir/internal/kafkatxn"
)

// batchBytes is the size at which a partition's buffer is sent even if it
// holds fewer than BatchSize records: the producer's default request size.
const batchBytes = kafkatxn.DefaultMaxBatchBytes

// atLeastOnce writes with an idempotent producer and acks=all,
// asynchronously. A partition's buffer is sent, when it holds BatchSize
// records or batchBytes, by a goroutine that first waits for the partition's
// previous batch: each partition has one produce request in flight and
// keeps its order, while partitions and the writer proceed in parallel.
// Write blocks while the records written and not yet acknowledged reach
// MaxInFlightBytes; PreCommit sends every buffer and waits for every
// acknowledgement (or fails the checkpoint with the first failed produce).
type atLeastOnce struct {
	topic string
	prod  *kafkatxn.IdempotentProducer
	batch int
	bufs  []partitionBuf
	// buffered is the size of the records in bufs.
	buffered int
	// tails are, by partition, closed when the last batch sent is done.
	tails    []chan struct{}
	inFlight *inFlight
	free     sync.Pool // of *[]kafkatxn.Record, emptied buffers of sent batches

	ctx    context.Context // of the sending goroutines; canceled by close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// partitionBuf holds the records of a partition not yet sent.
type partitionBuf struct {
	recs  []kafkatxn.Record
	bytes int
}

func newAtLeastOnce(topic string, prod *kafkatxn.IdempotentProducer, partitions, batch, maxInFlight int) *atLeastOnce {
	ctx, cancel := context.WithCancel(context.Background())
	return &atLeastOnce{
		topic:    topic,
		prod:     prod,
		batch:    batch,
		bufs:     make([]partitionBuf, partitions),
		tails:    make([]chan struct{}, partitions),
		inFlight: newInFlight(maxInFlight),
		ctx:      ctx,
		cancel:   cancel,
	}
}

func (a *atLeastOnce) write(ctx context.Context, partition int, m Message) error {
	rec := kafkatxn.Record{Key: m.Key, Value: m.Value, Headers: m.Headers, Time: m.Time}
	size := rec.Size()
	if err := a.reserve(ctx, size); err != nil {
		return err
	}
	buf := &a.bufs[partition]
	if buf.recs == nil {
		buf.recs = a.newRecs()
	}
	buf.recs = append(buf.recs, rec)
	buf.bytes += size
	a.buffered += size
	if len(buf.recs) >= a.batch || buf.bytes >= batchBytes {
		a.send(partition)
	}
	return nil
}

// reserve counts size bytes in flight, waiting while the bound is reached.
func (a *atLeastOnce) reserve(ctx context.Context, size int) error {
	for {
		ok, err := a.inFlight.acquire(size)
		if err != nil {
			return fmt.Errorf("kafka sink: %w", err)
		}
		if ok {
			return nil
		}
		// NB: buffered records count too, so they must go out when
		// nothing else in flight can make room, or when they hold much
		// of the bound. Not at every wait: that would split the stream
		// into ever smaller batches, a produce request each.
		if total, _ := a.inFlight.state(); total == a.buffered || a.buffered >= a.inFlight.limit/2 {
			a.sendAll()
		}
		select {
		case <-a.inFlight.changed:
		case <-ctx.Done():
			n, _ := a.inFlight.state()
			return fmt.Errorf("kafka sink: waiting for %d unacknowledged bytes to %q: %w", n, a.topic, ctx.Err())
		}
	}
}

// send hands the buffer of partition to a goroutine that produces it after
// the partition's previous batch.
func (a *atLeastOnce) send(partition int) {
	buf := a.bufs[partition]
	if len(buf.recs) == 0 {
		return
	}
	a.bufs[partition] = partitionBuf{}
	a.buffered -= buf.bytes
	prev, done := a.tails[partition], make(chan struct{})
	a.tails[partition] = done
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(done)
		if prev != nil {
			<-prev
		}
		// NB: after a failure the batch is not sent: the sink is
		// broken, and the restore writes it again.
		_, err := a.inFlight.state()
		if err == nil {
			err = a.prod.Produce(a.ctx, a.topic, partition, buf.recs)
		}
		a.inFlight.release(buf.bytes, err)
		clear(buf.recs) // drop the references to keys and values
		recs := buf.recs[:0]
		a.free.Put(&recs)
	}()
}

// newRecs returns an empty buffer, if possible one a sent batch left.
func (a *atLeastOnce) newRecs() []kafkatxn.Record {
	if recs, ok := a.free.Get().(*[]kafkatxn.Record); ok {
		return *recs
	}
	// NB: not BatchSize: a topic with many partitions would pay for
	// BatchSize records in each before any was written.
	return make([]kafkatxn.Record, 0, min(a.batch, 64))
}

func (a *atLeastOnce) sendAll() {
	for p := range a.bufs {
		a.send(p)
	}
}

func (a *atLeastOnce) preCommit(ctx context.Context, checkpointID uint64) ([]pendingTxn, error) {
	a.sendAll()
	for {
		n, err := a.inFlight.state()
		if err != nil {
			return nil, fmt.Errorf("kafka sink: pre-commit checkpoint %d: %w", checkpointID, err)
		}
		if n == 0 {
			return nil, nil
		}
		select {
		case <-a.inFlight.changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("kafka sink: pre-commit checkpoint %d: %d bytes to %q not acknowledged: %w",
				checkpointID, n, a.topic, ctx.Err())
		}
	}
}

func (a *atLeastOnce) commit(context.Context, uint64, []runtime.Committable[pendingTxn]) error {
	return nil
}

// close abandons what is not acknowledged: a restore writes it again.
func (a *atLeastOnce) close() {
	a.cancel()
	a.wg.Wait()
	_ = a.prod.Close()
}

// inFlight counts the bytes of the records written and not yet acknowledged
// (buffered or sent) against a bound, and keeps the first failed produce.
type inFlight struct {
	limit int
	// changed receives a signal after every release, for the one goroutine
	// (the sink's) that waits.
	changed chan struct{}

	mu    sync.Mutex
	bytes int
	err   error
}

func newInFlight(limit int) *inFlight {
	return &inFlight{limit: limit, changed: make(chan struct{}, 1)}
}

// acquire adds n bytes if they fit under the bound, or if nothing is in
// flight (a record larger than the bound goes alone). It returns the first
// failure instead, if any.
func (f *inFlight) acquire(n int) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return false, f.err
	}
	if f.bytes > 0 && f.bytes+n > f.limit {
		return false, nil
	}
	f.bytes += n
	return true, nil
}

// release subtracts the n bytes of a completed batch, and records err if it
// is the first failure.
func (f *inFlight) release(n int, err error) {
	f.mu.Lock()
	f.bytes -= n
	if err != nil && f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// state returns the bytes in flight and the first failure.
func (f *inFlight) state() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bytes, f.err
}
