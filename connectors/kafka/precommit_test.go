package kafka

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/internal/kafkatxn/kafkatest"
)

// TestPreCommitProducesPartitionsAtOnce checks that an exactly-once sink's
// pre-commit, which flushes every partition, adds them to the transaction
// in one AddPartitionsToTxn and has the produce requests of all of them in
// flight at once: the broker holds each produce request until one of every
// partition has arrived. One partition after the other (two round trips
// each), the second never arrived while the first was held, and a task's
// synchronous part of a checkpoint waited for them all (issue 12: the
// first checkpoint after a takeover).
func TestPreCommitProducesPartitionsAtOnce(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	var adds, added atomic.Int32
	c.ControlKey(int16(kmsg.AddPartitionsToTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		adds.Add(1)
		for _, tp := range req.(*kmsg.AddPartitionsToTxnRequest).Topics {
			added.Add(int32(len(tp.Partitions)))
		}
		return nil, nil, false
	})
	s := open(t, testConfig(c), 0, nil)
	defer s.Close()
	write(t, s, "a", 30) // fewer than BatchSize: buffered until the pre-commit
	for p, recs := range s.w.(*exactlyOnce).bufs {
		if len(recs) == 0 {
			t.Fatalf("partition %d has no record buffered: the test needs keys on every partition", p)
		}
	}
	held, stop := holdProduces(t, c)
	done := make(chan error, 1)
	go func() {
		_, err := s.PreCommit(t.Context(), 1)
		done <- err
	}()
	var hs []heldProduce
	// NB: a bound far above a few local round trips, so that the old code
	// (one partition after the other) fails instead of hanging.
	guard := time.After(20 * time.Second)
	for len(hs) < partitions {
		select {
		case h := <-held:
			hs = append(hs, h)
		case err := <-done:
			t.Fatalf("pre-commit returned (%v) with %d of %d partitions' produce requests seen", err, len(hs), partitions)
		case <-guard:
			t.Fatalf("%d of %d partitions' produce requests in flight at once, want all", len(hs), partitions)
		}
	}
	for _, h := range hs {
		close(h.release)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("pre-commit: %v", err)
	}
	if n, p := adds.Load(), added.Load(); n != 1 || p != partitions {
		t.Fatalf("%d AddPartitionsToTxn requests adding %d partitions, want 1 adding %d", n, p, partitions)
	}
	commit(t, s, 1)
	check(t, "read_committed", readAll(t, c, true), want("a*30"))
}
