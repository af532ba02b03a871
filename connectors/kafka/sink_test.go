package kafka

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/weirstream/weir/internal/kafkatxn"
	"github.com/weirstream/weir/internal/kafkatxn/kafkatest"
	"github.com/weirstream/weir/runtime"
)

const (
	topic      = "out"
	partitions = 3
)

var quiet = slog.New(slog.DiscardHandler)

func testConfig(c *kfake.Cluster) SinkConfig[Message] {
	return SinkConfig[Message]{
		Brokers:               c.ListenAddrs(),
		Topic:                 topic,
		TransactionalIDPrefix: "weir-test",
		TransactionTimeout:    time.Minute,
		ExpectedRestartTime:   time.Second,
		Logger:                quiet,
	}
}

func info(subtask int) runtime.TaskInfo {
	return runtime.TaskInfo{Job: "job", Operator: "kafka-out", Subtask: subtask, Parallelism: 2}
}

// open returns an opened sink. The test does not close it: dropping a sink
// without Close is how these tests crash.
func open[T any](t *testing.T, cfg SinkConfig[T], subtask int, restored []byte) *sink[T] {
	t.Helper()
	return openWith(t, cfg, info(subtask), restored)
}

func openWith[T any](t *testing.T, cfg SinkConfig[T], info runtime.TaskInfo, restored []byte) *sink[T] {
	t.Helper()
	s, err := newSinkInstance(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(t.Context(), info, restored); err != nil {
		t.Fatal(err)
	}
	return s
}

func write(t *testing.T, s *sink[Message], prefix string, n int) {
	t.Helper()
	for i := range n {
		v := fmt.Sprintf("%s%d", prefix, i)
		if err := s.Write(t.Context(), Message{Key: []byte("key-" + v), Value: []byte(v)}); err != nil {
			t.Fatalf("write %s: %v", v, err)
		}
	}
}

func preCommit[T any](t *testing.T, s *sink[T], n uint64) []byte {
	t.Helper()
	st, err := s.PreCommit(t.Context(), n)
	if err != nil {
		t.Fatalf("pre-commit %d: %v", n, err)
	}
	return st
}

func commit[T any](t *testing.T, s *sink[T], n uint64) {
	t.Helper()
	if err := s.Commit(t.Context(), n); err != nil {
		t.Fatalf("commit %d: %v", n, err)
	}
}

// readRecords returns what is visible in the test topic; see readTopic.
func readRecords(t *testing.T, c *kfake.Cluster, committed bool) []kafkatest.Record {
	t.Helper()
	return readTopic(t, c, topic, committed)
}

// readTopic commits a marker to every partition of topic (which has
// partitions partitions) through another transactional id, reads until all
// markers are seen and returns the records before them, in log order per
// partition: under read_committed, exactly what is visible.
func readTopic(t *testing.T, c *kfake.Cluster, topic string, committed bool) []kafkatest.Record {
	t.Helper()
	commitMarkers(t, c, topic, "marker-"+strconv.FormatBool(committed), "end")
	var recs []kafkatest.Record
	for _, r := range kafkatest.Consume(t, c, topic, committed, kafkatest.UntilValues("end", 0, 1, 2)) {
		if r.Value != "end" {
			recs = append(recs, r)
		}
	}
	return recs
}

// commitMarkers writes a record of value marker to every partition of
// topic, in a transaction of txid, and commits it.
func commitMarkers(t *testing.T, c *kfake.Cluster, topic, txid, marker string) {
	t.Helper()
	m, err := kafkatxn.New(t.Context(), kafkatxn.Config{Brokers: c.ListenAddrs(), TransactionalID: txid, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for p := range partitions {
		if err := m.Produce(t.Context(), topic, p, []kafkatxn.Record{{Value: []byte(marker)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// readAll returns the sorted values of readRecords.
func readAll(t *testing.T, c *kfake.Cluster, committed bool) []string {
	t.Helper()
	vs := kafkatest.Values(readRecords(t, c, committed), "")
	slices.Sort(vs)
	return vs
}

func want(groups ...string) []string {
	var vs []string
	for _, g := range groups {
		prefix, n, _ := strings.Cut(g, "*")
		k, _ := strconv.Atoi(n)
		for i := range k {
			vs = append(vs, fmt.Sprintf("%s%d", prefix, i))
		}
	}
	slices.Sort(vs)
	return vs
}

func check(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestExactlyOnceCommitsAtCheckpoint(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	s := open(t, testConfig(c), 0, nil)
	defer s.Close()

	write(t, s, "a", 10)
	preCommit(t, s, 1)
	write(t, s, "b", 5)
	preCommit(t, s, 2)

	commit(t, s, 1)
	// Epoch 2's transaction is open, so this cannot read up to a marker;
	// it reads what checkpoint 1 made visible.
	got := kafkatest.Values(kafkatest.Consume(t, c, topic, true, kafkatest.Count(10)), "")
	slices.Sort(got)
	check(t, "after Commit(1), read_committed", got, want("a*10"))

	commit(t, s, 2)
	commit(t, s, 2) // idempotent
	commit(t, s, 1) // nothing left
	check(t, "after Commit(2), read_committed", readAll(t, c, true), want("a*10", "b*5"))
}

func TestRecoveryDiscardsEpochAfterCheckpoint(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	cfg := testConfig(c)
	cfg.BatchSize = 1 // send every record at once, so that the crash leaves it in the log

	s1 := open(t, cfg, 0, nil)
	write(t, s1, "a", 6)
	st1 := preCommit(t, s1, 1)
	write(t, s1, "b", 6)
	// Crash before checkpoint 1's completion reaches the sink; checkpoint
	// 1 is complete, so recovery restores st1.

	s2 := open(t, cfg, 0, st1)
	defer s2.Close()
	write(t, s2, "c", 6)
	preCommit(t, s2, 2)
	commit(t, s2, 2)

	check(t, "read_committed", readAll(t, c, true), want("a*6", "c*6"))
	check(t, "read_uncommitted", readAll(t, c, false), want("a*6", "b*6", "c*6"))
}

func TestRecoveryRecommitIsIdempotent(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	cfg := testConfig(c)
	cfg.BatchSize = 2

	s1 := open(t, cfg, 0, nil)
	write(t, s1, "a", 6)
	st1 := preCommit(t, s1, 1)
	commit(t, s1, 1)
	write(t, s1, "b", 6)
	// Crash after checkpoint 1 was committed; recovery commits it again.

	s2 := open(t, cfg, 0, st1)
	write(t, s2, "c", 6)
	// Crash again before any new checkpoint: st1 is restored once more, after
	// s2 already re-committed it and initialized the other ids.

	s3 := open(t, cfg, 0, st1)
	defer s3.Close()
	write(t, s3, "d", 6)
	preCommit(t, s3, 2)
	commit(t, s3, 2)

	check(t, "read_committed", readAll(t, c, true), want("a*6", "d*6"))
}

func TestSubtasksUseSeparateIDs(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	cfg := testConfig(c)
	s0 := open(t, cfg, 0, nil)
	defer s0.Close()
	s1 := open(t, cfg, 1, nil) // must not fence subtask 0
	defer s1.Close()
	write(t, s0, "x", 4)
	write(t, s1, "y", 4)
	preCommit(t, s0, 1)
	preCommit(t, s1, 1)
	commit(t, s0, 1)
	commit(t, s1, 1)
	check(t, "read_committed", readAll(t, c, true), want("x*4", "y*4"))
}

func TestZombieIsFenced(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	cfg := testConfig(c)
	cfg.BatchSize = 1

	zombie := open(t, cfg, 0, nil)
	write(t, zombie, "z", 3)

	s := open(t, cfg, 0, nil) // the new attempt of the same subtask
	defer s.Close()
	write(t, s, "y", 3)

	if _, err := zombie.PreCommit(t.Context(), 1); err != nil {
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("zombie pre-commit: %v", err)
		}
	} else if err := zombie.Commit(t.Context(), 1); !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie commit: %v, want ErrFenced", err)
	}
	if err := zombie.Write(t.Context(), Message{Value: []byte("late")}); err == nil {
		t.Fatal("a fenced sink accepted a write")
	}

	preCommit(t, s, 1)
	commit(t, s, 1)
	check(t, "read_committed", readAll(t, c, true), want("y*3"))
}

func TestTooManyPendingTransactions(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	cfg := testConfig(c)
	cfg.PoolSize = 4 // allows one pending transaction when an epoch starts
	s1 := open(t, cfg, 0, nil)

	write(t, s1, "a", 3)
	preCommit(t, s1, 1)
	write(t, s1, "b", 3)
	st2 := preCommit(t, s1, 2) // checkpoint 1 failed: no Commit(1)
	err := s1.Write(t.Context(), Message{Value: []byte("c")})
	if !errors.Is(err, ErrTooManyPending) {
		t.Fatalf("write with two pending transactions: %v, want ErrTooManyPending", err)
	}
	t.Log(err)
	// The record was not written: the sink refuses to go on.
	if _, err := s1.PreCommit(t.Context(), 3); !errors.Is(err, ErrTooManyPending) {
		t.Fatalf("pre-commit after a rejected write: %v", err)
	}

	// Checkpoint 2 completed, so the runtime restores it.
	s2 := open(t, cfg, 0, st2)
	defer s2.Close()
	write(t, s2, "c", 3)
	preCommit(t, s2, 3)
	commit(t, s2, 3)
	check(t, "read_committed", readAll(t, c, true), want("a*3", "b*3", "c*3"))
}

func TestRestoreAfterFailedCheckpoints(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	cfg := testConfig(c)
	cfg.PoolSize = 4
	s1 := open(t, cfg, 0, nil)
	write(t, s1, "a", 3)
	preCommit(t, s1, 1)
	write(t, s1, "b", 3)
	st2 := preCommit(t, s1, 2) // lists both transactions
	// Crash; checkpoint 2 had completed.

	s2 := open(t, cfg, 0, st2)
	defer s2.Close()
	// Both restored ids keep their epochs until checkpoint 4 completes, and
	// the two other ids carry epochs 3 and 4.
	write(t, s2, "c", 3)
	preCommit(t, s2, 3)
	write(t, s2, "d", 3)
	preCommit(t, s2, 4)
	commit(t, s2, 3)
	commit(t, s2, 4)
	write(t, s2, "e", 3)
	preCommit(t, s2, 5)
	commit(t, s2, 5)
	check(t, "read_committed", readAll(t, c, true), want("a*3", "b*3", "c*3", "d*3", "e*3"))
}

func TestAtLeastOnce(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	cfg := testConfig(c)
	cfg.Mode = AtLeastOnce
	cfg.TransactionalIDPrefix = ""
	cfg.BatchSize = 4
	s := open(t, cfg, 0, nil)
	defer s.Close()
	write(t, s, "a", 10)
	if st := preCommit(t, s, 1); st != nil {
		t.Fatalf("at-least-once state %q", st)
	}
	commit(t, s, 1)
	check(t, "read_committed", readAll(t, c, true), want("a*10"))
}

type order struct {
	ID   int
	Item string
}

func TestTypedRecords(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	cfg := SinkConfig[order]{
		Brokers:               c.ListenAddrs(),
		Topic:                 topic,
		TransactionalIDPrefix: "orders",
		Logger:                quiet,
	}
	if _, err := newSinkInstance(cfg); err == nil {
		t.Fatal("New without Encode for a non-Message type succeeded")
	}
	cfg.Encode = func(o order) (Message, error) {
		return Message{Key: strconv.AppendInt(nil, int64(o.ID), 10), Value: []byte(o.Item)}, nil
	}
	s := open(t, cfg, 0, nil)
	defer s.Close()
	for i := range 5 {
		if err := s.Write(t.Context(), order{i, fmt.Sprintf("o%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	preCommit(t, s, 1)
	commit(t, s, 1)
	check(t, "read_committed", readAll(t, c, true), want("o*5"))
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestOpenWarnsAboutShortTransactionTimeout(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	// The checkpoint interval is the job's, from TaskInfo: 3×(3m+30s)
	// exceeds 10m.
	for _, tc := range []struct {
		timeout, interval time.Duration
		warn              bool
	}{{time.Minute, 30 * time.Second, true}, {10 * time.Minute, 30 * time.Second, false}, {10 * time.Minute, 3 * time.Minute, true}} {
		var logs syncBuffer
		cfg := testConfig(c)
		cfg.TransactionTimeout = tc.timeout
		cfg.ExpectedRestartTime = 30 * time.Second
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		ti := info(0)
		ti.CheckpointInterval = tc.interval
		s := openWith(t, cfg, ti, nil)
		_ = s.Close()
		if got := strings.Contains(logs.String(), "TransactionTimeout is less than"); got != tc.warn {
			t.Errorf("timeout %v, checkpoint interval %v: warned %v, want %v; logs:\n%s", tc.timeout, tc.interval, got, tc.warn, logs.String())
		}
	}
}

func TestSinkConfigValidate(t *testing.T) {
	base := SinkConfig[Message]{Brokers: []string{"b:1"}, Topic: "t", TransactionalIDPrefix: "p"}
	if _, err := newSinkInstance(base); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mut := range map[string]func(*SinkConfig[Message]){
		"no brokers":   func(c *SinkConfig[Message]) { c.Brokers = nil },
		"no topic":     func(c *SinkConfig[Message]) { c.Topic = "" },
		"no prefix":    func(c *SinkConfig[Message]) { c.TransactionalIDPrefix = "" },
		"small pool":   func(c *SinkConfig[Message]) { c.PoolSize = 3 },
		"bad mode":     func(c *SinkConfig[Message]) { c.Mode = 7 },
		"tiny timeout": func(c *SinkConfig[Message]) { c.TransactionTimeout = time.Millisecond },
		"negative in-flight bound": func(c *SinkConfig[Message]) {
			c.Mode, c.MaxInFlightBytes = AtLeastOnce, -1
		},
		"timeout within restart time": func(c *SinkConfig[Message]) {
			c.TransactionTimeout, c.ExpectedRestartTime = time.Minute, time.Minute
		},
	} {
		cfg := base
		mut(&cfg)
		if _, err := newSinkInstance(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestHashPartitionerMatchesKafka(t *testing.T) {
	p := HashPartitioner(0)
	ref := kafkago.Murmur2Balancer{Consistent: true}
	parts := []int{0, 1, 2, 3, 4, 5, 6}
	for i := range 200 {
		key := []byte(strings.Repeat("k", i%9) + strconv.Itoa(i))
		if got, want := p(key, len(parts)), ref.Balance(kafkago.Message{Key: key}, parts...); got != want {
			t.Fatalf("key %q: partition %d, kafka-go's murmur2 says %d", key, got, want)
		}
	}
	// Java's murmur2 of "21" (a value from Kafka's own test suite) is -973932308.
	if got := int32(murmur2([]byte("21"))); got != -973932308 {
		t.Fatalf("murmur2(21) = %d", got)
	}
	seen := map[int]bool{}
	for range 3 {
		seen[p(nil, 3)] = true
	}
	if len(seen) != 3 {
		t.Fatalf("nil keys are not round robin: %v", seen)
	}
}

// TestSlotReusedOnlyAfterLaterCheckpoint checks the rule that keeps re-commits
// idempotent: a committed id keeps its epoch while the latest completed
// checkpoint's state lists it.
func TestSlotReusedOnlyAfterLaterCheckpoint(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	s := open(t, testConfig(c), 0, nil)
	defer s.Close()
	w := s.w.(*exactlyOnce)
	states := func() []slotState {
		var st []slotState
		for _, sl := range w.slots {
			st = append(st, sl.state)
		}
		return st
	}
	expect := func(what string, want ...slotState) {
		t.Helper()
		if got := states(); !slices.Equal(got, want) {
			t.Fatalf("%s: slot states %v, want %v", what, got, want)
		}
	}
	F, W, P, C := slotFree, slotWriting, slotPending, slotCommitted
	write(t, s, "a", 1)
	expect("writing epoch 1", W, F, F, F, F, F)
	preCommit(t, s, 1)
	write(t, s, "b", 1)
	expect("epoch 2", P, W, F, F, F, F)
	commit(t, s, 1)
	expect("checkpoint 1 complete", C, W, F, F, F, F)
	preCommit(t, s, 2)
	expect("checkpoint 2 pre-committed", C, P, F, F, F, F)
	commit(t, s, 2)
	expect("checkpoint 2 complete", F, C, F, F, F, F)
	check(t, "read_committed", readAll(t, c, true), want("a*1", "b*1"))
}

// newSinkInstance makes one sink instance of cfg, as NewSink's factory
// does for a subtask, unwrapped: its Open drives it through the same
// runtime.NewTwoPhaseSink that the factory returns in exactly-once mode.
func newSinkInstance[T any](cfg SinkConfig[T]) (*sink[T], error) {
	if _, err := NewSink(cfg); err != nil {
		return nil, err
	}
	cfg.EnsureDefaults()
	return &sink[T]{cfg: cfg, encode: cfg.encoder()}, nil
}

// groupInfo is the TaskInfo of task 0 of group "g" in epoch, whose older
// epochs are prior.
func groupInfo(epoch uint64, prior ...uint64) runtime.TaskInfo {
	ti := info(0)
	ti.Group, ti.Epoch, ti.PriorEpochs = "g", epoch, prior
	return ti
}

// An owner of a task that has not yet learnt that another member took the
// task over starts a transaction at its next checkpoint epoch: that must
// not abort the new owner's transaction of a completed checkpoint (ids
// shared across owners did: the new owner's commit failed as fenced, with
// the checkpoint's output lost).
func TestOlderOwnerCannotFenceNewOwner(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	cfg := testConfig(c)
	cfg.BatchSize, cfg.PoolSize = 1, minPoolSize

	old := openWith(t, cfg, groupInfo(1), nil)
	var st []byte
	const restored = minPoolSize + 2 // every slot used once: each next use initializes its id again
	for n := uint64(1); n <= restored; n++ {
		write(t, old, fmt.Sprintf("a%d-", n), 1)
		st = preCommit(t, old, n)
		commit(t, old, n)
	}

	s := openWith(t, cfg, groupInfo(2, 1), st)
	defer s.Close()
	write(t, s, "b", 2)
	preCommit(t, s, restored+1)
	pending := -1
	for _, sl := range s.w.(*exactlyOnce).slots {
		if sl.state == slotPending {
			pending = sl.index
		}
	}
	// The old owner's next transaction takes the slot of the new owner's
	// pending one: with ids per task, the same transactional id.
	ow := old.w.(*exactlyOnce)
	if pending < 0 || ow.slots[pending].state != slotFree || ow.slots[pending].fresh {
		t.Fatalf("test setup: the new owner's pending slot %d must be free and used before in the old owner", pending)
	}
	ow.next = pending
	write(t, old, "late", 1)
	commit(t, s, restored+1)
	old.Close() // aborts "late"

	check(t, "read_committed", readAll(t, c, true), want("a1-*1", "a2-*1", "a3-*1", "a4-*1", "a5-*1", "a6-*1", "b*2"))
}

// A new owner fences the ids of the task's prior epochs: what an older
// owner left open is aborted, and it cannot commit.
func TestNewOwnerFencesPriorEpochs(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	cfg := testConfig(c)
	cfg.BatchSize = 1

	old := openWith(t, cfg, groupInfo(1), nil)
	write(t, old, "z", 3)

	s := openWith(t, cfg, groupInfo(3, 1, 2), nil)
	defer s.Close()
	if _, err := old.PreCommit(t.Context(), 1); err != nil {
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("old owner's pre-commit: %v", err)
		}
	} else if err := old.Commit(t.Context(), 1); !errors.Is(err, ErrFenced) {
		t.Fatalf("old owner's commit: %v, want ErrFenced", err)
	}

	write(t, s, "y", 3)
	preCommit(t, s, 1)
	commit(t, s, 1)
	check(t, "read_committed", readAll(t, c, true), want("y*3"))
}
