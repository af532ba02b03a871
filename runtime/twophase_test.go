package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir/state"
)

// fakeWriter is a TwoPhaseWriter that logs its calls. Each Prepare returns
// the records written since the last one as one committable (none if
// there were none), and the number of Prepares as the writer state.
type fakeWriter struct {
	log        []string
	buf        []string
	prepares   int
	failCommit int // Commits left to fail
	recovered  Recovery[string]
	endOfInput bool
}

func (w *fakeWriter) Open(context.Context, TaskInfo) error { w.log = append(w.log, "open"); return nil }

func (w *fakeWriter) Recover(_ context.Context, r Recovery[string]) error {
	w.recovered = r
	w.log = append(w.log, fmt.Sprintf("recover@%d%v", r.Checkpoint, values(r.Committables)))
	return nil
}

func (w *fakeWriter) Write(_ context.Context, rec string) error {
	w.buf = append(w.buf, rec)
	return nil
}

func (w *fakeWriter) Prepare(_ context.Context, id uint64, end bool) ([]string, []byte, error) {
	w.prepares++
	w.endOfInput = end
	var cs []string
	if len(w.buf) > 0 {
		cs = []string{strings.Join(w.buf, "")}
		w.buf = nil
	}
	return cs, []byte{byte(w.prepares)}, nil
}

func (w *fakeWriter) Commit(_ context.Context, id uint64, cs []Committable[string]) error {
	if w.failCommit > 0 {
		w.failCommit--
		return errors.New("commit failed")
	}
	w.log = append(w.log, fmt.Sprintf("commit@%d%v", id, values(cs)))
	return nil
}

func (w *fakeWriter) Close() error { return nil }

func values(cs []Committable[string]) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s/%d", c.Value, c.Checkpoint))
	}
	return out
}

