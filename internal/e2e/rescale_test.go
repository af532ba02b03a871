//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/checkpoint"
	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/internal/devbroker/devbrokertest"
	"github.com/weirstream/weir/internal/fault"
	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/internal/twophase"
	"github.com/weirstream/weir/weirtest"
)

// countArgs returns the flags of a start of the counting job (kafkajob)
// writing topic out, under transactional ids out-<subtask>-<slot>.
// A rate of 0 leaves the sources unpaced.
func (e *env) countArgs(out, ckpt string, parallelism, rate int) []string {
	args := []string{
		"--brokers", e.brokers[0],
		"--input-topic", "events",
		"--output-topic", out,
		"--transactional-id-prefix", out,
		"--checkpoint-dir", ckpt,
		"--checkpoint-interval", "100ms",
		"--parallelism", strconv.Itoa(parallelism),
		"--sink-batch", "100",
		"--max-bytes-per-read", "16384",
		"--metrics-addr", "",
		"--log-level", "info",
	}
	if rate > 0 {
		args = append(args, "--rate", strconv.Itoa(rate))
	}
	return args
}

// TestKafkaSinkTransactionsOfRemovedSubtasks kills the counting job at
// parallelism 3 at a point of the checkpoint protocol, with transactions
// pre-committed by every sink subtask and not committed, and restarts it at
// parallelism 1: the one new subtask must finish what old subtasks 1 and 2,
// which no longer exist, left. After the manifest (the checkpoint is
// complete), their transactions are what the checkpoint promised: they must
// be committed. Before it (the checkpoint never completed), they must be
// aborted and the records replayed. Either way their other transactional
// ids must be fenced, read_committed must show every input record exactly
// once with the right running counts, and no transaction of theirs may be
// left open (it would hold back read_committed consumers until the
// broker's transaction timeout).
func TestKafkaSinkTransactionsOfRemovedSubtasks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a job binary")
	}
	for _, tc := range []struct {
		point    string
		promised bool // the crash leaves the pre-committed transactions promised
	}{
		{"after-manifest:3", true},
		{"before-manifest:3", false},
	} {
		t.Run(tc.point, func(t *testing.T) {
			e := newEnv(t, devbrokertest.Config{}, 30_000, 60)
			out := "counts-removed"
			ckpt := t.TempDir()
			bin := jobBinary(t)
			p := startProc(t, bin, e.countArgs(out, ckpt, 3, 2000), fault.EnvVar+"="+tc.point)
			p.waitKilled(t, "start at parallelism 3, crashed at "+tc.point)

			restored := pendingTxns(t, ckpt)
			var removed []string // the transactional ids of old subtasks 1 and 2
			for sub := 1; sub < 3; sub++ {
				for slot := range kafka.DefaultPoolSize {
					removed = append(removed, fmt.Sprintf("%s-%d-%d", out, sub, slot))
				}
			}
			before := describeTxns(t, e.brokers, removed)
			// The transactions of subtasks 1 and 2 open at the crash: pre-committed
			// (promised by the restored checkpoint or not), or of the epoch after.
			var promised, unpromised []string
			for _, id := range removed {
				if before[id].State != "Ongoing" {
					continue
				}
				if _, ok := restored[id]; ok {
					promised = append(promised, id)
				} else {
					unpromised = append(unpromised, id)
				}
			}
			t.Logf("transactions of old subtasks 1 and 2 open at the crash: %v promised by the restored checkpoint, %v not", promised, unpromised)
			if tc.promised && len(promised) < 2 {
				t.Fatalf("%d open transactions of old subtasks 1 and 2 are promised by the restored checkpoint, want one each at least: the test would prove nothing", len(promised))
			}
			if !tc.promised && len(unpromised) < 2 {
				t.Fatalf("%d open transactions of old subtasks 1 and 2 are not promised by the restored checkpoint, want their pre-commits of the checkpoint that never completed: the test would prove nothing", len(unpromised))
			}

			p = startProc(t, bin, e.countArgs(out, ckpt, 1, 0))
			p.waitSuccess(t, "restart at parallelism 1")
			if o := e.check(t, out); !o.OK() {
				t.Fatalf("output under read_committed is not exactly the input:\n%s", report(o))
			}
			after := describeTxns(t, e.brokers, removed)
			commits := commitMarkers(t, e.brokers, out)
			for _, id := range removed {
				b, a := before[id], after[id]
				if b.ErrorCode != 0 {
					continue // never used
				}
				if a.State != "Empty" {
					t.Errorf("transactional id %s of a removed subtask: state %q after the restart, want no open transaction", id, a.State)
				}
				if txn, ok := restored[id]; ok {
					if !commits[[2]int64{txn.ProducerID, int64(txn.Epoch)}] {
						t.Errorf("transaction of %s (producer id %d, epoch %d) promised by the checkpoint has no commit marker", id, txn.ProducerID, txn.Epoch)
					}
					continue
				}
				if a.ProducerID == b.ProducerID && a.ProducerEpoch <= b.ProducerEpoch {
					t.Errorf("transactional id %s of a removed subtask not fenced: producer id %d epoch %d, as before the restart", id, a.ProducerID, a.ProducerEpoch)
				}
			}
		})
	}
}

