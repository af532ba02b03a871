package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/internal/kafkatxn/kafkatest"
	"github.com/weirstream/weir/runtime"
)

// These tests run the sink in a job, as the runtime drives it, restarting
// the job as a supervisor would after a failure or a stop.

// seqMessage is record i of the test jobs: value v<i>.
func seqMessage(i int) Message {
	v := "v" + strconv.Itoa(i)
	return Message{Key: []byte("k" + v), Value: []byte(v)}
}

// seqIndex returns i of seqMessage(i).
func seqIndex(m Message) int {
	i, _ := strconv.Atoi(strings.TrimPrefix(string(m.Value), "v"))
	return i
}

// runSinkJob runs, until it ends, the job source → sink "kafka-out" (one
// subtask each) with checkpoints in dir.
func runSinkJob(t *testing.T, dir string, src runtime.SourceFactory[Message], sink runtime.SinkFactory[Message], events runtime.EventListener) error {
	t.Helper()
	p := runtime.NewPipeline("kafka-sink-test")
	runtime.To(runtime.From(p, "seq", src), "kafka-out", sink)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	return runtime.Run(ctx, p, runtime.Config{
		CheckpointDir:      dir,
		CheckpointInterval: 20 * time.Millisecond,
		CheckpointTimeout:  time.Minute,
		Parallelism:        1,
		Logger:             quiet,
		Events:             events,
	})
}

// heldSource emits seqMessage(0 … n-1): those below hold at once, the rest
// once release is closed; then it ends. Its state is its position.
type heldSource struct {
	n, hold int
	release <-chan struct{}
	covered *atomic.Bool // set once a snapshot covers the records below hold
	pos     int
}

func (s *heldSource) Open(_ context.Context, _ runtime.TaskInfo, restored []byte) error {
	if restored == nil {
		return nil
	}
	var err error
	s.pos, err = strconv.Atoi(string(restored))
	return err
}

func (s *heldSource) Read(ctx context.Context, out runtime.Collector[Message]) error {
	if s.pos >= s.n {
		return runtime.ErrEndOfInput
	}
	end := s.hold
	if s.pos >= s.hold {
		wait := time.NewTimer(10 * time.Millisecond) // nothing to read: return soon, as Read must
		defer wait.Stop()
		select {
		case <-s.release:
		case <-wait.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
		end = s.n
	}
	for ; s.pos < end; s.pos++ {
		out.Collect(seqMessage(s.pos))
	}
	return nil
}

func (s *heldSource) Snapshot() ([]byte, error) {
	if s.pos >= s.hold {
		s.covered.Store(true)
	}
	return []byte(strconv.Itoa(s.pos)), nil
}

func (s *heldSource) Close() error { return nil }

// stallingSink is the sink of a process that stalls (SIGSTOP, a paused VM, a
// slow disk) right after it pre-committed records from hold on, in the
// window between a sink's pre-commit and the checkpoint's manifest, until
// stall returns.
type stallingSink struct {
	*sink[Message] // and so its CheckPromise
	hold           int
	stall          func(ctx context.Context, txid string) // called once; nil: never
	held           bool                                   // the epoch wrote a record from hold on
}

func (s *stallingSink) Write(ctx context.Context, m Message) error {
	if seqIndex(m) >= s.hold {
		s.held = true
	}
	return s.sink.Write(ctx, m)
}

func (s *stallingSink) PreCommit(ctx context.Context, id uint64) ([]byte, error) {
	st, err := s.sink.PreCommit(ctx, id)
	if err == nil && s.held && s.stall != nil {
		for _, sl := range s.sink.w.(*exactlyOnce).slots {
			if sl.state == slotPending && sl.checkpoint == id {
				s.stall(ctx, sl.txid)
			}
		}
		s.stall = nil
	}
	s.held = false
	return st, err
}

// abortWatch is a kfake logger that reports the transactions the broker
// aborts because they reached their timeout.
type abortWatch struct {
	mu      sync.Mutex
	aborted map[string]chan struct{}
}

func (w *abortWatch) ch(txid string) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.aborted == nil {
		w.aborted = map[string]chan struct{}{}
	}
	if w.aborted[txid] == nil {
		w.aborted[txid] = make(chan struct{})
	}
	return w.aborted[txid]
}

