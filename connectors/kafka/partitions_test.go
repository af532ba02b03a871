package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/runtime"
)

// addPartitions grows topic to total partitions, as kafka-topics.sh --alter
// does.
func addPartitions(t *testing.T, addr, topic string, total int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreatePartitionsRequest()
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = topic, int32(total)
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10_000
	resp, err := req.RequestWith(testCtx(t), cl)
	if err == nil && len(resp.Topics) == 1 {
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}
	if err != nil {
		t.Fatalf("grow %s to %d partitions: %v", topic, total, err)
	}
}

// produceTo writes values to one partition of topic.
func produceTo(t *testing.T, addr, topic string, partition int32, vals ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(vals))
	for i, v := range vals {
		recs[i] = &kgo.Record{Value: []byte(v), Partition: partition}
	}
	if err := cl.ProduceSync(testCtx(t), recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s/%d: %v", topic, partition, err)
	}
}

// readUntil reads from every source in turn until they emitted n records in
// all, failing after many rounds (each idle Read waits MaxWait).
func readUntil(t *testing.T, n int, srcs ...*source[string]) []string {
	t.Helper()
	var got []string
	c := runtime.CollectorFunc[string](func(v string) { got = append(got, v) })
	for round := 0; len(got) < n; round++ {
		if round == 200 {
			t.Fatalf("read %d of %d records after %d rounds: %v", len(got), n, round, got)
		}
		for _, s := range srcs {
			if err := s.Read(testCtx(t), c); err != nil {
				t.Fatalf("Read: %v", err)
			}
		}
	}
	return got
}

// snapshots returns the snapshot of every source, in order.
func snapshots(t *testing.T, srcs ...*source[string]) [][]byte {
	t.Helper()
	out := make([][]byte, len(srcs))
	for i, s := range srcs {
		var err error
		if out[i], err = s.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// owned fails unless the sources together own every partition of topics
// (name → partition count) exactly once.
func owned(t *testing.T, topics map[string]int, srcs ...*source[string]) {
	t.Helper()
	count := map[string]int{}
	for _, s := range srcs {
		for _, p := range s.parts {
			count[p.topicPartition.String()]++
		}
	}
	for topic, n := range topics {
		for p := range n {
			tp := fmt.Sprintf("%s/%d", topic, p)
			if count[tp] != 1 {
				t.Errorf("%s owned by %d subtasks, want 1", tp, count[tp])
			}
			delete(count, tp)
		}
	}
	for tp, n := range count {
		t.Errorf("unexpected partition %s owned %d times", tp, n)
	}
}

// TestRestoreAfterPartitionsAddedToFirstTopic adds a partition to the first
// of two topics between a checkpoint and its restore: every subtask must
// still own the partitions of its checkpoint (the owner of a partition must
// not depend on the other topics), the new partition must be owned once, and
// every record must be read once.
func TestRestoreAfterPartitionsAddedToFirstTopic(t *testing.T) {
	b := startBroker(t)
	for _, topic := range []string{"a", "b"} {
		if err := b.CreateTopic(topic, 2); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	put := func(topic string, p int32, prefix string) {
		vals := values(fmt.Sprintf("%s%d-%s", topic, p, prefix), 5)
		produceTo(t, b.Addr(), topic, p, vals...)
		want = append(want, vals...)
	}
	for _, topic := range []string{"a", "b"} {
		for p := range int32(2) {
			put(topic, p, "pre")
		}
	}
	cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"a", "b"}, Deserializer: asString, MaxWait: 20 * time.Millisecond}
	const parallelism = 2
	var first []*source[string]
	for sub := range parallelism {
		first = append(first, openSource(t, cfg, task(sub, parallelism), nil))
	}
	got := readUntil(t, len(want), first...)
	states := snapshots(t, first...)
	for _, s := range first {
		_ = s.Close()
	}

	addPartitions(t, b.Addr(), "a", 3)
	for _, topic := range []string{"a", "b"} {
		for p := range int32(2) {
			put(topic, p, "post")
		}
	}
	put("a", 2, "new")
	var second []*source[string]
	for sub := range parallelism {
		second = append(second, openSource(t, cfg, task(sub, parallelism), states[sub]))
	}
	owned(t, map[string]int{"a": 3, "b": 2}, second...)
	got = append(got, readUntil(t, len(want)-len(got), second...)...)
	readExactlyOnce(t, got, want)
}

// TestRestoreReadsNewPartitionsFromEarliest restores a Latest source after
// partitions were added to its topic: Latest applies to the job's first start
// only, and a partition the checkpoint does not know must be read from its
// earliest offset, or the records written to it before the restore are lost.
func TestRestoreReadsNewPartitionsFromEarliest(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("grow", 1); err != nil {
		t.Fatal(err)
	}
	produceTo(t, b.Addr(), "grow", 0, values("before", 5)...) // skipped by Latest
	cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"grow"}, Deserializer: asString,
		StartFrom: Latest, MaxWait: 20 * time.Millisecond}
	const parallelism = 2
	var states [][]byte
	for sub := range parallelism {
		s := openSource(t, cfg, task(sub, parallelism), nil)
		states = append(states, snapshots(t, s)...)
		_ = s.Close()
	}
	addPartitions(t, b.Addr(), "grow", 3)
	want := values("after", 5)
	produceTo(t, b.Addr(), "grow", 0, want...)
	for p := range int32(2) {
		vals := values(fmt.Sprintf("new%d", p+1), 5)
		produceTo(t, b.Addr(), "grow", p+1, vals...)
		want = append(want, vals...)
	}
	var srcs []*source[string]
	for sub := range parallelism {
		srcs = append(srcs, openSource(t, cfg, task(sub, parallelism), states[sub]))
	}
	owned(t, map[string]int{"grow": 3}, srcs...)
	readExactlyOnce(t, readUntil(t, len(want), srcs...), want)
}