// pendingTxns returns the transactions the latest checkpoint in ckpt lists
// as pending in the states of the sink "output" (the counting job's), by
// transactional id.
func pendingTxns(t *testing.T, ckpt string) map[string]pendingTxn {
	t.Helper()
	d, err := checkpoint.Inspect(t.Context(), ckpt, "latest")
	if err != nil {
		t.Fatal(err)
	}
	txns := map[string]pendingTxn{}
	for _, op := range d.Operators {
		if op.Name != "output" {
			continue
		}
		for _, sub := range op.Subtasks {
			st, err := twophase.Decode(sub.State)
			if err != nil {
				t.Fatalf("state of sink subtask %d: %v", sub.Subtask, err)
			}
			for _, p := range st.Pending {
				var txn pendingTxn
				if err := json.Unmarshal(p.Description, &txn); err != nil {
					t.Fatalf("pending transaction of sink subtask %d: %v", sub.Subtask, err)
				}
				txns[txn.TransactionalID] = txn
			}
		}
	}
	return txns
}

// pendingTxn is how the Kafka sink describes a pending transaction in a
// checkpoint (its DescribeCommittable).
type pendingTxn struct {
	TransactionalID string `json:"transactional_id"`
	ProducerID      int64  `json:"producer_id"`
	Epoch           int16  `json:"epoch"`
}

// describeTxns asks the broker for the state of transactional ids.
func describeTxns(t *testing.T, brokers []string, ids []string) map[string]kmsg.DescribeTransactionsResponseTransactionState {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = ids
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]kmsg.DescribeTransactionsResponseTransactionState{}
	for _, s := range resp.TransactionStates {
		states[s.TransactionalID] = s
	}
	if len(states) != len(ids) {
		t.Fatalf("the broker described %d of %d transactional ids", len(states), len(ids))
	}
	return states
}

// commitMarkers returns the producer ids and epochs of the commit markers
// in topic, read to its high watermarks.
func commitMarkers(t *testing.T, brokers []string, topic string) map[[2]int64]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.KeepControlRecords(),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	left := highWatermarks(ctx, t, cl, topic) // partition → offset still to read up to
	markers := map[[2]int64]bool{}
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading the commit markers of %q: %v", topic, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Attrs.IsControl() && len(r.Key) >= 4 && r.Key[3] == 1 { // the key's type: 1 commit, 0 abort
				markers[[2]int64{r.ProducerID, int64(r.ProducerEpoch)}] = true
			}
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
	return markers
}

