package kafka

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/runtime"
)

// joined returns a cluster of c that joined group "g" alone.
func joined(t *testing.T, c *kfake.Cluster) runtime.Cluster {
	t.Helper()
	cl := newTestCluster(t, c)
	b := newBoard()
	_, firstJoin := join(t, cl, b.request("a", "", time.Second, nil))
	b.waitFor(t, "a owns all tasks", rebalanceBudget(time.Second, firstJoin), b.split(map[string]int{"a": 8}))
	return cl
}

func exchange(t *testing.T, cl runtime.Cluster, name string, tasks int) (runtime.SinkFactory[runtime.ExchangeRecord], runtime.SourceFactory[runtime.ExchangeRecord]) {
	t.Helper()
	sink, source, err := cl.Exchange(testCtx(t), name, tasks)
	if err != nil {
		t.Fatal(err)
	}
	return sink, source
}

func groupTask(subtask, tasks int) runtime.TaskInfo {
	return runtime.TaskInfo{Job: "test", Operator: "exchange", Subtask: subtask, Parallelism: tasks, Group: "g", Logger: quiet}
}

// exchangeRecords reads from every source in turn until they emitted n
// records in all, and returns each source's records as "<task> <key>
// <value> <timestamp>".
func exchangeRecords(t *testing.T, n int, srcs []runtime.Source[runtime.ExchangeRecord]) [][]string {
	t.Helper()
	got := make([][]string, len(srcs))
	total := 0
	for round := 0; total < n; round++ {
		if round == 100 {
			t.Fatalf("read %d of %d records after %d rounds: %q", total, n, round, got)
		}
		for i, s := range srcs {
			c := runtime.CollectorFunc[runtime.ExchangeRecord](func(r runtime.ExchangeRecord) {
				ts := fmt.Sprint(r.Timestamp)
				if r.Timestamp == runtime.NoTimestamp {
					ts = "none"
				}
				got[i] = append(got[i], fmt.Sprintf("%d %s %s %s", r.Task, r.Key, r.Value, ts))
				total++
			})
			if err := s.Read(testCtx(t), c); err != nil {
				t.Fatalf("Read of subtask %d: %v", i, err)
			}
		}
	}
	return got
}

// writeExchange writes one record to every task, with value <prefix><task>,
// through one buffer it overwrites after each Write (the sink must copy).
func writeExchange(t *testing.T, s runtime.Sink[runtime.ExchangeRecord], prefix string, tasks int) {
	t.Helper()
	buf := make([]byte, 0, 64)
	for task := range tasks {
		buf = fmt.Appendf(buf[:0], "k%d%s%d", task, prefix, task)
		k := len(fmt.Sprintf("k%d", task))
		ts := int64(1000 + task)
		if task == 0 {
			ts = runtime.NoTimestamp
		}
		if err := s.Write(testCtx(t), runtime.ExchangeRecord{Task: task, Key: buf[:k], Value: buf[k:], Timestamp: ts}); err != nil {
			t.Fatal(err)
		}
		for i := range buf {
			buf[i] = '#'
		}
	}
}

func wantExchange(prefix string, tasks int) [][]string {
	out := make([][]string, tasks)
	for task := range tasks {
		ts := fmt.Sprint(1000 + task)
		if task == 0 {
			ts = "none"
		}
		out[task] = []string{fmt.Sprintf("%d k%d %s%d %s", task, task, prefix, task, ts)}
	}
	return out
}

