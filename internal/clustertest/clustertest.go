// Package clustertest is an in-memory runtime.Cluster for tests: the tasks
// of a job spread over processes run in one process, and their exchanges
// behave as a transactional broker's (Kafka's repartition topics). What a
// task's exchange sink writes for a checkpoint is staged, and becomes
// visible to the reading task only when the writer commits that
// checkpoint; a writer restored from checkpoint n commits what it staged
// up to n and drops the rest (a new producer aborting its predecessor's
// transactions). A reader keeps its position in its own checkpoint. The
// membership is trivial: every task goes to the one member.
//
// Watermark markers (runtime.ExchangeRecord.Marker) go as records do: staged,
// then visible at the writer's commit, in order with its records.
//
// An exchange ends for a reader once every writer's end of input
// (Sink EndOfInput) has been committed and the reader has read all, so a
// bounded job spread over tasks ends as a job in one process does.
//
// Output is an exactly-once sink in memory with the same staging, to
// compare what tasks commit with what a job in one process commits.
package clustertest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/weirstream/weir/runtime"
)

// ErrState is wrapped when a sink or source is restored from a state it
// cannot read.
var ErrState = errors.New("clustertest: unreadable state")

// Cluster is an in-memory runtime.Cluster of one member that runs every
// task.
type Cluster struct {
	tasks int
	// PreCommitted, if set, runs in every exchange sink's PreCommit after
	// it staged the records of checkpoint (records of them), before it
	// returns; an error fails the PreCommit, and with it the checkpoint.
	// Tests kill a task there, between a pre-commit and its checkpoint.
	PreCommitted func(exchange string, task int, checkpoint uint64, records int) error

	mu        sync.Mutex
	exchanges map[string]*exchange
}

// New returns a cluster of a job of tasks tasks.
func New(tasks int) *Cluster {
	return &Cluster{tasks: tasks, exchanges: map[string]*exchange{}}
}

// Join assigns every task to the caller, from a goroutine of its own as
// a group's rebalance would.
func (c *Cluster) Join(ctx context.Context, req runtime.JoinRequest) (runtime.Membership, error) {
	m := &member{c: c, req: req, assigned: make(chan struct{})}
	go func() {
		defer close(m.assigned)
		if req.Assigned != nil {
			req.Assigned(ctx, m.all())
		}
	}()
	return m, nil
}

// Exchange returns the ends of the exchange called name, the same one for
// every call with that name.
func (c *Cluster) Exchange(_ context.Context, name string, tasks int) (runtime.SinkFactory[runtime.ExchangeRecord], runtime.SourceFactory[runtime.ExchangeRecord], error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	x := c.exchanges[name]
	if x == nil {
		x = &exchange{c: c, name: name, tasks: tasks, logs: make([][]runtime.ExchangeRecord, tasks),
			ended: make([]bool, tasks), changed: make(chan struct{})}
		c.exchanges[name] = x
	}
	if x.tasks != tasks {
		return nil, nil, fmt.Errorf("clustertest: exchange %q has %d tasks, asked for %d", name, x.tasks, tasks)
	}
	sink := func() (runtime.Sink[runtime.ExchangeRecord], error) { return &exchangeSink{x: x}, nil }
	source := func() (runtime.Source[runtime.ExchangeRecord], error) { return &exchangeSource{x: x}, nil }
	return sink, source, nil
}

type member struct {
	c        *Cluster
	req      runtime.JoinRequest
	assigned chan struct{}
}

func (m *member) all() []int {
	tasks := make([]int, m.c.tasks)
	for i := range tasks {
		tasks[i] = i
	}
	return tasks
}

func (m *member) Tasks() int       { return m.c.tasks }
func (m *member) MemberID() string { return "clustertest" }

// Leave revokes every task, once the assignment has returned.
func (m *member) Leave(ctx context.Context) error {
	<-m.assigned
	if m.req.Revoked != nil {
		m.req.Revoked(ctx, m.all())
	}
	return nil
}