// highWatermarks returns the high watermark of every non-empty partition of
// topic.
func highWatermarks(ctx context.Context, t *testing.T, cl *kgo.Client, topic string) map[int32]int64 {
	t.Helper()
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil || len(mresp.Topics) != 1 {
		t.Fatalf("metadata of %q: %v", topic, err)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	for _, p := range mresp.Topics[0].Partitions {
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition, lp.Timestamp = p.Partition, -1 // latest
		lt.Partitions = append(lt.Partitions, lp)
	}
	req.Topics = append(req.Topics, lt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("high watermarks of %q: %v", topic, err)
	}
	hwm := map[int32]int64{}
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				t.Fatalf("high watermark of %s/%d: %v", topic, p.Partition, err)
			}
			if p.Offset > 0 {
				hwm[p.Partition] = p.Offset
			}
		}
	}
	return hwm
}

// TestEventTimeRescale runs the event-time job (eventtimejob: event-time
// deduplication, a tumbling-window count per user and an interval join,
// over out-of-order input) once without interruption at parallelism 2, and
// once killed and restarted with parallelism 2 → 3 → 1 → 2, once at the
// fault point after a manifest. Windows are open, join buffers full and
// event-time timers pending at every kill, so every rescale moves window
// and join state, timers and watermarks to other subtasks. The committed
// outputs must be equal as multisets, and the uninterrupted one what the
// input implies.
func TestEventTimeRescale(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a job binary several times")
	}
	const events = 12000
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 0x6576))
	bin := binary(t, "github.com/weirstream/weir/internal/e2e/eventtimejob")
	args := func(dir string, parallelism int) []string {
		return []string{"--output", filepath.Join(dir, "out"), "--checkpoint-dir", filepath.Join(dir, "ckpt"),
			"--parallelism", strconv.Itoa(parallelism), "--checkpoint-interval", "100ms",
			"--events", strconv.Itoa(events), "--rate", "4000", "--metrics-addr", "", "--log-level", "info"}
	}
	clean, crashed := t.TempDir(), t.TempDir()
	startProc(t, bin, args(clean, 2)).waitSuccess(t, "uninterrupted run")

	for i, st := range []ordersStart{{parallelism: 2}, {parallelism: 3, crashAt: "after-manifest:3"}, {parallelism: 1}} {
		var env []string
		if st.crashAt != "" {
			env = append(env, fault.EnvVar+"="+st.crashAt)
		} else {
			env = append(env, fault.CheckEnvVar+"=1")
		}
		p := startProc(t, bin, args(crashed, st.parallelism), env...)
		if st.crashAt == "" {
			if !p.awaitCheckpoints(t, 1+rng.IntN(3)) {
				t.Fatalf("start %d (%v) exited before its kill: the job is too short for this machine\n%s", i, st, p.log())
			}
			p.kill()
		}
		p.waitKilled(t, fmt.Sprintf("start %d (%v)", i, st))
	}
	startProc(t, bin, args(crashed, 2)).waitSuccess(t, "last start (parallelism 2)")

	read := func(dir string) []string {
		var lines []string
		out := weirtest.Files{Dir: "{dir}/out"}
		if err := out.Read(t.Context(), weirtest.Run{Dir: dir}, func(l []byte) { lines = append(lines, string(l)) }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(lines)
		return lines
	}
	want, got := read(clean), read(crashed)
	checkEventTimeOutput(t, want, events)
	if !slices.Equal(got, want) {
		t.Fatalf("the rescaled run committed %d lines, the uninterrupted one %d; first difference: %s",
			len(got), len(want), firstDifference(got, want))
	}
	t.Logf("%d lines, equal", len(got))
}

// firstDifference describes where two sorted lists first differ.
func firstDifference(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("line %d: %q, want %q", i, got[i], want[i])
		}
	}
	if len(got) > len(want) {
		return fmt.Sprintf("extra %q", got[len(want)])
	}
	if len(got) < len(want) {
		return fmt.Sprintf("missing %q", want[len(got)])
	}
	return "none"
}