// TestExchangeRoundTrip: an exchange's sink writes each record to the task
// it names, in a transaction of the checkpoint; each task's source reads
// its own partition only, read_committed: a pre-committed record is not
// visible before Commit, an aborted one never; keys, values and event
// times (none included) cross unchanged.
func TestExchangeRoundTrip(t *testing.T) {
	c := groupBroker(t)
	cl := joined(t, c)
	const tasks = 8
	newSink, newSource := exchange(t, cl, "by-customer", tasks)
	srcs := make([]runtime.Source[runtime.ExchangeRecord], tasks)
	for i := range srcs {
		s, err := newSource()
		if err != nil {
			t.Fatal(err)
		}
		info := groupTask(i, tasks)
		if i%2 == 1 {
			info.Group = "" // an exchange's source reads by index all the same
		}
		if err := s.Open(testCtx(t), info, nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		srcs[i] = s
	}
	sink := func(restored []byte) runtime.Sink[runtime.ExchangeRecord] {
		s, err := newSink()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Open(testCtx(t), groupTask(5, tasks), restored); err != nil {
			t.Fatal(err)
		}
		return s
	}

	s := sink(nil)
	writeExchange(t, s, "a", tasks)
	st, err := s.PreCommit(testCtx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, src := range srcs {
		if err := src.Read(testCtx(t), runtime.CollectorFunc[runtime.ExchangeRecord](func(r runtime.ExchangeRecord) {
			t.Errorf("task %d read %q of a transaction not committed", i, r.Value)
		})); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	if got, want := exchangeRecords(t, tasks, srcs), wantExchange("a", tasks); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("after commit, the tasks read\n%q, want\n%q", got, want)
	}

	writeExchange(t, s, "x", tasks) // aborted: the sink stops before the next checkpoint
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = sink(st)
	defer s.Close()
	writeExchange(t, s, "b", tasks)
	if _, err := s.PreCommit(testCtx(t), 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(testCtx(t), 2); err != nil {
		t.Fatal(err)
	}
	if got, want := exchangeRecords(t, tasks, srcs), wantExchange("b", tasks); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("after the restart, the tasks read\n%q, want\n%q (nothing of the aborted x)", got, want)
	}
}

// TestExchangeTopic: Exchange creates <group>-<name>-repartition with one
// partition per task, accepts it when it exists with that count, and
// refuses one with another count, a name Kafka does not take, and a call
// before Join.
func TestExchangeTopic(t *testing.T) {
	c := groupBroker(t, kfake.SeedTopics(3, "g-old-repartition"))
	if _, _, err := newTestCluster(t, c).Exchange(testCtx(t), "x", 8); err == nil || !strings.Contains(err.Error(), "Exchange before Join") {
		t.Errorf("before Join: %v", err)
	}
	cl := joined(t, c)
	exchange(t, cl, "x", 8)
	exchange(t, cl, "x", 8)
	if n := partitionCount(t, c, "g-x-repartition"); n != 8 {
		t.Errorf("g-x-repartition has %d partitions, want 8", n)
	}
	// Another process of the job finds the topic made.
	other := newTestCluster(t, c)
	other.(*cluster).group = "g"
	exchange(t, other, "x", 8)

	_, _, err := cl.Exchange(testCtx(t), "old", 8)
	if !errors.Is(err, ErrPartitionCount) || !strings.Contains(err.Error(), `"g-old-repartition" has 3 partitions, but the job has 8 tasks`) {
		t.Errorf("wrong partition count: %v", err)
	}
	if _, _, err := cl.Exchange(testCtx(t), "by customer", 8); err == nil || !strings.Contains(err.Error(), `has ' '`) {
		t.Errorf("bad name: %v", err)
	}
}

// partitionCount returns the partition count of topic.
func partitionCount(t *testing.T, c *kfake.Cluster, topic string) int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	counts, err := (&cluster{cfg: ClusterConfig{Brokers: c.ListenAddrs()}}).partitionCounts(testCtx(t), cl, topic)
	if err != nil {
		t.Fatal(err)
	}
	return counts[topic]
}

// TestSourceGroupModeReadsPartitionOfTask: in group mode subtask i reads
// partition i of the topic, not the partitions the hash assigns, and a
// topic whose partition count is not the task count is refused.
func TestSourceGroupModeReadsPartitionOfTask(t *testing.T) {
	const tasks, subtask = 4, 2
	name := ""
	for _, n := range []string{"in", "input", "events", "clicks", "orders-in"} {
		if owner(topicPartition{n, subtask}, tasks) != subtask {
			name = n // the hash gives partition 2 to another subtask
			break
		}
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(tasks, name))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for p := range int32(tasks) {
		produceTo(t, c.ListenAddrs()[0], name, p, fmt.Sprintf("p%d", p))
	}
	cfg := SourceConfig[string]{Brokers: c.ListenAddrs(), Topics: []string{name}, Deserializer: asString, Mode: StopAtEnd}
	info := task(subtask, tasks)
	info.Group = "g"
	if got := drain(t, openSource(t, cfg, info, nil)); !slices.Equal(got, []string{"p2"}) {
		t.Errorf("task %d read %q, want partition %d's [p2]", subtask, got, subtask)
	}

	s, err := newSourceInstance(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	info.Parallelism = 3
	err = s.Open(testCtx(t), info, nil)
	if !errors.Is(err, ErrPartitionCount) || !strings.Contains(err.Error(), fmt.Sprintf("topic %q has 4 partitions, but the job has 3 tasks", name)) {
		t.Errorf("3 tasks over 4 partitions: %v", err)
	}
}

// TestSinkGroupModeNamesTransactionalIDs: in group mode the transactional
// ids name the group, the task and its epoch, so two jobs sharing a broker and a
// prefix do not fence each other; without a group they are as before.
func TestSinkGroupModeNamesTransactionalIDs(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	txid := func(info runtime.TaskInfo) string {
		s := openWith(t, testConfig(c), info, nil)
		defer s.Close()
		return s.w.(*exactlyOnce).slots[1].txid
	}
	inGroup := info(3)
	inGroup.Group, inGroup.Parallelism, inGroup.Epoch = "g", 4, 7
	if got := txid(inGroup); got != "weir-test-g-3-e7-1" {
		t.Errorf("group mode: transactional id %q, want weir-test-g-3-e7-1", got)
	}
	if got := txid(info(1)); got != "weir-test-1-1" {
		t.Errorf("without a group: transactional id %q, want weir-test-1-1", got)
	}
}

// TestExchangeCodecAllocations: the exchange's encoder copies records into
// shared buffers (an allocation per 64 KiB, not per record) and its decoder
// allocates nothing, so the exchange keeps the sink's and source's hot
// paths as they are.
func TestExchangeCodecAllocations(t *testing.T) {
	encode := exchangeEncoder()
	rec := runtime.ExchangeRecord{Task: 1, Key: []byte("customer-42"), Value: make([]byte, 100), Timestamp: 7}
	if n := testing.AllocsPerRun(1000, func() { _, _ = encode(rec) }); n > 0.01 {
		t.Errorf("encoder: %v allocations a record", n)
	}
	r := Record{Partition: 3, Key: rec.Key, Value: rec.Value, Time: time.UnixMilli(7)}
	if n := testing.AllocsPerRun(1000, func() { _, _ = exchangeRecord(r) }); n > 0 {
		t.Errorf("decoder: %v allocations a record", n)
	}
}

// TestSourceGroupModeRefusesAddedPartitions: a partition added to an input
// topic while a job spread over processes runs belongs to no task; the
// source's discovery fails the job, naming the topic, instead of leaving
// the partition unread.
func TestSourceGroupModeRefusesAddedPartitions(t *testing.T) {
	const tasks = 2
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(tasks, "in"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := SourceConfig[string]{Brokers: c.ListenAddrs(), Topics: []string{"in"}, Deserializer: asString,
		PartitionDiscoveryInterval: time.Nanosecond} // discover at every Read
	info := task(0, tasks)
	info.Group = "g"
	s := openSource(t, cfg, info, nil)
	addPartitions(t, c.ListenAddrs()[0], "in", tasks+1)
	err = s.Read(testCtx(t), runtime.CollectorFunc[string](func(string) {}))
	if !errors.Is(err, ErrPartitionCount) || !strings.Contains(err.Error(), `topic "in" has 3 partitions, but the job has 2 tasks`) {
		t.Errorf("Read after a partition was added: %v", err)
	}
}

// TestExchangeMarkers: the watermark markers of an exchange cross the
// repartition topic whole (kind, sender, watermark, MaxWatermark
// included), in order with records and in the same transactions; and a
// marker header that does not decode is an error naming the record, and
// so is an event time Kafka cannot carry.
func TestExchangeMarkers(t *testing.T) {
	c := groupBroker(t)
	cl := joined(t, c)
	const tasks, sender = 2, 1
	newSink, newSource := exchange(t, cl, "windows", tasks)
	s, err := newSink()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(testCtx(t), groupTask(sender, tasks), nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var want [][]string
	for task := range tasks {
		recs := []runtime.ExchangeRecord{
			{Task: task, Key: []byte("k"), Value: []byte("v"), Timestamp: 7},
			{Task: task, Marker: runtime.WatermarkMarker, Sender: sender, Timestamp: -5},
			{Task: task, Marker: runtime.IdleMarker, Sender: sender, Timestamp: -5},
			{Task: task, Marker: runtime.WatermarkMarker, Sender: sender, Timestamp: runtime.MaxWatermark},
		}
		var w []string
		for _, r := range recs {
			if err := s.Write(testCtx(t), r); err != nil {
				t.Fatal(err)
			}
			w = append(w, markerString(r))
		}
		want = append(want, w)
	}
	if _, err := s.PreCommit(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	got := make([][]string, tasks)
	for i := range tasks {
		src, err := newSource()
		if err != nil {
			t.Fatal(err)
		}
		if err := src.Open(testCtx(t), groupTask(i, tasks), nil); err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		for round := 0; len(got[i]) < len(want[i]); round++ {
			if round == 100 {
				t.Fatalf("task %d read %q after %d rounds, want %q", i, got[i], round, want[i])
			}
			if err := src.Read(testCtx(t), runtime.CollectorFunc[runtime.ExchangeRecord](func(r runtime.ExchangeRecord) {
				got[i] = append(got[i], markerString(r))
			})); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("the tasks read\n%q, want\n%q", got, want)
	}

	if _, err := exchangeEncoder()(runtime.ExchangeRecord{Timestamp: -1}); err == nil || !strings.Contains(err.Error(), "event time -1 ms (before 1970) cannot cross a repartition topic") {
		t.Errorf("event time before 1970: err = %v", err)
	}
	bad := Record{Topic: "t", Partition: 1, Offset: 9, Value: []byte{1, 2}, Headers: []Header{{Key: markerHeader, Value: []byte{1}}}}
	if _, err := exchangeRecord(bad); err == nil || !strings.Contains(err.Error(), "t/1 at offset 9: unreadable watermark marker") {
		t.Errorf("bad marker: err = %v", err)
	}
}

// markerString formats an ExchangeRecord, marker or record.
func markerString(r runtime.ExchangeRecord) string {
	return fmt.Sprintf("task %d key %q value %q ts %d marker %d sender %d", r.Task, r.Key, r.Value, r.Timestamp, r.Marker, r.Sender)
}

// topicConfig returns the value of the config name of topic, as the broker
// describes it.
func topicConfig(t *testing.T, c *kfake.Cluster, topic, name string) string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType, res.ResourceName, res.ConfigNames = kmsg.ConfigResourceTypeTopic, topic, []string{name}
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(testCtx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			t.Fatalf("describe configs of %s: %v", topic, err)
		}
		for _, cfg := range r.Configs {
			if cfg.Name == name && cfg.Value != nil {
				return *cfg.Value
			}
		}
	}
	return ""
}

// TestExchangeTopicRetention: a repartition topic keeps its records until
// the receiving tasks purge them: Exchange creates it with retention.ms=-1
// and cleanup.policy=delete, and sets them on one that exists (left by an
// earlier weir with the broker's 7 days).
func TestExchangeTopicRetention(t *testing.T) {
	c := groupBroker(t, kfake.SeedTopics(2, "g-old-repartition"))
	cl := joined(t, c)
	exchange(t, cl, "new", 2)
	exchange(t, cl, "old", 2)
	for _, topic := range []string{"g-new-repartition", "g-old-repartition"} {
		for name, want := range map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"} {
			if got := topicConfig(t, c, topic, name); got != want {
				t.Errorf("%s has %s=%q, want %q", topic, name, got, want)
			}
		}
	}
}

// logStarts returns the log start offset of each partition of topic.
func logStarts(t *testing.T, c *kfake.Cluster, topic string, partitions int) []int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = int32(p), -2 // earliest
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testCtx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int64, partitions)
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				t.Fatalf("list offsets of %s/%d: %v", topic, rp.Partition, err)
			}
			out[rp.Partition] = rp.Offset
		}
	}
	return out
}

