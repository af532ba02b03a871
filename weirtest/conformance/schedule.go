package conformance

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Errors CheckSink and CheckSource return, wrapped with the seed, the
// schedule and the steps that led there.
var (
	// ErrOutputsDiffer means the connector's output under crashes differs
	// from that of an uninterrupted run: a duplicate, a lost record, a
	// record out of order, or output visible before its checkpoint
	// completed.
	ErrOutputsDiffer = errors.New("conformance: output differs from an uninterrupted run")
	// ErrConnectorFailed means a call of the connector returned an error
	// (or a bounded source never ended). The runtime would fail the job;
	// a conforming connector does not fail on a schedule the runtime can
	// produce.
	ErrConnectorFailed = errors.New("conformance: connector failed")
	// ErrBadSuite means the suite is not usable as given.
	ErrBadSuite = errors.New("conformance: bad suite")
)

// DefaultSchedules is the number of random schedules a suite runs when its
// Schedules field is zero. It keeps a connector's conformance test to a few
// seconds; raise Schedules for a soak.
const DefaultSchedules = 6

// maxRestarts bounds the crashes and failures of one schedule, so that a
// schedule always makes progress and ends.
const maxRestarts = 8

// quiet is the logger of the TaskInfo given to connectors.
var quiet = slog.New(slog.DiscardHandler)

// destinations numbers the sink destinations of the process, so that two
// suites on one cluster or directory never share one.
var destinations atomic.Uint64

// clockSeed returns a seed for a suite whose Seed is zero.
func clockSeed() uint64 { return uint64(time.Now().UnixNano()) }

// schedule is the randomness and the history of one random schedule. Its
// choices depend only on the suite's seed and the schedule's index.
type schedule struct {
	index, of int
	seed      uint64
	rng       *rand.Rand
	steps     []string
	restarts  int // crashes and failures so far
	budget    int // of restarts, at most maxRestarts
}

func newSchedule(seed uint64, index, of int) *schedule {
	rng := rand.New(rand.NewPCG(seed, uint64(index)))
	return &schedule{index: index, of: of, seed: seed, rng: rng, budget: 2 + rng.IntN(maxRestarts-1)}
}

// step records what the driver does, for the report of a failure.
func (s *schedule) step(format string, args ...any) {
	s.steps = append(s.steps, fmt.Sprintf(format, args...))
}

// oneIn returns true with probability 1/n.
func (s *schedule) oneIn(n int) bool { return s.rng.IntN(n) == 0 }

// canRestart reports whether the schedule may still crash or fail.
func (s *schedule) canRestart() bool { return s.restarts < s.budget }

// fail wraps err with the seed, the schedule and its last steps.
func (s *schedule) fail(what string, err error) error {
	const shown = 80
	steps := s.steps
	head := fmt.Sprintf("steps (%d):", len(steps))
	if len(steps) > shown {
		head = fmt.Sprintf("last %d of %d steps:", shown, len(steps))
		steps = steps[len(steps)-shown:]
	}
	return fmt.Errorf("%s schedule %d of %d (seed %d; the same Seed replays it): %w\n%s\n\t%s",
		what, s.index+1, s.of, s.seed, err, head, strings.Join(steps, "\n\t"))
}

// pick calls one of the actions whose weight is positive, chosen with
// probability proportional to its weight.
func (s *schedule) pick(actions ...weighted) error {
	total := 0
	for _, a := range actions {
		total += max(a.weight, 0)
	}
	if total == 0 {
		return errors.New("conformance: internal error: no possible step")
	}
	r := s.rng.IntN(total)
	for _, a := range actions {
		if w := max(a.weight, 0); r < w {
			return a.do()
		} else {
			r -= w
		}
	}
	panic("unreachable")
}

// weighted is an action of a schedule; weight 0 means impossible now.
type weighted struct {
	weight int
	do     func() error
}

// when returns w if ok, else 0.
func when(ok bool, w int) int {
	if ok {
		return w
	}
	return 0
}

// keyOf returns the suite's Key or the default, fmt.Sprint.
func keyOf[T any](key func(T) string) func(T) string {
	if key != nil {
		return key
	}
	return func(rec T) string { return fmt.Sprint(rec) }
}

// compare checks got against want as multisets of keys. With atLeastOnce,
// duplicates are allowed, but every key of want must be in got and every
// key of got in all. With mayLag, keys of want may be missing from got (a
// sink holding records back). It returns nil or an error wrapping ErrOutputsDiffer
// that names the first offending records.
func compare[T any](key func(T) string, got, want, all []T, atLeastOnce, mayLag bool) error {
	count := func(recs []T) map[string]int {
		m := make(map[string]int, len(recs))
		for _, r := range recs {
			m[key(r)]++
		}
		return m
	}
	g, w, a := count(got), count(want), count(all)
	var dup, early, lost, foreign []string
	for k, n := range g {
		switch {
		case a[k] == 0:
			foreign = append(foreign, fmt.Sprintf("%q×%d", k, n))
		case w[k] == 0 && !atLeastOnce:
			early = append(early, fmt.Sprintf("%q×%d", k, n))
		case n > w[k] && !atLeastOnce:
			dup = append(dup, fmt.Sprintf("%q×%d (want %d)", k, n, w[k]))
		}
	}
	for k, n := range w {
		if g[k] < n && (!atLeastOnce || g[k] == 0) && !mayLag {
			lost = append(lost, fmt.Sprintf("%q×%d (want %d)", k, g[k], n))
		}
	}
	if len(dup)+len(early)+len(lost)+len(foreign) == 0 {
		return nil
	}
	var parts []string
	for _, p := range []struct {
		what string
		keys []string
	}{{"duplicated", dup}, {"lost", lost}, {"not covered by the checkpoint", early}, {"not in the input", foreign}} {
		if len(p.keys) > 0 {
			parts = append(parts, fmt.Sprintf("%d %s: %s", len(p.keys), p.what, examples(p.keys)))
		}
	}
	return fmt.Errorf("%w: %d records, want %d; %s", ErrOutputsDiffer, len(got), len(want), strings.Join(parts, "; "))
}

// examples lists the first few of keys, sorted.
func examples(keys []string) string {
	slices.Sort(keys)
	const n = 8
	if len(keys) > n {
		return strings.Join(keys[:n], ", ") + ", …"
	}
	return strings.Join(keys, ", ")
}
