package kafka

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/weirstream/weir/internal/kafkatxn/kafkatest"
)

// TestCheckPromise checks when the sink declines a checkpoint, with the
// clock moved by hand: once less than ExpectedRestartTime would be left
// before the transaction timeout of a transaction the checkpoint lists. Then
// it refuses to write and to pre-commit, but still commits what completed
// checkpoints promised.
func TestCheckPromise(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	cfg := testConfig(c)
	cfg.TransactionTimeout, cfg.ExpectedRestartTime = time.Minute, 10*time.Second
	s := open(t, cfg, 0, nil)
	defer s.Close()
	limit := cfg.TransactionTimeout - cfg.ExpectedRestartTime

	write(t, s, "a", 3)
	preCommit(t, s, 1)
	if err := s.CheckPromise(1); err != nil {
		t.Fatalf("a fresh transaction: %v", err)
	}
	commit(t, s, 1)
	write(t, s, "b", 3)
	preCommit(t, s, 2)
	var start time.Time
	for _, p := range s.promises.pending {
		if p.checkpoint == 2 {
			start = p.started
		}
	}
	if start.IsZero() {
		t.Fatal("the transaction of checkpoint 2 has no start time")
	}
	if err := s.promises.check(1, start.Add(time.Hour)); err != nil {
		t.Fatalf("checkpoint 1 lists no pending transaction, yet: %v", err)
	}
	if err := s.promises.check(2, start.Add(limit-time.Millisecond)); err != nil {
		t.Fatalf("just before the limit: %v", err)
	}
	err := s.promises.check(2, start.Add(limit))
	if !errors.Is(err, ErrTransactionTimeout) {
		t.Fatalf("at the limit: %v, want ErrTransactionTimeout", err)
	}
	t.Log(err)
	if err := s.CheckPromise(3); !errors.Is(err, ErrTransactionTimeout) {
		t.Fatalf("declining is sticky, but the next checkpoint got %v", err)
	}
	if err := s.Write(t.Context(), Message{Value: []byte("c")}); !errors.Is(err, ErrTransactionTimeout) {
		t.Fatalf("write after a declined checkpoint: %v", err)
	}
	if _, err := s.PreCommit(t.Context(), 3); !errors.Is(err, ErrTransactionTimeout) {
		t.Fatalf("pre-commit after a declined checkpoint: %v", err)
	}
	commit(t, s, 1) // a late Commit of a completed checkpoint is still done
	// Checkpoint 2's transaction stays open: read what checkpoint 1 made
	// visible.
	got := kafkatest.Values(kafkatest.Consume(t, c, topic, true, kafkatest.Count(3)), "")
	slices.Sort(got)
	check(t, "read_committed", got, want("a*3"))
}

// TestCreatesMissingTopic checks that the sink asks for its topic to be
// created, which brokers with auto-creation (the dev broker) do.
func TestCreatesMissingTopic(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(partitions))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s := open(t, testConfig(c), 0, nil)
	defer s.Close()
	if s.partitions != partitions {
		t.Fatalf("created topic has %d partitions, want the broker's default %d", s.partitions, partitions)
	}
	write(t, s, "a", 5)
	preCommit(t, s, 1)
	commit(t, s, 1)
	check(t, "read_committed", readAll(t, c, true), want("a*5"))
}

// TestMissingTopicSaysHowToCreateIt checks the error of a broker that does
// not create topics.
func TestMissingTopicSaysHowToCreateIt(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions) // no topics, no auto-creation
	s, err := newSinkInstance(testConfig(c))
	if err != nil {
		t.Fatal(err)
	}
	err = s.Open(t.Context(), info(0), nil)
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded without the topic")
	}
	for _, want := range []string{`topic "` + topic + `" does not exist`, "kafka-topics.sh", "--create --topic " + topic, "weir broker"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
