package conformance_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/weirtest/conformance"
)

// table stands for the external system a third-party connector writes to,
// a database say: it outlives the connector's instances, as a database
// outlives a crashed process.
type table struct {
	mu     sync.Mutex
	rows   []string            // committed: what readers see
	staged map[string][]string // batch key → rows, durable but invisible
}

func (t *table) stage(key string, rows []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.staged == nil {
		t.staged = map[string][]string{}
	}
	t.staged[key] = append([]string(nil), rows...)
}

// publish makes a staged batch visible, in one transaction of the
// database. A batch no longer staged was published already: publish is
// idempotent.
func (t *table) publish(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rows = append(t.rows, t.staged[key]...)
	delete(t.staged, key)
}

// discard drops the staged batches whose key starts with prefix.
func (t *table) discard(prefix string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.staged {
		if strings.HasPrefix(k, prefix) {
			delete(t.staged, k)
		}
	}
}

func (t *table) read() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.rows...)
}

// tableSink is a two-phase sink: each subtask stages the records of a
// checkpoint epoch as one batch at PreCommit and publishes it at Commit.
// Its checkpoint state lists the checkpoints it pre-committed and has not
// committed yet.
type tableSink struct {
	db      *table
	subtask int
	epoch   []string // records since the last PreCommit: lost in a crash
	pending []uint64 // pre-committed, not committed
}

func (s *tableSink) key(checkpoint uint64) string { return fmt.Sprintf("%d/%d", s.subtask, checkpoint) }

func (s *tableSink) Open(_ context.Context, info runtime.TaskInfo, restored []byte) error {
	s.subtask = info.Subtask
	if len(restored)%8 != 0 {
		return errors.New("table sink: corrupt state")
	}
	// The restored checkpoint is complete: publish what it promised,
	// unless the runtime says its Commit returned already.
	for b := restored; len(b) > 0 && !info.RestoredCommitted; b = b[8:] {
		s.db.publish(s.key(binary.BigEndian.Uint64(b)))
	}
	// What was staged after it is replayed by the sources.
	s.db.discard(fmt.Sprintf("%d/", s.subtask))
	return nil
}

func (s *tableSink) Write(_ context.Context, rec string) error {
	s.epoch = append(s.epoch, rec)
	return nil
}

func (s *tableSink) PreCommit(_ context.Context, checkpoint uint64) ([]byte, error) {
	s.db.stage(s.key(checkpoint), s.epoch)
	s.epoch = nil
	s.pending = append(s.pending, checkpoint)
	var st []byte
	for _, id := range s.pending {
		st = binary.BigEndian.AppendUint64(st, id)
	}
	return st, nil
}

// Commit publishes every batch pre-committed at or before checkpoint: an
// earlier checkpoint may have failed.
func (s *tableSink) Commit(_ context.Context, checkpoint uint64) error {
	for len(s.pending) > 0 && s.pending[0] <= checkpoint {
		s.db.publish(s.key(s.pending[0]))
		s.pending = s.pending[1:]
	}
	return nil
}

func (s *tableSink) Close() error { return nil }

// listSource reads a list of records: subtask s of p reads records s, s+p,
// s+2p, … Its snapshot is the index of the next record.
type listSource struct {
	records []string
	next    int
	stride  int
}

func (s *listSource) Open(_ context.Context, info runtime.TaskInfo, restored []byte) error {
	s.next, s.stride = info.Subtask, info.Parallelism
	if restored != nil {
		if len(restored) != 8 {
			return errors.New("list source: corrupt snapshot")
		}
		s.next = int(binary.BigEndian.Uint64(restored))
	}
	return nil
}

func (s *listSource) Read(_ context.Context, out runtime.Collector[string]) error {
	for range 3 { // a bounded chunk per Read
		if s.next >= len(s.records) {
			return runtime.ErrEndOfInput
		}
		out.Collect(s.records[s.next])
		s.next += s.stride
	}
	return nil
}

func (s *listSource) Snapshot() ([]byte, error) {
	return binary.BigEndian.AppendUint64(nil, uint64(s.next)), nil
}

func (s *listSource) Close() error { return nil }

// tables holds a table per destination of the sink suite.
type tables struct {
	mu sync.Mutex
	m  map[string]*table
}

func (ts *tables) get(dest string) *table {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.m == nil {
		ts.m = map[string]*table{}
	}
	if ts.m[dest] == nil {
		ts.m[dest] = &table{}
	}
	return ts.m[dest]
}

func records(n int) []string {
	recs := make([]string, n)
	for i := range recs {
		recs[i] = fmt.Sprintf("r%03d", i)
	}
	return recs
}

// A third-party sink and source prove that they keep the exactly-once
// guarantee. In a connector's own tests, conformance.TestSink(t, suite)
// and conformance.TestSource(t, suite) run the same suites and fail t.
func Example() {
	ctx := context.Background()
	var db tables
	input := records(100)
	sinkErr := conformance.CheckSink(ctx, conformance.SinkSuite[string]{
		New: func(dest string) (runtime.Sink[string], error) {
			return &tableSink{db: db.get(dest)}, nil
		},
		ReadCommitted: func(dest string) ([]string, error) { return db.get(dest).read(), nil },
		Records:       input,
		Seed:          1, // zero: a seed from the clock
	})
	sourceErr := conformance.CheckSource(ctx, conformance.SourceSuite[string]{
		New:  func() (runtime.Source[string], error) { return &listSource{records: input}, nil },
		Seed: 1,
	})
	fmt.Println("sink:", sinkErr)
	fmt.Println("source:", sourceErr)
	// Output:
	// sink: <nil>
	// source: <nil>
}