// TestStopAtEndRestartKeepsEnds stops a bounded source mid-way, appends
// records and a partition, and restores it: the restored source must stop at
// the ends captured at the first start, so that the output is the output of
// an uninterrupted run.
func TestStopAtEndRestartKeepsEnds(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("bounded", 2); err != nil {
		t.Fatal(err)
	}
	want := values("in", 300)
	produce(t, b.Addr(), "bounded", 10, want...)
	cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"bounded"}, Deserializer: asString,
		Mode: StopAtEnd, MaxBytesPerRead: 256}
	s := openSource(t, cfg, task(0, 1), nil)
	var got []string
	c := runtime.CollectorFunc[string](func(v string) { got = append(got, v) })
	for range 2 {
		if err := s.Read(testCtx(t), c); err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
	if len(got) == 0 || len(got) >= len(want) {
		t.Fatalf("first run read %d of %d records; the test needs a stop mid-way", len(got), len(want))
	}
	state := snapshots(t, s)[0]
	_ = s.Close()

	produce(t, b.Addr(), "bounded", 10, values("late", 50)...)
	addPartitions(t, b.Addr(), "bounded", 3)
	produceTo(t, b.Addr(), "bounded", 2, values("late-new", 5)...)
	got = append(got, drain(t, openSource(t, cfg, task(0, 1), state))...)
	readExactlyOnce(t, got, want)
}

