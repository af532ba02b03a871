package kafka

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/kafkatxn/kafkatest"
	"github.com/weirstream/weir/internal/testseed"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/weirtest/conformance"
)

// TestConformance drives the sink through the connector conformance suite:
// random writes, barriers, failed checkpoints, late commits, crashes and
// restores, as the runtime would. Exactly-once must commit every record
// once; at-least-once must lose none. Each schedule writes its own topic
// through its own transactional ids.
func TestSinkConformance(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	seed := testseed.Seed(t)
	records := make([]Message, 60)
	for i := range records {
		v := fmt.Sprintf("v%03d", i)
		records[i] = Message{Key: []byte("key-" + v), Value: []byte(v)}
	}
	for _, tc := range []struct {
		mode      SinkMode
		schedules int
	}{
		{ExactlyOnce, conformance.DefaultSchedules},
		// Fewer: the mode has no protocol to break, only acknowledgements
		// to wait for.
		{AtLeastOnce, conformance.DefaultSchedules / 2},
	} {
		mode := tc.mode
		t.Run(mode.String(), func(t *testing.T) {
			batch := map[string]int{} // per schedule's destination
			conformance.TestSink(t, conformance.SinkSuite[Message]{
				New: func(dest string) (runtime.Sink[Message], error) {
					if batch[dest] == 0 {
						if err := c.CreateTopic(dest, partitions, nil); err != nil {
							return nil, err
						}
						// Small batches reach the log mid-epoch, so that
						// a crash leaves records there.
						batch[dest] = 1 + len(batch)%3
					}
					cfg := testConfig(c)
					cfg.Topic, cfg.TransactionalIDPrefix, cfg.Mode = dest, dest, mode
					cfg.BatchSize = batch[dest]
					return newSinkInstance(cfg)
				},
				// A killed process's connections close.
				Kill: func(s runtime.Sink[Message]) { s.(*sink[Message]).closeClient() },
				ReadCommitted: func(dest string) ([]Message, error) {
					recs := readTopic(t, c, dest, true)
					if mode == ExactlyOnce { // at-least-once writes again what it replays
						if err := inWriteOrder(recs); err != nil {
							return nil, err
						}
					}
					var out []Message
					for _, r := range recs {
						out = append(out, Message{Key: []byte(r.Key), Value: []byte(r.Value)})
					}
					return out, nil
				},
				Records:     records,
				Key:         func(m Message) string { return string(m.Key) + "=" + string(m.Value) },
				AtLeastOnce: mode == AtLeastOnce,
				Schedules:   tc.schedules,
				Seed:        seed,
			})
		})
	}
}

// inWriteOrder checks that each partition holds the records of each subtask
// in the order the subtask wrote them: record i ("v<i>", written by subtask
// i mod 2, the suite's default parallelism) after those before it.
func inWriteOrder(recs []kafkatest.Record) error {
	type stream struct {
		partition int32
		subtask   int
	}
	last := map[stream]int{}
	for _, r := range recs {
		i, err := strconv.Atoi(strings.TrimPrefix(r.Value, "v"))
		if err != nil {
			return fmt.Errorf("record %v: unexpected value", r)
		}
		s := stream{r.Partition, i % 2}
		if prev, ok := last[s]; ok && i <= prev {
			return fmt.Errorf("partition %d: v%03d after v%03d of the same subtask: out of write order", r.Partition, i, prev)
		}
		last[s] = i
	}
	return nil
}
