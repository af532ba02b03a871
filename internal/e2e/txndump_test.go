package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// dumpTxns logs the transactional structure of topic/partition between
// offsets from and to, read_uncommitted: runs of records by producer id and
// epoch, and commit and abort markers. A failed exactly-once check calls it
// around the first duplicate to show which transaction leaked.
func dumpTxns(t *testing.T, brokers []string, topic string, partition int32, from, to int64) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.KeepControlRecords(),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var runStart int64 = -1
	var pid int64
	var ep int16
	flush := func(end int64) {
		if runStart >= 0 {
			t.Logf("  %d..%d pid %d epoch %d", runStart, end, pid, ep)
		}
		runStart = -1
	}
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			flush(-1)
			return
		}
		for _, r := range fs.Records() {
			if r.Offset > to {
				flush(r.Offset - 1)
				return
			}
			if r.Attrs.IsControl() {
				flush(r.Offset - 1)
				kind := "abort"
				if len(r.Key) >= 4 && r.Key[3] == 1 {
					kind = "COMMIT"
				}
				t.Logf("  %d control %s pid %d epoch %d", r.Offset, kind, r.ProducerID, r.ProducerEpoch)
				continue
			}
			if runStart < 0 || r.ProducerID != pid || r.ProducerEpoch != ep {
				flush(r.Offset - 1)
				runStart, pid, ep = r.Offset, r.ProducerID, r.ProducerEpoch
			}
		}
	}
}
