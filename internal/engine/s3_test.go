package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/chkstore"
	"github.com/weirstream/weir/internal/objstore"
	"github.com/weirstream/weir/internal/s3dev"
	"github.com/weirstream/weir/runtime"
)

// durableOutput is what durableSinks committed: the records of each
// (subtask, checkpoint) once, however often it is committed. An empty
// commit records nothing: a run resumed from a savepoint may reuse the ids
// of checkpoints the run it was taken from went on to commit empty.
type durableOutput struct {
	memOutput
	done map[string]bool
}

func (o *durableOutput) commit(subtask int, pending map[uint64][]string, upTo uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id, recs := range pending {
		key := fmt.Sprint(subtask, "/", id)
		if id <= upTo && len(recs) > 0 && !o.done[key] {
			o.done[key] = true
			o.committed = append(o.committed, recs...)
		}
	}
}

// durableSink is a memSink whose pre-committed records are in its state, so
// that a restore commits what the restored checkpoint promised: it stays
// exactly-once across hard cancellations, as a Kafka sink does.
type durableSink struct {
	out     *durableOutput
	subtask int
	cur     []string
	pending map[uint64][]string
}

func newDurableSink(out *durableOutput) runtime.SinkFactory[string] {
	return func() (runtime.Sink[string], error) {
		return &durableSink{out: out, pending: map[uint64][]string{}}, nil
	}
}

func (s *durableSink) Open(_ context.Context, info runtime.TaskInfo, restored []byte) error {
	s.subtask = info.Subtask
	if restored == nil {
		return nil
	}
	var promised map[uint64][]string
	if err := json.Unmarshal(restored, &promised); err != nil {
		return err
	}
	s.out.commit(s.subtask, promised, ^uint64(0))
	return nil
}

func (s *durableSink) Write(_ context.Context, rec string) error {
	s.cur = append(s.cur, rec)
	return nil
}

func (s *durableSink) PreCommit(_ context.Context, id uint64) ([]byte, error) {
	s.pending[id], s.cur = s.cur, nil
	return json.Marshal(s.pending)
}

func (s *durableSink) Commit(_ context.Context, id uint64) error {
	s.out.commit(s.subtask, s.pending, id)
	for pid := range s.pending {
		if pid <= id {
			delete(s.pending, pid)
		}
	}
	return nil
}

func (s *durableSink) Close() error { return nil }

// TestCheckpointsInObjectStorage runs the counting job with its checkpoints
// on the development S3 server and a fresh --local-dir at every start: cut
// off by a cancellation mid-run, stopped with a final checkpoint, and run to
// the end with the default (temporary) local directory. Every start but the
// first restores from object storage alone; the output is exact.
func TestCheckpointsInObjectStorage(t *testing.T) {
	s3dev.StartTest(t, "").SetEnv(t)
	t.Chdir(t.TempDir()) // a location taken for a path would land here, not in the source tree
	const location, records, keys = "s3://weir-test/jobs/count", 20000, 100
	out := &durableOutput{done: map[string]bool{}}
	resume := make(chan struct{})
	p := countingPipelineTo(records, keys, newDurableSink(out), resume)

	// run starts the job; after its first checkpoint, act ends it.
	run := func(localDir string, act func(cancel context.CancelFunc, stop chan struct{})) (restored uint64, err error) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stop := make(chan struct{})
		var once sync.Once
		err = runtime.Run(ctx, p, runtime.Config{
			CheckpointDir:      location,
			LocalDir:           localDir,
			CheckpointInterval: 5 * time.Millisecond,
			Parallelism:        2,
			BatchSize:          64,
			MetricsAddr:        "",
			Stop:               stop,
			Events: runtime.EventListener{
				Started: func(info runtime.StartInfo) { restored = info.RestoredFrom },
				CheckpointCompleted: func(runtime.CheckpointInfo) {
					once.Do(func() { act(cancel, stop) })
				},
			},
		})
		return restored, err
	}

	// The first half of the input, then a cancellation: no final checkpoint.
	if _, err := run(t.TempDir(), func(cancel context.CancelFunc, _ chan struct{}) { cancel() }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v, want context.Canceled", err)
	}
	// A stop with a final checkpoint, from an empty local directory.
	restored, err := run(t.TempDir(), func(_ context.CancelFunc, stop chan struct{}) { close(stop) })
	if err != nil {
		t.Fatalf("stopped run: %v", err)
	}
	if restored == 0 {
		t.Fatal("second run started afresh: the checkpoint in object storage was not restored")
	}
	// The rest, with a temporary local directory.
	close(resume)
	restored, err = run("", func(context.CancelFunc, chan struct{}) {})
	if err != nil {
		t.Fatalf("last run: %v", err)
	}
	if restored == 0 {
		t.Fatal("last run started afresh: the final checkpoint in object storage was not restored")
	}
	checkCounts(t, out.lines(), records, keys)

	objects, err := objstore.Open(context.Background(), location, objstore.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	listed, err := objects.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	manifests := 0
	for _, o := range listed {
		if strings.HasSuffix(o.Key, "/"+chkstore.ManifestName) {
			manifests++
		}
	}
	if manifests == 0 {
		t.Fatalf("no checkpoint manifest in %s (%d objects)", location, len(listed))
	}
}
