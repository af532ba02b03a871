package weirtest

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"time"
)

// Report is what a crash test found: how the crashed run was treated and how
// its committed output compares, as a multiset of records, with the clean
// run's.
type Report struct {
	// Seed is the seed of every random choice; Job.Seed reruns them.
	Seed uint64
	// Clean and Crashed are the two runs, to read their outputs again.
	Clean, Crashed Run
	// CleanDuration is how long the clean run took, and CleanWork the part
	// of it from its first completed checkpoint to its exit (the part that
	// kills can cut into; start-up costs come again with every start): the
	// pace of the crashed run derives from CleanWork.
	CleanDuration, CleanWork time.Duration
	// Interval is what {interval} became in the crashed run, and
	// MaxKillDelay the bound of a kill's delay after a start's first
	// checkpoint.
	Interval, MaxKillDelay time.Duration

	// Starts counts the crashed run's processes; Kills those SIGKILL
	// ended, ProtocolCrashes among them; Pauses the SIGSTOP/SIGCONT pairs
	// that landed; Restarts the in-process restarts the job logged.
	Starts, Kills, ProtocolCrashes, Pauses, Restarts int
	// CrashedRuns counts the crashed runs: more than one when a run
	// finished before its kills and was tried again with kills earlier
	// (every one of them compared with the clean run).
	CrashedRuns int
	// Parallelisms are the parallelisms of the last crashed run's starts,
	// in order, when Job.Parallelisms sets a schedule.
	Parallelisms []int

	// CleanRecords and CrashedRecords are the committed records of each run.
	CleanRecords, CrashedRecords int
	// Duplicates counts the extra copies of records the crashed run
	// committed more often than the clean run; Lost the copies it
	// committed less often; Different the records the clean run never
	// committed (a record that changed counts in Lost and in Different).
	Duplicates, Lost, Different int
	// Examples are a few of the differing records.
	Examples []Difference
}

// Difference is a record the two runs committed a different number of times.
type Difference struct {
	Record         string
	Clean, Crashed int
}

// OK reports whether the crashed run committed exactly what the clean run
// committed.
func (r *Report) OK() bool { return r.Duplicates == 0 && r.Lost == 0 && r.Different == 0 }

// String summarizes the report on a few lines.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d; clean run %v (%v after its first checkpoint): %d records; crashed run %d: %d starts, %d kills (%d at protocol points), %d pauses, %d in-process restarts (checkpoint interval %v, kill delay < %v): %d records\n",
		r.Seed, r.CleanDuration.Round(time.Millisecond), r.CleanWork.Round(time.Millisecond), r.CleanRecords, r.CrashedRuns, r.Starts, r.Kills, r.ProtocolCrashes, r.Pauses, r.Restarts,
		r.Interval.Round(time.Millisecond), r.MaxKillDelay.Round(time.Millisecond), r.CrashedRecords)
	if len(r.Parallelisms) > 0 {
		fmt.Fprintf(&b, "parallelism of the crashed starts: %v\n", r.Parallelisms)
	}
	fmt.Fprintf(&b, "%d duplicates, %d lost, %d different", r.Duplicates, r.Lost, r.Different)
	for _, d := range r.Examples {
		fmt.Fprintf(&b, "\n  %q: %d in the clean run, %d in the crashed run", d.Record, d.Clean, d.Crashed)
	}
	return b.String()
}

// exampleLimit is how many differing records a report shows.
const exampleLimit = 5

// fingerprint reads run's output and returns its number of records and the
// sum of their 64-bit hashes, modulo 2⁶⁴: a hash of the multiset. Two
// multisets that differ get the same sum with probability 2⁻⁶⁴, and
// summing costs one pass and no memory, where sorting ten million hashes
// takes half a minute under the race detector: compare sorts only when the
// fingerprints differ.
func fingerprint(ctx context.Context, out Output, run Run, seed maphash.Seed) (n int, sum uint64, err error) {
	err = out.Read(ctx, run, func(rec []byte) {
		n++
		sum += maphash.Bytes(seed, rec)
	})
	return n, sum, err
}

// hashes reads run's output and returns the sorted 64-bit hashes of its
// records. NB: 8 bytes a record, whatever its size, keeps outputs of tens of
// millions of records comparable in memory; two different records collide
// with probability about n²/2⁶⁵ (3·10⁻⁶ for ten million), and a collision can
// only hide a difference, never invent one.
func hashes(ctx context.Context, out Output, run Run, seed maphash.Seed) ([]uint64, error) {
	var hs []uint64
	err := out.Read(ctx, run, func(rec []byte) { hs = append(hs, maphash.Bytes(seed, rec)) })
	slices.Sort(hs)
	return hs, err
}

// compare fills r's counts from the sorted hashes of both runs and returns
// up to exampleLimit differing hashes, the lost and different records
// before the duplicates: a run that duplicates by design (at least once)
// must still show the record that it changed.
func (r *Report) compare(clean, crashed []uint64) []uint64 {
	r.CleanRecords, r.CrashedRecords = len(clean), len(crashed)
	var diff, dups []uint64
	i, j := 0, 0
	for i < len(clean) || j < len(crashed) {
		var h uint64
		switch {
		case j == len(crashed) || i < len(clean) && clean[i] < crashed[j]:
			h = clean[i]
		default:
			h = crashed[j]
		}
		c, k := 0, 0
		for ; i < len(clean) && clean[i] == h; i++ {
			c++
		}
		for ; j < len(crashed) && crashed[j] == h; j++ {
			k++
		}
		switch {
		case c == k:
			continue
		case k > c && c > 0:
			r.Duplicates += k - c
			if len(dups) < exampleLimit {
				dups = append(dups, h)
			}
			continue
		case c == 0:
			r.Different += k
		default:
			r.Lost += c - k
		}
		if len(diff) < exampleLimit {
			diff = append(diff, h)
		}
	}
	return append(diff, dups...)[:min(exampleLimit, len(diff)+len(dups))]
}

// examples reads both outputs again for the records whose hashes are in
// diff.
func (r *Report) examples(ctx context.Context, out Output, seed maphash.Seed, diff []uint64) error {
	if len(diff) == 0 {
		return nil
	}
	found := map[uint64]*Difference{}
	count := func(crashed bool) func([]byte) {
		return func(rec []byte) {
			h := maphash.Bytes(seed, rec)
			if !slices.Contains(diff, h) {
				return
			}
			d := found[h]
			if d == nil {
				d = &Difference{Record: string(rec)}
				found[h] = d
			}
			if crashed {
				d.Crashed++
			} else {
				d.Clean++
			}
		}
	}
	if err := out.Read(ctx, r.Clean, count(false)); err != nil {
		return err
	}
	if err := out.Read(ctx, r.Crashed, count(true)); err != nil {
		return err
	}
	for _, h := range diff {
		if d := found[h]; d != nil {
			r.Examples = append(r.Examples, *d)
		}
	}
	return nil
}