// nextOffsets returns each task's next offset in its source's snapshot b.
func nextOffsets(t *testing.T, topic string, tasks int, b [][]byte) []int64 {
	t.Helper()
	out := make([]int64, tasks)
	for i := range tasks {
		st, err := sourceDecodeState(b[i])
		if err != nil {
			t.Fatal(err)
		}
		out[i] = st.next[topicPartition{topic, int32(i)}]
	}
	return out
}

// TestExchangePurge: once a checkpoint completes, each receiving task
// deletes the records of its partition below the offset the checkpoint
// completed before it holds, and not one further: a snapshot whose
// checkpoint has not completed purges nothing, a restore from the
// checkpoint before the newest complete one reads on from there, and one
// from before the purge fails with OffsetOutOfRange rather than skip the
// deleted records.
func TestExchangePurge(t *testing.T) {
	c := groupBroker(t)
	cl := joined(t, c)
	const tasks, topic = 2, "g-p-repartition"
	newSink, newSource := exchange(t, cl, "p", tasks)
	open := func(i int, restored []byte) runtime.Source[runtime.ExchangeRecord] {
		s, err := newSource()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Open(testCtx(t), groupTask(i, tasks), restored); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	srcs := []runtime.Source[runtime.ExchangeRecord]{open(0, nil), open(1, nil)}
	fresh := make([][]byte, tasks)
	for i, s := range srcs {
		var err error
		if fresh[i], err = s.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	sink, err := newSink()
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Open(testCtx(t), groupTask(0, tasks), nil); err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	send := func(prefix string, id uint64) {
		t.Helper()
		writeExchange(t, sink, prefix, tasks)
		if _, err := sink.PreCommit(testCtx(t), id); err != nil {
			t.Fatal(err)
		}
		if err := sink.Commit(testCtx(t), id); err != nil {
			t.Fatal(err)
		}
	}
	snapshot := func() [][]byte {
		t.Helper()
		out := make([][]byte, tasks)
		for i, s := range srcs {
			var err error
			if out[i], err = s.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}

	complete := func(id uint64) {
		t.Helper()
		for i, s := range srcs {
			if err := s.(runtime.CheckpointListener).CheckpointComplete(testCtx(t), id); err != nil {
				t.Fatalf("task %d: checkpoint %d complete: %v", i, id, err)
			}
		}
	}

	send("a", 1)
	exchangeRecords(t, tasks, srcs)
	snapshot()
	complete(1)
	if got := logStarts(t, c, topic, tasks); !slices.Equal(got, []int64{0, 0}) {
		t.Fatalf("after the first checkpoint completed, log starts are %v, want [0 0] (nothing completed before it)", got)
	}
	send("b", 2)
	exchangeRecords(t, tasks, srcs)
	second := snapshot()
	complete(2)
	send("c", 3)
	exchangeRecords(t, tasks, srcs)
	snapshot()
	complete(3)
	want := nextOffsets(t, topic, tasks, second)
	if got := logStarts(t, c, topic, tasks); !slices.Equal(got, want) || want[0] == 0 {
		t.Fatalf("after checkpoint 3 completed, log starts are %v, want checkpoint 2's next offsets %v", got, want)
	}
	send("d", 4)
	exchangeRecords(t, tasks, srcs)
	snapshot() // checkpoint 4, which never completes
	if got := logStarts(t, c, topic, tasks); !slices.Equal(got, want) {
		t.Fatalf("after checkpoint 4 was taken but not completed, log starts are %v, want checkpoint 2's %v", got, want)
	}

	restored := []runtime.Source[runtime.ExchangeRecord]{open(0, second[0]), open(1, second[1])}
	wantRead := wantExchange("c", tasks)
	for i, r := range wantExchange("d", tasks) {
		wantRead[i] = append(wantRead[i], r...)
	}
	if got := exchangeRecords(t, 2*tasks, restored); !slices.EqualFunc(got, wantRead, slices.Equal) {
		t.Errorf("restored from checkpoint 2, the tasks read\n%q, want\n%q", got, wantRead)
	}
	err = open(0, fresh[0]).Read(testCtx(t), runtime.CollectorFunc[runtime.ExchangeRecord](func(r runtime.ExchangeRecord) {
		t.Errorf("restored from before the purge, read %q", r.Value)
	}))
	if !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Errorf("restored from before the purge: Read returned %v, want OffsetOutOfRange", err)
	}
}
