package conformance_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/weirtest/conformance"
)

// The flawed connectors below each break the contract in one way that
// only some interleavings expose. The suite must reject every one of them,
// whatever the seed.

// doubleCommitSink re-publishes the restored checkpoint's batches without
// asking whether they were published already: a crash between Commit and
// the runtime's commit marker duplicates them.
type doubleCommitSink struct{ *tableSink }

func (s doubleCommitSink) Open(ctx context.Context, info runtime.TaskInfo, restored []byte) error {
	s.subtask = info.Subtask
	for b := restored; len(b) > 0 && !info.RestoredCommitted; b = b[8:] {
		s.db.appendStaged(s.key(binary.BigEndian.Uint64(b)))
	}
	info.RestoredCommitted = true
	return s.tableSink.Open(ctx, info, restored)
}

func (s doubleCommitSink) Commit(_ context.Context, checkpoint uint64) error {
	for len(s.pending) > 0 && s.pending[0] <= checkpoint {
		s.db.appendStaged(s.key(s.pending[0]))
		s.pending = s.pending[1:]
	}
	return nil
}

// appendStaged copies a staged batch to the visible rows and keeps it
// staged: a commit that is not idempotent.
func (t *table) appendStaged(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rows = append(t.rows, t.staged[key]...)
}

// forgetfulSink never commits what the restored checkpoint promised: a
// crash after a checkpoint completed and before its Commit loses it.
type forgetfulSink struct{ *tableSink }

func (s forgetfulSink) Open(ctx context.Context, info runtime.TaskInfo, restored []byte) error {
	info.RestoredCommitted = true
	return s.tableSink.Open(ctx, info, restored)
}

// latestOnlySink commits only the batch of the checkpoint named by Commit,
// dropping those of earlier checkpoints that failed.
type latestOnlySink struct{ *tableSink }

func (s latestOnlySink) Commit(_ context.Context, checkpoint uint64) error {
	for len(s.pending) > 0 && s.pending[0] <= checkpoint {
		if s.pending[0] == checkpoint {
			s.db.publish(s.key(checkpoint))
		}
		s.pending = s.pending[1:]
	}
	return nil
}

// eagerSink publishes at PreCommit: the epoch of a checkpoint that fails
// is visible, and written again after a restore.
type eagerSink struct{ *tableSink }

func (s eagerSink) PreCommit(ctx context.Context, checkpoint uint64) ([]byte, error) {
	st, err := s.tableSink.PreCommit(ctx, checkpoint)
	s.db.publish(s.key(checkpoint))
	return st, err
}

// lateSource resumes one record after the position of its snapshot.
type lateSource struct{ *listSource }

func (s lateSource) Open(ctx context.Context, info runtime.TaskInfo, restored []byte) error {
	if err := s.listSource.Open(ctx, info, restored); err != nil {
		return err
	}
	if restored != nil {
		s.next += s.stride
	}
	return nil
}

// lazySource takes its snapshot before the record it emitted last, which a
// restore emits again.
type lazySource struct{ *listSource }

func (s lazySource) Snapshot() ([]byte, error) {
	return binary.BigEndian.AppendUint64(nil, uint64(max(s.next-s.stride, s.next%s.stride))), nil
}

// unorderedSource emits its first chunk after a restore backwards: every
// record once, two out of order.
type unorderedSource struct {
	*listSource
	restored bool
}

func (s *unorderedSource) Open(ctx context.Context, info runtime.TaskInfo, restored []byte) error {
	s.restored = restored != nil
	return s.listSource.Open(ctx, info, restored)
}

func (s *unorderedSource) Read(ctx context.Context, out runtime.Collector[string]) error {
	var chunk []string
	err := s.listSource.Read(ctx, runtime.CollectorFunc[string](func(r string) { chunk = append(chunk, r) }))
	if s.restored {
		slices.Reverse(chunk)
		s.restored = false
	}
	for _, r := range chunk {
		out.Collect(r)
	}
	return err
}

func sinkSuite(seed uint64, wrap func(*tableSink) runtime.Sink[string]) conformance.SinkSuite[string] {
	db := &tables{}
	return conformance.SinkSuite[string]{
		New: func(dest string) (runtime.Sink[string], error) {
			return wrap(&tableSink{db: db.get(dest)}), nil
		},
		ReadCommitted: func(dest string) ([]string, error) { return db.get(dest).read(), nil },
		Records:       records(120),
		Parallelism:   3,
		MaxPending:    3,
		// Each flaw fails about three schedules in four (measured over
		// 400 seeds): twelve miss it once in ten million runs.
		Schedules: 12,
		Seed:      seed,
	}
}

func sourceSuite(seed uint64, wrap func(*listSource) runtime.Source[string]) conformance.SourceSuite[string] {
	input := records(200)
	return conformance.SourceSuite[string]{
		New:         func() (runtime.Source[string], error) { return wrap(&listSource{records: input}), nil },
		Parallelism: 3,
		Seed:        seed,
	}
}

