package kafka

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/connectors/discard"
	"github.com/weirstream/weir/runtime"
)

// groupOffsets returns the offsets the group holds for topic's partitions,
// as lag tools read them (OffsetFetch), keyed like a source snapshot; a
// partition without a committed offset is left out.
func groupOffsets(t *testing.T, addr, group, topic string, partitions int) map[topicPartition]int64 {
	t.Helper()
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	cl := &kafkago.Client{Addr: kafkago.TCP(addr)}
	resp, err := cl.OffsetFetch(testCtx(t), &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err == nil {
		err = resp.Error
	}
	if errors.Is(err, kafkago.GroupIdNotFound) { // kfake's answer before the first commit
		return nil
	}
	if err != nil {
		t.Fatalf("fetch the offsets of group %q: %v", group, err)
	}
	out := map[topicPartition]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("fetch the offsets of group %q: %s/%d: %v", group, topic, p.Partition, p.Error)
		}
		if p.CommittedOffset >= 0 {
			out[topicPartition{topic, int32(p.Partition)}] = p.CommittedOffset
		}
	}
	return out
}

// snapshotOffsets returns the next offsets a snapshot holds.
func snapshotOffsets(t *testing.T, s *source[string]) map[topicPartition]int64 {
	t.Helper()
	b, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	st, err := sourceDecodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	return st.next
}

func sameOffsets(t *testing.T, what string, got, want map[topicPartition]int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: group holds %v, want %v", what, got, want)
	}
	for tp, o := range want {
		if got[tp] != o {
			t.Fatalf("%s: group holds %v, want %v", what, got, want)
		}
	}
}

// TestCommitGroupHoldsCompletedCheckpoint checks that the group holds the
// offsets of the last completed checkpoint: not those of a snapshot whose
// checkpoint has not completed yet.
func TestCommitGroupHoldsCompletedCheckpoint(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("in", 3); err != nil {
		t.Fatal(err)
	}
	produce(t, b.Addr(), "in", 5, values("a", 30)...)
	cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"in"}, Deserializer: asString, CommitGroup: "lag"}
	s := openSource(t, cfg, task(0, 1), nil)

	readUntil(t, 30, s)
	first := snapshotOffsets(t, s)
	if got := groupOffsets(t, b.Addr(), "lag", "in", 3); len(got) != 0 {
		t.Fatalf("group holds %v before any checkpoint completed", got)
	}
	if err := s.CheckpointComplete(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	sameOffsets(t, "checkpoint 1 complete", groupOffsets(t, b.Addr(), "lag", "in", 3), first)

	produce(t, b.Addr(), "in", 5, values("b", 30)...)
	readUntil(t, 30, s)
	second := snapshotOffsets(t, s)
	sameOffsets(t, "checkpoint 2 snapshotted, not complete", groupOffsets(t, b.Addr(), "lag", "in", 3), first)
	if err := s.CheckpointComplete(testCtx(t), 2); err != nil {
		t.Fatal(err)
	}
	sameOffsets(t, "checkpoint 2 complete", groupOffsets(t, b.Addr(), "lag", "in", 3), second)
}

// TestCommitGroupInJob checks that the runtime calls the hook: after a
// StopAtEnd job, the group holds the end of every partition.
func TestCommitGroupInJob(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("in", 3); err != nil {
		t.Fatal(err)
	}
	produce(t, b.Addr(), "in", 10, values("a", 100)...)
	src, err := NewSource(SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"in"}, Deserializer: asString,
		Mode: StopAtEnd, CommitGroup: "lag"})
	if err != nil {
		t.Fatal(err)
	}
	sink, err := discard.NewSink(discard.SinkConfig[string]{})
	if err != nil {
		t.Fatal(err)
	}
	p := runtime.NewPipeline("commit-group")
	runtime.To(runtime.From(p, "in", src), "out", sink)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := runtime.Run(ctx, p, runtime.Config{CheckpointDir: t.TempDir(), CheckpointInterval: 20 * time.Millisecond,
		Parallelism: 2, Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	got := groupOffsets(t, b.Addr(), "lag", "in", 3)
	var total int64
	for _, o := range got {
		total += o
	}
	if len(got) != 3 || total != 100 {
		t.Fatalf("group holds %v after the job, want the end of all 3 partitions (100 records)", got)
	}
}

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCommitGroupFailureIsLogged checks that a refused commit is logged
// and neither fails CheckpointComplete nor stops reading.
func TestCommitGroupFailureIsLogged(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "in"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.ControlKey(int16(kmsg.OffsetCommit), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kr.(*kmsg.OffsetCommitRequest)
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		resp.Version = req.Version
		for _, rt := range req.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.GroupAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	addr := c.ListenAddrs()[0]
	produce(t, addr, "in", 5, values("a", 10)...)
	var logs lockedBuffer
	info := task(0, 1)
	info.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	cfg := SourceConfig[string]{Brokers: []string{addr}, Topics: []string{"in"}, Deserializer: asString, CommitGroup: "lag"}
	s := openSource(t, cfg, info, nil)
	readUntil(t, 10, s)
	snapshotOffsets(t, s)
	if err := s.CheckpointComplete(testCtx(t), 1); err != nil {
		t.Fatalf("CheckpointComplete failed on a refused commit: %v", err)
	}
	for _, want := range []string{"level=WARN", "could not commit", "group=lag", "checkpoint=1", kerr.GroupAuthorizationFailed.Message} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("log lacks %q:\n%s", want, logs.String())
		}
	}
	produce(t, addr, "in", 5, values("b", 10)...)
	readUntil(t, 10, s)
}

// TestPurgeReportsPartitionErrors: a purge the broker refuses for one
// partition returns an error naming that partition only, and the purge of
// nothing (no offset past 0) sends no request.
func TestPurgeReportsPartitionErrors(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "in"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var requests atomic.Int32
	c.ControlKey(int16(kmsg.DeleteRecords), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		requests.Add(1)
		req := kr.(*kmsg.DeleteRecordsRequest)
		resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
		resp.Version = req.Version
		for _, rt := range req.Topics {
			st := kmsg.NewDeleteRecordsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewDeleteRecordsResponseTopicPartition()
				sp.Partition, sp.LowWatermark = rp.Partition, rp.Offset
				if rp.Partition == 1 {
					sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	s := openSource(t, SourceConfig[string]{Brokers: c.ListenAddrs(), Topics: []string{"in"}, Deserializer: asString}, task(0, 1), nil)
	at := func(p int32, next int64) snapshotOffset {
		return snapshotOffset{topicPartition: topicPartition{"in", p}, next: next}
	}
	if err := s.purgeRead(testCtx(t), []snapshotOffset{at(0, 0), at(1, 0)}); err != nil || requests.Load() != 0 {
		t.Fatalf("purge to offset 0: err %v, %d requests; want none", err, requests.Load())
	}
	err = s.purgeRead(testCtx(t), []snapshotOffset{at(0, 3), at(1, 3)})
	if err == nil || !strings.Contains(err.Error(), "in/1: "+kerr.TopicAuthorizationFailed.Message) || strings.Contains(err.Error(), "in/0") {
		t.Fatalf("purge refused for partition 1: err %v", err)
	}
}