func (w *abortWatch) Logf(_ kfake.LogLevel, format string, args ...any) {
	if !strings.HasPrefix(format, "txn timeout abort:") {
		return
	}
	rest, ok := strings.CutPrefix(fmt.Sprintf(format, args...), "txn timeout abort: txn_id=")
	txid, _, _ := strings.Cut(rest, " ")
	if !ok {
		return
	}
	ch := w.ch(txid)
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// TestCheckpointDeclinedWhenTransactionMayHaveExpired pauses the process
// after the sink pre-committed a transaction until the broker has aborted it
// on its timeout, before the checkpoint's manifest. The checkpoint must not
// complete: it would promise lost records (and every restart would then
// refuse with DATA LOSS). Instead the job fails, and the restart resumes from
// the previous checkpoint and writes the records again, each once.
func TestCheckpointDeclinedWhenTransactionMayHaveExpired(t *testing.T) {
	var watch abortWatch
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic), kfake.WithLogger(&watch))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg := testConfig(c)
	// A checkpoint has 2s from the start of its transaction to complete.
	cfg.TransactionTimeout, cfg.ExpectedRestartTime = 3*time.Second, time.Second
	const n, hold = 40, 20
	dir := t.TempDir()

	// Run 1: a checkpoint covers and commits the records below hold; then
	// the process stalls after pre-committing the rest.
	var covered, stalled atomic.Bool
	release := make(chan struct{})
	var releaseOnce sync.Once
	events := runtime.EventListener{CheckpointCompleted: func(runtime.CheckpointInfo) {
		if covered.Load() {
			releaseOnce.Do(func() { close(release) })
		}
	}}
	stall := func(ctx context.Context, txid string) {
		stalled.Store(true)
		select {
		case <-watch.ch(txid):
		case <-ctx.Done():
		case <-time.After(time.Minute):
			t.Errorf("the broker did not abort transaction %q within a minute of its 3s timeout", txid)
		}
	}
	err = runSinkJob(t, dir,
		func() (runtime.Source[Message], error) {
			return &heldSource{n: n, hold: hold, release: release, covered: &covered}, nil
		},
		func() (runtime.Sink[Message], error) {
			s, err := newSinkInstance(cfg)
			return &stallingSink{sink: s, hold: hold, stall: stall}, err
		},
		events)
	if !stalled.Load() {
		t.Fatalf("the sink never stalled after pre-committing records from %d on; run 1 ended with %v", hold, err)
	}
	if !errors.Is(err, ErrTransactionTimeout) {
		t.Errorf("run 1 ended with %v, want the failure of a declined checkpoint (ErrTransactionTimeout)", err)
	}

	// Run 2: the restart, as a supervisor would.
	closed := make(chan struct{})
	close(closed)
	err = runSinkJob(t, dir,
		func() (runtime.Source[Message], error) {
			return &heldSource{n: n, hold: hold, release: closed, covered: new(atomic.Bool)}, nil
		},
		func() (runtime.Sink[Message], error) { return newSinkInstance(cfg) },
		runtime.EventListener{})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	check(t, "read_committed", readAll(t, c, true), want(fmt.Sprintf("v*%d", n)))
}

// TestRestartAfterTransactionalIDsExpired stops a job cleanly, lets the
// broker forget the sink's transactional ids (Kafka does after
// transactional.id.expiration.ms, 7 days, without use) and restarts it. The
// restored checkpoint lists transactions the broker can no longer confirm,
// but they were committed before the stop: the restart must not report data
// loss, and the output must stay exactly once.
func TestRestartAfterTransactionalIDsExpired(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	cfg := testConfig(c)
	const n = 30
	dir := t.TempDir()
	run := func() error {
		src, err := generator.NewSource(generator.SourceConfig[Message]{Record: func(seq uint64) Message { return seqMessage(int(seq)) }, Count: n, ChunkSize: 10})
		if err != nil {
			return err
		}
		return runSinkJob(t, dir, src,
			func() (runtime.Sink[Message], error) { return newSinkInstance(cfg) },
			runtime.EventListener{})
	}
	if err := run(); err != nil {
		t.Fatalf("run 1: %v", err)
	}
	var txids []string
	for i := range DefaultPoolSize {
		txids = append(txids, fmt.Sprintf("%s-0-%d", cfg.TransactionalIDPrefix, i))
	}
	kafkatest.ExpireTransactionalIDs(t, c.ListenAddrs(), txids...)
	if err := run(); err != nil {
		t.Fatalf("restart after the broker forgot the transactional ids: %v", err)
	}
	check(t, "read_committed", readAll(t, c, true), want(fmt.Sprintf("v*%d", n)))
}
