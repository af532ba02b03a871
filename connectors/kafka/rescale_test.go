package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/internal/kafkatxn/kafkatest"
	"github.com/weirstream/weir/runtime"
)

// TestSourceRedistribute checks that after a change of parallelism (2 → 3
// → 1 → 2) every partition is resumed by exactly one subtask, the one that
// owns it, at the offset (and end) the old states held.
func TestSourceRedistribute(t *testing.T) {
	want := sourceState{next: map[topicPartition]int64{}, end: map[topicPartition]int64{}, bounded: true}
	for _, topic := range []string{"orders", "payments"} {
		for p := range int32(7) {
			tp := topicPartition{topic, p}
			want.next[tp], want.end[tp] = int64(100*p+3), int64(1000*p)
		}
	}
	// The states of a run at parallelism 2.
	var states [][]byte
	for sub := range 2 {
		st := sourceState{next: map[topicPartition]int64{}, end: map[topicPartition]int64{}, bounded: true}
		for tp, off := range want.next {
			if owner(tp, 2) == sub {
				st.next[tp], st.end[tp] = off, want.end[tp]
			}
		}
		states = append(states, sourceEncodeState(st))
	}
	for _, par := range []int{3, 1, 2} {
		seen := map[topicPartition]int{}
		var next [][]byte
		for sub := range par {
			b, err := (&source[[]byte]{}).Redistribute(runtime.TaskInfo{Subtask: sub, Parallelism: par}, states)
			if err != nil {
				t.Fatal(err)
			}
			st, err := sourceDecodeState(b)
			if err != nil {
				t.Fatal(err)
			}
			if !st.bounded {
				t.Fatalf("parallelism %d, subtask %d: lost the bounded flag", par, sub)
			}
			for tp, off := range st.next {
				seen[tp]++
				if owner(tp, par) != sub {
					t.Errorf("parallelism %d: subtask %d got %s, which subtask %d owns", par, sub, tp, owner(tp, par))
				}
				if off != want.next[tp] || st.end[tp] != want.end[tp] {
					t.Errorf("parallelism %d: %s at %d (end %d), want %d (end %d)", par, tp, off, st.end[tp], want.next[tp], want.end[tp])
				}
			}
			next = append(next, b)
		}
		for tp := range want.next {
			if seen[tp] != 1 {
				t.Errorf("parallelism %d: %s resumed by %d subtasks, want 1", par, tp, seen[tp])
			}
		}
		states = next
	}
}

// TestSourceRedistributeRefusesLegacy checks that a state assigned by the
// version-1 rule, which depends on the parallelism, is not rescaled.
func TestSourceRedistributeRefusesLegacy(t *testing.T) {
	st := sourceState{next: map[topicPartition]int64{{"t", 0}: 1}, legacy: map[string]int32{"t": 1}}
	_, err := (&source[[]byte]{}).Redistribute(runtime.TaskInfo{Subtask: 0, Parallelism: 2}, [][]byte{sourceEncodeState(st)})
	if err == nil {
		t.Fatal("a version-1 assignment was rescaled")
	}
}

// TestSinkRescale runs a job writing through NewSink's exactly-once sink at
// parallelism 2, stops it (Config.Stop) in the middle of its input, and
// restarts it at parallelism 1 until the input ends: the restart must be
// accepted (the sink's pending transactions are the runtime's to hand
// over) and every record committed once.
func TestSinkRescale(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	newSink, err := NewSink(testConfig(c))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	run := func(parallelism int, metricsAddr string, stop <-chan struct{}, events runtime.EventListener) error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		return runSeqJob(ctx, dir, newSink, nil, runtime.Config{Parallelism: parallelism, Stop: stop, Events: events, MetricsAddr: metricsAddr})
	}
	stop := make(chan struct{})
	var once sync.Once
	err = run(2, "", stop, runtime.EventListener{CheckpointCompleted: func(runtime.CheckpointInfo) {
		once.Do(func() { close(stop) })
	}})
	if err != nil {
		t.Fatalf("run at parallelism 2: %v", err)
	}
	if got := len(readAll(t, c, true)); got == 0 || got >= seqJobRecords {
		t.Fatalf("run at parallelism 2 committed %d of %d records before it stopped: want some, not all, for the restart to rescale", got, seqJobRecords)
	}
	// The sink's optional interfaces reach the runtime through the
	// two-phase sink: its transactions are exported.
	var addr string
	var metrics []byte
	var scrapeErr error
	err = run(1, "127.0.0.1:0", nil, runtime.EventListener{
		Started: func(info runtime.StartInfo) { addr = info.MetricsAddr },
		CheckpointCompleted: func(runtime.CheckpointInfo) {
			if metrics == nil && scrapeErr == nil {
				metrics, scrapeErr = scrape("http://" + addr + "/metrics")
			}
		},
	})
	if err != nil {
		t.Fatalf("restart at parallelism 1: %v", err)
	}
	check(t, "read_committed", readAll(t, c, true), want(fmt.Sprintf("v*%d", seqJobRecords)))
	if scrapeErr != nil || !strings.Contains(string(metrics), `weir_sink_transactions_total{`) {
		t.Errorf("the job's metrics lack the sink's weir_sink_transactions_total (%v):\n%s", scrapeErr, metrics)
	}
}