func TestCorrectConnectorsPass(t *testing.T) {
	seed := testseed.Seed(t)
	conformance.TestSink(t, sinkSuite(seed, func(s *tableSink) runtime.Sink[string] { return s }))
	conformance.TestSource(t, sourceSuite(seed, func(s *listSource) runtime.Source[string] { return s }))
}

func TestRejectsFlawedSinks(t *testing.T) {
	seed := testseed.Seed(t)
	for _, tc := range []struct {
		name string
		wrap func(*tableSink) runtime.Sink[string]
		want string
	}{
		{"re-commit is not idempotent", func(s *tableSink) runtime.Sink[string] { return doubleCommitSink{s} }, "duplicated"},
		{"restore forgets the pending commit", func(s *tableSink) runtime.Sink[string] { return forgetfulSink{s} }, "lost"},
		{"commit forgets failed checkpoints", func(s *tableSink) runtime.Sink[string] { return latestOnlySink{s} }, "lost"},
		{"pre-commit makes data visible", func(s *tableSink) runtime.Sink[string] { return eagerSink{s} }, "not covered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := conformance.CheckSink(t.Context(), sinkSuite(seed, tc.wrap))
			expectRejected(t, err, tc.want)
		})
	}
}

func TestRejectsFlawedSources(t *testing.T) {
	seed := testseed.Seed(t)
	for _, tc := range []struct {
		name string
		wrap func(*listSource) runtime.Source[string]
		want string
	}{
		{"restores one record late", func(s *listSource) runtime.Source[string] { return lateSource{s} }, "lost"},
		{"snapshot lags one record", func(s *listSource) runtime.Source[string] { return lazySource{s} }, "duplicated"},
		{"order within a split", func(s *listSource) runtime.Source[string] { return &unorderedSource{listSource: s} }, "an uninterrupted read has"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := conformance.CheckSource(t.Context(), sourceSuite(seed, tc.wrap))
			expectRejected(t, err, tc.want)
		})
	}
}

func expectRejected(t *testing.T, err error, want string) {
	t.Helper()
	if !errors.Is(err, conformance.ErrOutputsDiffer) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want ErrOutputsDiffer mentioning %q", err, want)
	}
	if !strings.Contains(err.Error(), "seed") {
		t.Fatalf("the failure does not report the seed: %v", err)
	}
	t.Logf("rejected as expected:\n%v", firstLines(err.Error(), 3))
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// fakeTB records how TestSink fails a test. Fatal ends the goroutine, as
// testing.T's does.
type fakeTB struct {
	testing.TB // a real one, for Context; the failure stays here
	failure    string
	logs       []string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Fatal(args ...any)                 { f.failure = fmt.Sprint(args...); goruntime.Goexit() }
func (f *fakeTB) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }

func TestTestSinkFailsTheTest(t *testing.T) {
	fake := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conformance.TestSink(fake, sinkSuite(0, func(s *tableSink) runtime.Sink[string] { return forgetfulSink{s} }))
	}()
	<-done
	if fake.failure == "" {
		t.Fatal("TestSink passed a sink that loses data")
	}
	// The seed is logged before the run and reported with the failure.
	if len(fake.logs) == 0 || !strings.Contains(fake.logs[0], "seed") || !strings.Contains(fake.failure, "seed") {
		t.Fatalf("seed not reported: logs %q, failure %q", fake.logs, firstLines(fake.failure, 2))
	}
}

// lifeSink records how the suite ends an instance.
type lifeSink struct {
	*tableSink
	closed, killed bool
}

func (s *lifeSink) Close() error {
	if s.closed || s.killed {
		return errors.New("closed after it was closed or killed")
	}
	s.closed = true
	return nil
}

func TestKillOnlyCrashedInstances(t *testing.T) {
	suite := sinkSuite(testseed.Seed(t), func(s *tableSink) runtime.Sink[string] { return &lifeSink{tableSink: s} })
	kills := 0
	suite.Kill = func(s runtime.Sink[string]) {
		ls := s.(*lifeSink)
		if ls.closed || ls.killed {
			t.Errorf("Kill of an instance closed (%v) or killed (%v) before", ls.closed, ls.killed)
		}
		ls.killed = true
		kills++
	}
	if err := conformance.CheckSink(t.Context(), suite); err != nil {
		t.Fatal(err)
	}
	if kills == 0 {
		t.Fatal("no crash killed an instance")
	}
}

// TestSeedReplaysSchedule: the same seed makes the same calls, so a failure
// reproduces (only the destination names differ).
func TestSeedReplaysSchedule(t *testing.T) {
	seed := testseed.Seed(t)
	dest := regexp.MustCompile(`weir-conformance-\d+`)
	var failures [2]string
	for i := range failures {
		err := conformance.CheckSink(t.Context(), sinkSuite(seed, func(s *tableSink) runtime.Sink[string] { return doubleCommitSink{s} }))
		if err == nil {
			t.Fatal("the flawed sink passed")
		}
		failures[i] = dest.ReplaceAllString(err.Error(), "DEST")
	}
	if failures[0] != failures[1] {
		t.Fatalf("two runs with seed %d differ:\n%s\n----\n%s", seed, failures[0], failures[1])
	}
}
