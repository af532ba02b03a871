package statebackend

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// TestRestoredDatabaseCompactsAfterFirstCheckpoint checks that a restored
// database whose L0 is past its compaction depth starts no compaction in
// Open or before its first snapshot is checkpointed (the compaction
// started inside pebble.Open, which waited for it: see compactionGate),
// and compacts after it.
func TestRestoredDatabaseCompactsAfterFirstCheckpoint(t *testing.T) {
	const tables = 12 // past L0's compaction depth of 8 (dbOptions)
	dir := filepath.Join(t.TempDir(), "live")
	opts := dbOptions(dir, nil, slog.New(slog.DiscardHandler))
	opts.DisableAutomaticCompactions = true // as a checkpoint taken before the live database compacted
	db, err := pebble.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range tables {
		for k := range 100 { // overlapping tables, as deltas are
			if err := db.Set(fmt.Appendf(nil, "k%03d", k), fmt.Appendf(nil, "%d", i), pebble.NoSync); err != nil {
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