func preCommit(t *testing.T, s Sink[string], id uint64) []byte {
	t.Helper()
	st, err := s.PreCommit(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func check(t *testing.T, w *fakeWriter, want ...string) {
	t.Helper()
	if !slices.Equal(w.log, want) {
		t.Fatalf("calls:\ngot  %q\nwant %q", w.log, want)
	}
	w.log = nil
}

func openTwoPhase(t *testing.T, info TaskInfo, restored []byte) (Sink[string], *fakeWriter) {
	t.Helper()
	w := &fakeWriter{}
	s := NewTwoPhaseSink[string, string](w, state.String)
	if err := s.Open(t.Context(), info, restored); err != nil {
		t.Fatal(err)
	}
	return s, w
}

// TestTwoPhaseCommitsInOrderAcrossFailedCheckpoints: a checkpoint that never
// completes leaves its committables pending; the next Commit covers them,
// in order, and every state lists them until then.
func TestTwoPhaseCommitsInOrderAcrossFailedCheckpoints(t *testing.T) {
	ctx := t.Context()
	s, w := openTwoPhase(t, TaskInfo{Parallelism: 1}, nil)
	check(t, w, "open", "recover@0[]")
	if !w.recovered.Fresh {
		t.Fatal("fresh start: Recovery.Fresh is false")
	}
	s.Write(ctx, "a")
	preCommit(t, s, 1)
	s.Write(ctx, "b")
	st2 := preCommit(t, s, 2)
	preCommit(t, s, 3) // nothing written: no committable
	if err := s.Commit(ctx, 2); err != nil {
		t.Fatal(err)
	}
	check(t, w, "commit@2[a/1 b/2]")
	if err := s.Commit(ctx, 3); err != nil {
		t.Fatal(err)
	}
	check(t, w, "commit@3[]")

	// A restore from checkpoint 2 commits both again, then recovers.
	_, w2 := openTwoPhase(t, TaskInfo{Parallelism: 1}, st2)
	check(t, w2, "open", "commit@2[a/1 b/2]", "recover@2[a/1 b/2]")
	if got := w2.recovered.WriterState; !slices.Equal(got, []byte{2}) {
		t.Fatalf("writer state %v, want [2]", got)
	}
	// Unless the runtime recorded that checkpoint 2's Commit returned.
	_, w3 := openTwoPhase(t, TaskInfo{Parallelism: 1, RestoredCommitted: true}, st2)
	check(t, w3, "open", "recover@2[a/1 b/2]")
}

// TestTwoPhaseFailedCommitStaysPending: a Commit that fails keeps its
// committables: the next state lists them and the next Commit retries them.
func TestTwoPhaseFailedCommitStaysPending(t *testing.T) {
	ctx := t.Context()
	s, w := openTwoPhase(t, TaskInfo{Parallelism: 1}, nil)
	w.log = nil
	s.Write(ctx, "a")
	preCommit(t, s, 1)
	w.failCommit = 1
	if err := s.Commit(ctx, 1); err == nil {
		t.Fatal("Commit: no error")
	}
	s.Write(ctx, "b")
	st := preCommit(t, s, 2)
	if err := s.Commit(ctx, 2); err != nil {
		t.Fatal(err)
	}
	check(t, w, "commit@2[a/1 b/2]")
	_, w2 := openTwoPhase(t, TaskInfo{Parallelism: 1}, st)
	check(t, w2, "open", "commit@2[a/1 b/2]", "recover@2[a/1 b/2]")
}

func TestTwoPhaseRefusesBadState(t *testing.T) {
	ctx := t.Context()
	s, _ := openTwoPhase(t, TaskInfo{Subtask: 1, Parallelism: 2}, nil)
	s.Write(ctx, "a")
	st := preCommit(t, s, 1)
	if _, err := s.PreCommit(ctx, 1); err == nil || !strings.Contains(err.Error(), "must increase") {
		t.Fatalf("PreCommit(1) twice: err = %v", err)
	}
	open := func(info TaskInfo, b []byte) error {
		return NewTwoPhaseSink[string, string](&fakeWriter{}, state.String).Open(ctx, info, b)
	}
	if err := open(TaskInfo{Subtask: 0, Parallelism: 2}, st); err == nil || !strings.Contains(err.Error(), "state of subtask 1 restored into subtask 0") {
		t.Fatalf("another subtask's state: err = %v", err)
	}
	for i := 1; i < len(st); i++ {
		if err := open(TaskInfo{Subtask: 1, Parallelism: 2}, st[:i]); !errors.Is(err, ErrCorruptTwoPhaseState) {
			t.Fatalf("state cut at %d: err = %v, want ErrCorruptTwoPhaseState", i, err)
		}
	}
	if err := open(TaskInfo{Subtask: 1, Parallelism: 2}, []byte(`{"version":1}`)); !errors.Is(err, ErrCorruptTwoPhaseState) {
		t.Fatalf("foreign state without a legacy decoder: err = %v", err)
	}
}

// legacyWriter reads "legacy:<committable>" states.
type legacyWriter struct{ fakeWriter }

func (w *legacyWriter) DecodeLegacyState(b []byte) (Recovery[string], error) {
	v, ok := strings.CutPrefix(string(b), "legacy:")
	if !ok {
		return Recovery[string]{}, errors.New("not legacy")
	}
	return Recovery[string]{Checkpoint: 7, Committables: []Committable[string]{{Checkpoint: 6, Value: v}}}, nil
}

func TestTwoPhaseLegacyState(t *testing.T) {
	w := &legacyWriter{}
	s := NewTwoPhaseSink[string, string](w, state.String)
	if err := s.Open(t.Context(), TaskInfo{Parallelism: 1}, []byte("legacy:x")); err != nil {
		t.Fatal(err)
	}
	check(t, &w.fakeWriter, "open", "commit@7[x/6]", "recover@7[x/6]")
}

// TestTwoPhaseEndOfInput: the runtime tells the writer, at its last
// Prepare, that the input has ended.
func TestTwoPhaseEndOfInput(t *testing.T) {
	ctx := t.Context()
	s, w := openTwoPhase(t, TaskInfo{Parallelism: 1}, nil)
	preCommit(t, s, 1)
	if w.endOfInput {
		t.Fatal("endOfInput before the input ended")
	}
	if _, ok := s.(EndOfInputHandler); !ok {
		t.Fatal("the sink is not an EndOfInputHandler")
	}
	inst := &sinkInstance[string]{sink: s, ctx: ctx}
	if err := inst.Finish(); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.Snapshot(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if !w.endOfInput {
		t.Fatal("Prepare after Finish: endOfInput is false")
	}
}

// promisingWriter is a writer with an optional Sink interface.
type promisingWriter struct{ fakeWriter }

func (*promisingWriter) CheckPromise(uint64) error { return nil }

func TestTwoPhaseWriterReports(t *testing.T) {
	s := NewTwoPhaseSink[string, string](&promisingWriter{}, state.String)
	if reports(s).CheckPromise == nil {
		t.Fatal("the writer's PromiseChecker is not reported")
	}
}

// listeningSource is a Source that records CheckpointComplete.
type listeningSource struct {
	Source[string]
	completed []uint64
}

func (s *listeningSource) CheckpointComplete(_ context.Context, id uint64) error {
	s.completed = append(s.completed, id)
	return nil
}

func TestSourceCheckpointListener(t *testing.T) {
	src := &listeningSource{}
	inst := &sourceInstance[string]{src: src}
	if err := inst.NotifyComplete(t.Context(), 4); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(src.completed, []uint64{4}) {
		t.Fatalf("CheckpointComplete calls %v, want [4]", src.completed)
	}
}

// described is a committable with a human form.
type described struct{ name string }

func (d described) DescribeCommittable() any {
	if d.name == "" {
		return func() {} // no JSON form
	}
	return struct {
		Name string `json:"name"`
	}{d.name}
}

// TestTwoPhaseDescribe: a committable that describes itself is kept with
// its description; one that does not, without; a description that is not
// JSON fails loudly.
func TestTwoPhaseDescribe(t *testing.T) {
	if d, err := describe(described{"pending-3"}); err != nil || string(d) != `{"name":"pending-3"}` {
		t.Fatalf("describe = %s, %v", d, err)
	}
	if d, err := describe("plain"); err != nil || d != nil {
		t.Fatalf("describe of a committable without a describer = %s, %v", d, err)
	}
	if _, err := describe(described{}); err == nil || !strings.Contains(err.Error(), "runtime.described") {
		t.Fatalf("describe of an unencodable description: err = %v, want one naming the type", err)
	}
}
