package generator

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir/runtime"
)

type collect []uint64

func (c *collect) Collect(v uint64) { *c = append(*c, v) }

// readAll reads src until the end of its input or max records.
func readAll(t *testing.T, src runtime.Source[uint64], max int) (collect, bool) {
	t.Helper()
	var out collect
	for len(out) < max {
		err := src.Read(context.Background(), &out)
		if errors.Is(err, runtime.ErrEndOfInput) {
			return out, true
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return out, false
}

// newSource makes one instance of a source of the records seq*10.
func newSource(t *testing.T, cfg SourceConfig[uint64]) runtime.Source[uint64] {
	t.Helper()
	cfg.Record = func(seq uint64) uint64 { return seq * 10 }
	newSource, err := NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	src, err := newSource()
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func open(t *testing.T, cfg SourceConfig[uint64], subtask, parallelism int, restored []byte) runtime.Source[uint64] {
	t.Helper()
	src := newSource(t, cfg)
	if err := src.Open(context.Background(), runtime.TaskInfo{Subtask: subtask, Parallelism: parallelism}, restored); err != nil {
		t.Fatal(err)
	}
	return src
}

// Subtasks split the sequence by stride and together emit each record once.
func TestSubtasksCoverTheSequence(t *testing.T) {
	const count = 1000
	var all []uint64
	for s := range 3 {
		out, ended := readAll(t, open(t, SourceConfig[uint64]{Count: count, ChunkSize: 7}, s, 3, nil), 2*count)
		if !ended {
			t.Fatalf("subtask %d did not end", s)
		}
		for i, v := range out {
			if want := uint64(s+3*i) * 10; v != want {
				t.Fatalf("subtask %d record %d = %d, want %d", s, i, v, want)
			}
		}
		all = append(all, out...)
	}
	slices.Sort(all)
	if len(all) != count || all[0] != 0 || all[count-1] != (count-1)*10 {
		t.Fatalf("subtasks emitted %d records from %d to %d, want %d from 0", len(all), all[0], all[len(all)-1], count)
	}
}

// A source restored from a snapshot continues exactly where it was.
func TestRestoreReplaysFromTheOffset(t *testing.T) {
	cfg := SourceConfig[uint64]{Count: 500, ChunkSize: 16}
	src := open(t, cfg, 1, 2, nil)
	first, _ := readAll(t, src, 100)
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	rest, _ := readAll(t, src, 1000)
	again, ended := readAll(t, open(t, cfg, 1, 2, snap), 1000)
	if !ended || !slices.Equal(rest, again) {
		t.Fatalf("restored source emitted %d records (%v…), want the %d after the snapshot (%v…)", len(again), again[:min(3, len(again))], len(rest), rest[:min(3, len(rest))])
	}
	if len(first)+len(rest) != 250 {
		t.Fatalf("subtask emitted %d records in all, want 250", len(first)+len(rest))
	}
}

func TestRestoreRejectsBadOffsets(t *testing.T) {
	good := open(t, SourceConfig[uint64]{}, 0, 2, nil)
	readAll(t, good, 10)
	snap, _ := good.Snapshot()
	for name, c := range map[string]struct {
		restored             []byte
		subtask, parallelism int
	}{
		"truncated":     {snap[:5], 0, 2},
		"wrong version": {append([]byte{9}, snap[1:]...), 0, 2},
		"other subtask": {snap, 1, 2},
	} {
		src := newSource(t, SourceConfig[uint64]{})
		if err := src.Open(context.Background(), runtime.TaskInfo{Subtask: c.subtask, Parallelism: c.parallelism}, c.restored); err == nil {
			t.Errorf("%s: Open accepted the offset", name)
		}
	}
}

// Under a rate limit a Read emits at most one chunk; an unbounded source
// never ends.
func TestRateLimitedChunks(t *testing.T) {
	src := open(t, SourceConfig[uint64]{RatePerSecond: 1e6, ChunkSize: 50}, 0, 1, nil)
	for range 20 {
		var out collect
		if err := src.Read(context.Background(), &out); err != nil {
			t.Fatal(err)
		}
		if len(out) == 0 || len(out) > 50 {
			t.Fatalf("Read emitted %d records, want 1..50", len(out))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := open(t, SourceConfig[uint64]{RatePerSecond: 0.001}, 0, 1, nil)
	var out collect
	slow.Read(ctx, &out) // the first record is due at once
	if err := slow.Read(ctx, &out); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read of a paced source with a cancelled context = %v, want context.Canceled", err)
	}
}

// A configuration that cannot work fails at NewSource, naming the field.
func TestNewSourceValidates(t *testing.T) {
	record := func(seq uint64) uint64 { return seq }
	for _, c := range []struct {
		cfg  SourceConfig[uint64]
		want string
	}{
		{SourceConfig[uint64]{}, "no Record function"},
		{SourceConfig[uint64]{Record: record, ChunkSize: -1}, "ChunkSize -1"},
		{SourceConfig[uint64]{Record: record, RatePerSecond: -5}, "RatePerSecond -5"},
	} {
		_, err := NewSource(c.cfg)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewSource(%+v) = %v, want ErrConfig naming %q", c.cfg, err, c.want)
		}
	}
	if _, err := NewSource(SourceConfig[uint64]{Record: record}); err != nil {
		t.Errorf("NewSource of a valid config: %v", err)
	}
}
