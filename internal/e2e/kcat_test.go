package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/devbroker/devbrokertest"
	"github.com/weirstream/weir/internal/kafkatxn"
)

// kcatCount counts the records of topic that kcat (librdkafka) sees at the
// given isolation level, reading every partition to its end (-e).
func kcatCount(t *testing.T, kcat, broker, topic, isolation string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// -C consume, -e exit at the end of every partition (the last stable
	// offset under read_committed), -q no informational output, -u
	// unbuffered; one line per record, with the value framed so that a
	// record counts as one line whatever it holds.
	cmd := exec.CommandContext(ctx, kcat, "-C", "-b", broker, "-t", topic, "-e", "-q", "-u",
		"-f", "%p/%o\n", "-X", "isolation.level="+isolation)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat %v: %v\n%s", cmd.Args, err, stderr.Bytes())
	}
	return bytes.Count(out, []byte("\n"))
}

// TestKcatAgreesOnCommittedOutput writes committed and aborted transactions
// (several producers, interleaved in every partition) and checks that kcat,
// an independent client (librdkafka), sees the same records as weir's reader
// under read_committed and under read_uncommitted.
func TestKcatAgreesOnCommittedOutput(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not on PATH (apt-get install -y kcat); skipping the cross-check with librdkafka")
	}
	b := devbrokertest.Start(t, devbrokertest.Config{Partitions: 3})
	const topic = "txns"
	if err := b.CreateTopic(topic, 3); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var prods []*kafkatxn.Producer
	for i := range 2 {
		p, err := kafkatxn.New(ctx, kafkatxn.Config{Brokers: []string{b.Addr()}, TransactionalID: fmt.Sprintf("kcat-%d", i), Logger: quietLog})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		prods = append(prods, p)
	}
	committed, aborted := 0, 0
	for round := range 5 {
		for part := range 3 {
			for i, p := range prods {
				var recs []kafkatxn.Record
				for j := range 10 + round + i {
					recs = append(recs, kafkatxn.Record{Value: fmt.Appendf(nil, `{"round":%d,"n":%d}`, round, j)})
				}
				if err := p.Produce(ctx, topic, part, recs); err != nil {
					t.Fatal(err)
				}
				if round%2 == 0 || i == 0 {
					committed += len(recs)
				} else {
					aborted += len(recs)
				}
			}
		}
		for i, p := range prods {
			if round%2 == 0 || i == 0 {
				err = p.Commit(ctx)
			} else {
				err = p.Abort(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	brokers := []string{b.Addr()}
	ours, err := CountRecords(ctx, brokers, topic, ReadCommitted)
	if err != nil {
		t.Fatal(err)
	}
	theirs := kcatCount(t, kcat, b.Addr(), topic, "read_committed")
	if ours != committed || theirs != committed {
		t.Errorf("read_committed: weir's reader sees %d records, kcat %d; %d were committed", ours, theirs, committed)
	}
	ours, err = CountRecords(ctx, brokers, topic, ReadUncommitted)
	if err != nil {
		t.Fatal(err)
	}
	theirs = kcatCount(t, kcat, b.Addr(), topic, "read_uncommitted")
	if ours != committed+aborted || theirs != committed+aborted {
		t.Errorf("read_uncommitted: weir's reader sees %d records, kcat %d; %d were written", ours, theirs, committed+aborted)
	}
	t.Logf("committed %d, aborted %d: weir's reader and kcat agree", committed, aborted)
}
