package kafka

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
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
	const n = 1000
	dir := t.TempDir()
	run := func(parallelism int, metricsAddr string, stop <-chan struct{}, events runtime.EventListener) error {
		src, err := generator.NewSource(generator.SourceConfig[Message]{
			Record: func(seq uint64) Message { return seqMessage(int(seq)) }, Count: n, ChunkSize: 10,
			RatePerSecond: n, // a second: the stop comes after the first checkpoint
		})
		if err != nil {
			return err
		}
		p := runtime.NewPipeline("kafka-sink-rescale")
		runtime.To(runtime.From(p, "seq", src), "kafka-out", newSink)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		return runtime.Run(ctx, p, runtime.Config{CheckpointDir: dir, CheckpointInterval: 20 * time.Millisecond,
			Parallelism: parallelism, Logger: quiet, Stop: stop, Events: events, MetricsAddr: metricsAddr})
	}
	stop := make(chan struct{})
	var once sync.Once
	err = run(2, "", stop, runtime.EventListener{CheckpointCompleted: func(runtime.CheckpointInfo) {
		once.Do(func() { close(stop) })
	}})
	if err != nil {
		t.Fatalf("run at parallelism 2: %v", err)
	}
	if got := len(readAll(t, c, true)); got == 0 || got >= n {
		t.Fatalf("run at parallelism 2 committed %d of %d records before it stopped: want some, not all, for the restart to rescale", got, n)
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
	check(t, "read_committed", readAll(t, c, true), want(fmt.Sprintf("v*%d", n)))
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
