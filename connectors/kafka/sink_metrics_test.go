package kafka

import (
	"testing"

	"github.com/weirstream/weir/internal/kafkatxn/kafkatest"
)

func TestTransactionsAreCounted(t *testing.T) {
	c := kafkatest.NewCluster(t, partitions, topic)
	cfg := testConfig(c)
	cfg.BatchSize = 1 // produce at once, so that Close has a transaction to abort
	s := open(t, cfg, 0, nil)
	write(t, s, "a", 10)
	preCommit(t, s, 1)
	write(t, s, "b", 5)
	preCommit(t, s, 2)
	if got, aborted := s.Transactions(); got != 0 || aborted != 0 {
		t.Fatalf("before Commit: %d committed, %d aborted", got, aborted)
	}
	commit(t, s, 2) // both transactions
	write(t, s, "c", 5)
	if got, aborted := s.Transactions(); got != 2 || aborted != 0 {
		t.Fatalf("after Commit(2): %d committed, %d aborted; want 2, 0", got, aborted)
	}
	s.Close() // aborts epoch 3's transaction
	if got, aborted := s.Transactions(); got != 2 || aborted != 1 {
		t.Fatalf("after Close: %d committed, %d aborted; want 2, 1", got, aborted)
	}
}
