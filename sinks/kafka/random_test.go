package kafka

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/kafkatxn/kafkatest"
)

var seedFlag = flag.Uint64("seed", 0, "run TestRandomizedCrashRecovery with this seed only")

// TestRandomizedCrashRecovery plays the runtime against the sink with a
// random sequence of writes, barriers, failed checkpoints, lost or late
// completion notifications and crashes, replaying the input from the
// restored checkpoint as a source would. Whatever happens, read_committed
// must finally hold every input record exactly once, in input order within
// each partition. On failure, rerun one seed with -seed.
func TestRandomizedCrashRecovery(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6}
	if *seedFlag != 0 {
		seeds = []uint64{*seedFlag}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			runRandomized(t, seed)
		})
	}
}

func runRandomized(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed))
	c := kafkatest.NewCluster(t, partitions, topic)
	cfg := testConfig(c)
	cfg.BatchSize = 1 + rng.IntN(4)
	cfg.PoolSize = 4 + rng.IntN(3)
	var log []string
	step := func(format string, args ...any) { log = append(log, fmt.Sprintf(format, args...)) }
	defer func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("seed %d, batch %d, pool %d, steps:\n%s", seed, cfg.BatchSize, cfg.PoolSize, strings.Join(log, "\n"))
		}
	}()

	// The "checkpoint store": the latest completed checkpoint's sink state
	// and source position.
	var (
		restored  []byte
		restorePo int
		pos       int    // next input record
		next      uint64 // next checkpoint id
		total     = 60
	)
	type inflight struct {
		id  uint64
		st  []byte
		pos int
	}
	var awaiting []inflight // completed checkpoints whose Commit is not yet delivered

	s := open(t, cfg, 0, nil)
	crash := func(why string) {
		step("crash (%s): restore position %d", why, restorePo)
		s = open(t, cfg, 0, restored) // the old sink is dropped, not closed
		pos = restorePo
		awaiting = nil
	}
	deliver := func() {
		for _, a := range awaiting {
			step("commit %d", a.id)
			if err := s.Commit(t.Context(), a.id); err != nil {
				t.Fatalf("commit %d: %v", a.id, err)
			}
		}
		awaiting = nil
	}

	for pos < total || len(awaiting) > 0 {
		switch r := rng.IntN(10); {
		case r < 5 && pos < total: // write a few records
			n := min(1+rng.IntN(5), total-pos)
			step("write %d..%d", pos, pos+n-1)
			failed := false
			for range n {
				v := "v" + strconv.Itoa(pos)
				if err := s.Write(t.Context(), Message{Key: []byte("key-" + v), Value: []byte(v)}); err != nil {
					step("write failed: %v", err)
					failed = true
					break
				}
				pos++
			}
			if failed {
				crash("write failed")
			}
		case r < 8: // barrier
			next++
			id := next
			st, err := s.PreCommit(t.Context(), id)
			if err != nil {
				step("pre-commit %d failed: %v", id, err)
				crash("pre-commit failed")
				continue
			}
			switch rng.IntN(4) {
			case 0:
				step("pre-commit %d at %d: checkpoint fails", id, pos)
			default:
				step("pre-commit %d at %d: checkpoint completes", id, pos)
				restored, restorePo = st, pos
				awaiting = append(awaiting, inflight{id, st, pos})
				if rng.IntN(3) > 0 {
					deliver()
				}
			}
		case r < 9:
			deliver()
		default:
			crash("random")
		}
	}
	// Final checkpoint, as at the end of a bounded input.
	next++
	deliver()
	if _, err := s.PreCommit(t.Context(), next); err != nil {
		t.Fatalf("final pre-commit: %v", err)
	}
	if err := s.Commit(t.Context(), next); err != nil {
		t.Fatalf("final commit: %v", err)
	}
	defer s.Close()

	got := readRecords(t, c, true)
	var vals []string
	last := map[int32]int{}
	for _, r := range got {
		i, _ := strconv.Atoi(strings.TrimPrefix(r.Value, "v"))
		if prev, ok := last[r.Partition]; ok && i <= prev {
			t.Errorf("partition %d: v%d after v%d", r.Partition, i, prev)
		}
		last[r.Partition] = i
		vals = append(vals, r.Value)
	}
	slices.Sort(vals)
	check(t, "read_committed", vals, want(fmt.Sprintf("v*%d", total)))
}
