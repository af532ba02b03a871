package statebackend

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// fillL0 writes tables overlapping tables into L0 of a database in dir,
// compactions off (as a checkpoint taken before the live database
// compacted), with the keys key(0) to key(99).
func fillL0(t *testing.T, dir string, tables int, key func(int) []byte) {
	t.Helper()
	opts := dbOptions(dir, nil, slog.New(slog.DiscardHandler))
	opts.DisableAutomaticCompactions = true
	db, err := pebble.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range tables {
		for k := range 100 { // overlapping tables, as deltas are
			if err := db.Set(key(k), fmt.Appendf(nil, "%d", i), pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRestoredDatabaseCompactsAfterFirstCheckpoint checks that a restored
// database whose L0 is past its compaction depth starts no compaction in
// Open or before its first snapshot is checkpointed (the compaction
// started inside pebble.Open, which waited for it: see compactionGate),
// and compacts after it.
func TestRestoredDatabaseCompactsAfterFirstCheckpoint(t *testing.T) {
	const tables = 12 // past L0's compaction depth of 8 (dbOptions)
	dir := filepath.Join(t.TempDir(), "live")
	fillL0(t, dir, tables, func(k int) []byte { return fmt.Appendf(nil, "k%03d", k) })

	b, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	compacted := func() int64 {
		m := b.db.Metrics()
		return m.Compact.Count + m.Compact.NumInProgress
	}
	// NB: Pebble picks the compaction inside Open (and counts it as in
	// progress there): without the gate, it shows here already.
	if n := compacted(); n != 0 {
		t.Fatalf("a restored database with %d tables in L0 started %d compactions in Open, before its first checkpoint", tables, n)
	}
	if err := b.Freeze(1, filepath.Join(t.TempDir(), "chk-1")); err != nil {
		t.Fatal(err)
	}
	b.Drain(0)
	if res := <-b.Results(); res.Err != nil {
		t.Fatal(res.Err)
	}
	// NB: the compaction runs on Pebble's goroutines; Pebble gives no
	// signal a test could wait for without an event listener of its own.
	for deadline := time.Now().Add(30 * time.Second); compacted() == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("a restored database with %d tables in L0 did not compact in 30 s after its first checkpoint", tables)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRescaleDoesNotCompact checks that a database being rescaled, whose
// L0 is past its compaction depth, is not compacted: the compaction would
// rewrite state the rescale may excise, and Pebble's open waited for it.
func TestRescaleDoesNotCompact(t *testing.T) {
	const tables = 12 // past L0's compaction depth of 8 (dbOptions)
	dir := filepath.Join(t.TempDir(), "live")
	fillL0(t, dir, tables, func(k int) []byte { return append(keyGroupKey(3), fmt.Appendf(nil, "k%03d", k)...) })
	if err := RescaleKeyGroups(dir, 0, 8, []KeyGroupSource{{Dir: dir, First: 0, End: 8}}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	ro := dbOptions(dir, nil, slog.New(slog.DiscardHandler))
	ro.ReadOnly = true
	db, err := pebble.Open(dir, ro)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := db.Metrics().Levels[0].TablesCount; n != tables {
		t.Errorf("L0 holds %d tables after the rescale, want the %d it had: the rescale compacted", n, tables)
	}
}

// TestFailedOpenStopsCompactionGate checks that a Pebble open that fails
// after registering the gate leaves no granter running: Pebble does not
// unregister the scheduler then.
func TestFailedOpenStopsCompactionGate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "live")
	opts := dbOptions(dir, nil, slog.New(slog.DiscardHandler))
	// The options file is written (a temporary file renamed) after Pebble
	// registered the scheduler.
	opts.FS = errorfs.Wrap(opts.FS, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpRename && strings.Contains(op.Path, "temporary.") {
			return errorfs.ErrInjected
		}
		return nil
	}))
	g := newCompactionGate(false)
	if db, err := openPebble(dir, opts, g); !errors.Is(err, errorfs.ErrInjected) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("open returned %v, want the injected error", err)
	}
	if g.db == nil {
		t.Fatal("Pebble failed before registering the gate: the test checks nothing")
	}
	select {
	case <-g.done:
	default:
		t.Error("the gate's granter still runs after the failed open")
	}
}