// staging keeps what writers pre-committed, per writer and checkpoint,
// until they commit it or a restore drops it.
type staging[B any] map[int]map[uint64]B

func (s staging[B]) stage(writer int, checkpoint uint64, b B) {
	if s[writer] == nil {
		s[writer] = map[uint64]B{}
	}
	s[writer][checkpoint] = b
}

// commit publishes, in checkpoint order, what writer staged up to
// checkpoint. It is idempotent: published batches are forgotten.
func (s staging[B]) commit(writer int, checkpoint uint64, publish func(B)) {
	ids := make([]uint64, 0, len(s[writer]))
	for id := range s[writer] {
		if id <= checkpoint {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		publish(s[writer][id])
		delete(s[writer], id)
	}
}

// recover commits what a writer restored from checkpoint promised and
// drops what it staged after (restored 0: a fresh start, all of it).
func (s staging[B]) recover(writer int, restored uint64, publish func(B)) {
	s.commit(writer, restored, publish)
	delete(s, writer)
}

// encodeID and decodeID are the state of the sinks and sources here.
func encodeID(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

func decodeID(restored []byte) (uint64, error) {
	if restored == nil {
		return 0, nil
	}
	if len(restored) != 8 {
		return 0, fmt.Errorf("%w: %d bytes, want 8", ErrState, len(restored))
	}
	return binary.BigEndian.Uint64(restored), nil
}

// exchange is one exchange: per receiving task, the records committed to
// it, in commit order.
type exchange struct {
	c     *Cluster
	name  string
	tasks int

	mu      sync.Mutex
	logs    [][]runtime.ExchangeRecord
	staged  staging[batch]
	ended   []bool        // per writer: its end of input committed
	nEnded  int           // writers ended
	changed chan struct{} // closed, and replaced, at every commit
}

// batch is what a writer staged for one checkpoint.
type batch struct {
	recs []runtime.ExchangeRecord
	end  bool // the writer's input ended
}

// publish makes b visible to its readers; x.mu is held.
func (x *exchange) publish(writer int) func(batch) {
	return func(b batch) {
		for _, r := range b.recs {
			x.logs[r.Task] = append(x.logs[r.Task], r)
		}
		if b.end && !x.ended[writer] {
			x.ended[writer] = true
			x.nEnded++
		}
		close(x.changed)
		x.changed = make(chan struct{})
	}
}

type exchangeSink struct {
	x      *exchange
	writer int
	buf    []runtime.ExchangeRecord
	end    bool
}

func (s *exchangeSink) Open(_ context.Context, info runtime.TaskInfo, restored []byte) error {
	if info.Parallelism != s.x.tasks {
		return fmt.Errorf("clustertest: exchange %q of %d tasks opened by subtask %d of %d", s.x.name, s.x.tasks, info.Subtask, info.Parallelism)
	}
	id, err := decodeID(restored)
	if err != nil {
		return err
	}
	s.writer = info.Subtask
	s.x.mu.Lock()
	defer s.x.mu.Unlock()
	if s.x.staged == nil {
		s.x.staged = staging[batch]{}
	}
	s.x.staged.recover(s.writer, id, s.x.publish(s.writer))
	return nil
}

func (s *exchangeSink) Write(_ context.Context, r runtime.ExchangeRecord) error {
	if r.Task < 0 || r.Task >= s.x.tasks {
		return fmt.Errorf("clustertest: exchange %q: record for task %d of %d", s.x.name, r.Task, s.x.tasks)
	}
	s.buf = append(s.buf, r)
	return nil
}

func (s *exchangeSink) EndOfInput() { s.end = true }

func (s *exchangeSink) PreCommit(_ context.Context, id uint64) ([]byte, error) {
	n := len(s.buf)
	s.x.mu.Lock()
	s.x.staged.stage(s.writer, id, batch{recs: s.buf, end: s.end})
	s.x.mu.Unlock()
	s.buf = nil
	if f := s.x.c.PreCommitted; f != nil {
		if err := f(s.x.name, s.writer, id, n); err != nil {
			return nil, err
		}
	}
	return encodeID(id), nil
}

func (s *exchangeSink) Commit(_ context.Context, id uint64) error {
	s.x.mu.Lock()
	defer s.x.mu.Unlock()
	s.x.staged.commit(s.writer, id, s.x.publish(s.writer))
	return nil
}

func (s *exchangeSink) Close() error { return nil }

type exchangeSource struct {
	x      *exchange
	reader int
	next   int // position in the reader's log
}

// readChunk bounds the records of one Read.
const readChunk = 1024

// readWait bounds how long a Read waits for records (Source contract:
// about 100 ms at most, so that barriers are not held up).
const readWait = 100 * time.Millisecond

func (s *exchangeSource) Open(_ context.Context, info runtime.TaskInfo, restored []byte) error {
	next, err := decodeID(restored)
	if err != nil {
		return err
	}
	s.reader, s.next = info.Subtask, int(next)
	return nil
}

func (s *exchangeSource) Read(ctx context.Context, out runtime.Collector[runtime.ExchangeRecord]) error {
	s.x.mu.Lock()
	log := s.x.logs[s.reader]
	ended := s.x.nEnded == s.x.tasks
	changed := s.x.changed
	s.x.mu.Unlock()
	if s.next > len(log) {
		return fmt.Errorf("%w: exchange %q: position %d beyond the %d records of task %d", ErrState, s.x.name, s.next, len(log), s.reader)
	}
	if recs := log[s.next:min(len(log), s.next+readChunk)]; len(recs) > 0 {
		for _, r := range recs {
			out.Collect(r)
		}
		s.next += len(recs)
		return nil
	}
	if ended {
		return runtime.ErrEndOfInput
	}
	t := time.NewTimer(readWait)
	defer t.Stop()
	select {
	case <-changed:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func (s *exchangeSource) Snapshot() ([]byte, error) { return encodeID(uint64(s.next)), nil }
func (s *exchangeSource) Close() error              { return nil }

// Output collects what its sinks commit, exactly once: a sink stages what
// it wrote at each PreCommit and publishes it at Commit; a sink restored
// from checkpoint n publishes what it staged up to n and drops the rest.
type Output[T any] struct {
	mu        sync.Mutex
	staged    staging[[]T]
	committed []T
}

// Records returns the records committed so far.
func (o *Output[T]) Records() []T {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.committed)
}

// Sink returns the factory of the output's sinks. Subtasks (tasks) are
// told apart by TaskInfo.Subtask.
func (o *Output[T]) Sink() runtime.SinkFactory[T] {
	return func() (runtime.Sink[T], error) { return &outputSink[T]{o: o}, nil }
}

func (o *Output[T]) publish(recs []T) { o.committed = append(o.committed, recs...) }

type outputSink[T any] struct {
	o       *Output[T]
	subtask int
	buf     []T
}

func (s *outputSink[T]) Open(_ context.Context, info runtime.TaskInfo, restored []byte) error {
	id, err := decodeID(restored)
	if err != nil {
		return err
	}
	s.subtask = info.Subtask
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	if s.o.staged == nil {
		s.o.staged = staging[[]T]{}
	}
	s.o.staged.recover(s.subtask, id, s.o.publish)
	return nil
}

func (s *outputSink[T]) Write(_ context.Context, rec T) error {
	s.buf = append(s.buf, rec)
	return nil
}

func (s *outputSink[T]) PreCommit(_ context.Context, id uint64) ([]byte, error) {
	s.o.mu.Lock()
	s.o.staged.stage(s.subtask, id, s.buf)
	s.o.mu.Unlock()
	s.buf = nil
	return encodeID(id), nil
}

func (s *outputSink[T]) Commit(_ context.Context, id uint64) error {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	s.o.staged.commit(s.subtask, id, s.o.publish)
	return nil
}

func (s *outputSink[T]) Close() error { return nil }