func scrape(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// seqJobRecords is the input of runSeqJob.
const seqJobRecords = 1000

// runSeqJob runs the job generator → sink "kafka-out" over seqMessage(0 …
// seqJobRecords-1), emitted in about a second (so that a stop or a crash
// after the first checkpoint comes in the middle of the input), with cfg and
// checkpoints every 20 ms in dir, until the input ends, cfg.Stop closes or
// ctx is done. If emitted is not nil, the source calls it for every record.
func runSeqJob(ctx context.Context, dir string, newSink runtime.SinkFactory[Message], emitted func(), cfg runtime.Config) error {
	src, err := generator.NewSource(generator.SourceConfig[Message]{
		Record: func(seq uint64) Message {
			if emitted != nil {
				emitted()
			}
			return seqMessage(int(seq))
		},
		Count: seqJobRecords, ChunkSize: 10,
		RatePerSecond: seqJobRecords,
	})
	if err != nil {
		return err
	}
	p := runtime.NewPipeline("kafka-sink-rescale")
	runtime.To(runtime.From(p, "seq", src), "kafka-out", newSink)
	cfg.CheckpointDir, cfg.CheckpointInterval, cfg.Logger = dir, 20*time.Millisecond, quiet
	return runtime.Run(ctx, p, cfg)
}

// TestAtLeastOnceSinkRescale runs a job writing through an at-least-once
// sink, which keeps no state, at parallelism 2 until it stops (a final
// checkpoint), at 3 until it crashes (its context cancelled) after a
// checkpoint, and at 1 to the end of the input: the restarts must be
// accepted and lose nothing. A marker committed between the runs tells in
// the topic which run wrote a record. The expected duplicates are the
// records the crashed run wrote after its last checkpoint, which the last
// run writes again: a record appears twice only if both of them wrote it,
// and a record of the stopped run exactly once.
func TestAtLeastOnceSinkRescale(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	cfg := testConfig(c)
	cfg.Mode, cfg.TransactionalIDPrefix = AtLeastOnce, ""
	cfg.BatchSize = 4 // sent at once: the crashed run writes records that its checkpoint does not cover
	newSink, err := NewSink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// Run 1, parallelism 2: stopped after its first checkpoint.
	stop := make(chan struct{})
	var stopOnce sync.Once
	err = runSeqJob(ctx, dir, newSink, nil, runtime.Config{Parallelism: 2, Stop: stop, Events: runtime.EventListener{
		CheckpointCompleted: func(runtime.CheckpointInfo) { stopOnce.Do(func() { close(stop) }) }}})
	if err != nil {
		t.Fatalf("run 1 at parallelism 2: %v", err)
	}
	commitMarkers(t, c, topic, "after-run", "after-run-1")
	// Run 2, parallelism 3: crashes once its source emitted 50 records
	// after its first checkpoint.
	crashCtx, crash := context.WithCancel(ctx)
	defer crash()
	var checkpointed atomic.Bool
	var after atomic.Int64
	emitted := func() {
		if checkpointed.Load() && after.Add(1) == 50 {
			crash()
		}
	}
	err = runSeqJob(crashCtx, dir, newSink, emitted, runtime.Config{Parallelism: 3, Events: runtime.EventListener{
		CheckpointCompleted: func(runtime.CheckpointInfo) { checkpointed.Store(true) }}})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("run 2 at parallelism 3: %v", err)
	}
	if crashCtx.Err() == nil {
		t.Fatal("run 2 at parallelism 3 ended before it crashed")
	}
	commitMarkers(t, c, topic, "after-run", "after-run-2")
	// Run 3, parallelism 1: to the end.
	if err := runSeqJob(ctx, dir, newSink, nil, runtime.Config{Parallelism: 1}); err != nil {
		t.Fatalf("run 3 at parallelism 1: %v", err)
	}

	// written[r][i] counts the copies of record i that run r+1 wrote.
	var written [3][seqJobRecords]int
	run := map[int32]int{}
	for _, r := range readRecords(t, c, false) {
		switch r.Value {
		case "after-run-1", "after-run-2":
			run[r.Partition]++
		default:
			i, err := strconv.Atoi(strings.TrimPrefix(r.Value, "v"))
			if err != nil || i < 0 || i >= seqJobRecords {
				t.Fatalf("unexpected record %s", r)
			}
			written[run[r.Partition]][i]++
		}
	}
	var counts [3]int
	dups := 0
	for i := range seqJobRecords {
		w1, w2, w3 := written[0][i], written[1][i], written[2][i]
		counts[0], counts[1], counts[2] = counts[0]+w1, counts[1]+w2, counts[2]+w3
		switch {
		case w1+w2+w3 == 0:
			t.Errorf("v%d lost", i)
		case w1 > 1 || w2 > 1 || w3 > 1:
			t.Errorf("v%d written %d, %d and %d times by the runs; want at most once by each", i, w1, w2, w3)
		case w1 == 1 && w2+w3 > 0:
			t.Errorf("v%d, written by run 1 before its final checkpoint, written again by run 2 (%d) or 3 (%d)", i, w2, w3)
		case w2 == 1 && w3 == 1:
			dups++ // written by the crashed run after its last checkpoint
		}
	}
	t.Logf("records written by the runs at parallelism 2, 3 (crashed) and 1: %v; %d written again after the crash", counts, dups)
	if counts[0] == 0 || counts[0] >= seqJobRecords {
		t.Fatalf("run 1 wrote %d of %d records before it stopped: want some, not all, for the restarts to rescale", counts[0], seqJobRecords)
	}
}