// TestDiscoversPartitionsWhileRunning grows a topic under running subtasks:
// with a discovery interval of 1 ns every Read discovers, and the records of
// the new partitions, written before any Read saw them, must arrive once
// without a restart. With a long interval nothing is discovered.
func TestDiscoversPartitionsWhileRunning(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("live", 2); err != nil {
		t.Fatal(err)
	}
	produceTo(t, b.Addr(), "live", 0, values("before", 5)...) // skipped by Latest
	cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"live"}, Deserializer: asString,
		StartFrom: Latest, MaxWait: 20 * time.Millisecond, PartitionDiscoveryInterval: time.Nanosecond}
	const parallelism = 2
	var srcs []*source[string]
	for sub := range parallelism {
		srcs = append(srcs, openSource(t, cfg, task(sub, parallelism), nil))
	}
	slow := cfg
	slow.PartitionDiscoveryInterval = time.Hour
	lazy := openSource(t, slow, task(0, 1), nil)
	for _, s := range append(srcs, lazy) { // running, at the end of the old partitions
		if err := s.Read(testCtx(t), runtime.CollectorFunc[string](func(v string) { t.Errorf("Latest read %q", v) })); err != nil {
			t.Fatal(err)
		}
	}

	// The runtime polls SourceLag from another goroutine while Read adds
	// partitions (-race checks the handover).
	stopLag := make(chan struct{})
	lagDone := make(chan struct{})
	go func() {
		defer close(lagDone)
		for {
			select {
			case <-stopLag:
				return
			default:
				for _, s := range srcs {
					_ = s.SourceLag()
				}
			}
		}
	}()
	addPartitions(t, b.Addr(), "live", 5)
	var want []string
	for p := range int32(5) {
		vals := values(fmt.Sprintf("p%d", p), 5)
		produceTo(t, b.Addr(), "live", p, vals...)
		want = append(want, vals...)
	}
	got := readUntil(t, len(want), srcs...)
	close(stopLag)
	<-lagDone
	owned(t, map[string]int{"live": 5}, srcs...)
	readExactlyOnce(t, got, want)

	// The records of the old partitions arrive; the new partitions wait
	// for the next discovery, an hour away.
	readExactlyOnce(t, readUntil(t, 10, lazy), append(values("p0", 5), values("p1", 5)...))
	if len(lazy.parts) != 2 {
		t.Errorf("with a discovery interval of 1 h, the source reads %d partitions after a few Reads, want 2", len(lazy.parts))
	}

	// A restart with Latest keeps reading where the checkpoint left off,
	// and reads partitions added since from their start.
	states := snapshots(t, srcs...)
	addPartitions(t, b.Addr(), "live", 6)
	want = values("p5", 5)
	produceTo(t, b.Addr(), "live", 5, want...)
	for p := range int32(5) {
		vals := values(fmt.Sprintf("q%d", p), 3)
		produceTo(t, b.Addr(), "live", p, vals...)
		want = append(want, vals...)
	}
	var restored []*source[string]
	for sub := range parallelism {
		_ = srcs[sub].Close()
		restored = append(restored, openSource(t, cfg, task(sub, parallelism), states[sub]))
	}
	owned(t, map[string]int{"live": 6}, restored...)
	readExactlyOnce(t, readUntil(t, len(want), restored...), want)
}

// TestAssignmentIgnoresOtherTopics pins the assignment rule (checkpoints
// depend on it) and checks that a partition's owner depends neither on the
// order of SourceConfig.Topics nor on the partition counts of other topics.
func TestAssignmentIgnoresOtherTopics(t *testing.T) {
	b := startBroker(t)
	topics := map[string]int{"a": 3, "b": 2, "orders": 4}
	for topic, n := range topics {
		if err := b.CreateTopic(topic, n); err != nil {
			t.Fatal(err)
		}
	}
	// assigned returns the owner of every partition, for parallelism 3.
	assigned := func(order ...string) map[string]int {
		t.Helper()
		cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: order, Deserializer: asString, Mode: StopAtEnd}
		var srcs []*source[string]
		out := map[string]int{}
		for sub := range 3 {
			s := openSource(t, cfg, task(sub, 3), nil)
			srcs = append(srcs, s)
			for _, p := range s.parts {
				out[p.topicPartition.String()] = sub
			}
		}
		owned(t, topics, srcs...)
		return out
	}
	// Partition p of a topic goes to (FNV-1a of the name + p) mod 3; the
	// hashes of "a", "b" and "orders" are 0xe40c292c, 0xe70c2de5 and
	// 0x325e96ec: 1, 1 and 2 mod 3.
	want := map[string]int{
		"a/0": 1, "a/1": 2, "a/2": 0,
		"b/0": 1, "b/1": 2,
		"orders/0": 2, "orders/1": 0, "orders/2": 1, "orders/3": 2,
	}
	if got := assigned("orders", "b", "a"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("assignment %v, want %v", got, want)
	}
	if got := assigned("a", "b", "orders"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("with topics in another order: assignment %v, want %v", got, want)
	}
	addPartitions(t, b.Addr(), "a", 5)
	addPartitions(t, b.Addr(), "b", 4)
	topics["a"], topics["b"] = 5, 4
	after := assigned("a", "b", "orders")
	for tp, sub := range want {
		if after[tp] != sub {
			t.Errorf("after adding partitions, %s is owned by subtask %d, before by %d", tp, after[tp], sub)
		}
	}
}

// TestRestoresVersion1Checkpoint restores snapshots of state version 1,
// whose partitions were assigned by their index in the sorted list of all
// partitions (for topics a/3 and b/2 and parallelism 3: a/0 b/0, a/1 b/1,
// a/2), then adds partitions and restores the next snapshots: the restored
// partitions keep their version-1 owners, the added ones are owned once, and
// every record is read once.
func TestRestoresVersion1Checkpoint(t *testing.T) {
	b := startBroker(t)
	counts := map[string]int{"a": 3, "b": 2}
	for topic, n := range counts {
		if err := b.CreateTopic(topic, n); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	put := func(topic string, p int32, prefix string, n int) {
		vals := values(fmt.Sprintf("%s%d-%s", topic, p, prefix), n)
		produceTo(t, b.Addr(), topic, p, vals...)
		want = append(want, vals...)
	}
	for topic, n := range counts {
		for p := range int32(n) {
			produceTo(t, b.Addr(), topic, p, values("read-before-the-checkpoint", 2)...)
			put(topic, p, "pre", 2)
		}
	}
	// Written by the version-1 encoder: next offset 2 for every partition.
	v1 := []string{
		"\x01\x02\x01a\x00\x04\x01b\x00\x04", // a/0 b/0
		"\x01\x02\x01a\x02\x04\x01b\x02\x04", // a/1 b/1
		"\x01\x01\x01a\x04\x04",              // a/2
	}
	cfg := SourceConfig[string]{Brokers: []string{b.Addr()}, Topics: []string{"a", "b"}, Deserializer: asString,
		StartFrom: Latest, MaxWait: 20 * time.Millisecond}
	var srcs []*source[string]
	for sub, st := range v1 {
		srcs = append(srcs, openSource(t, cfg, task(sub, 3), []byte(st)))
	}
	owned(t, counts, srcs...)
	got := readUntil(t, len(want), srcs...)
	states := snapshots(t, srcs...)

	addPartitions(t, b.Addr(), "a", 4)
	addPartitions(t, b.Addr(), "b", 3)
	counts = map[string]int{"a": 4, "b": 3}
	for topic, n := range counts {
		for p := range int32(n) {
			put(topic, p, "post", 3)
		}
	}
	for sub := range srcs {
		_ = srcs[sub].Close()
		srcs[sub] = openSource(t, cfg, task(sub, 3), states[sub])
	}
	owned(t, counts, srcs...)
	v1Owner := map[string]int{"a/0": 0, "b/0": 0, "a/1": 1, "b/1": 1, "a/2": 2}
	for sub, s := range srcs {
		for _, p := range s.parts {
			if o, ok := v1Owner[p.topicPartition.String()]; ok && o != sub {
				t.Errorf("subtask %d reads %s, which its version-1 owner, subtask %d, reads", sub, p.topicPartition, o)
			}
		}
	}
	got = append(got, readUntil(t, len(want)-len(got), srcs...)...)
	readExactlyOnce(t, got, want)
}
