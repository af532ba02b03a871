package chkstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/internal/chkstore/chkstoretest"
)

// openAt opens the checkpoint directory dir with the local directory local
// ("" for none), as a job started with or without --local-dir does.
func openAt(t *testing.T, dir, local string) *Store {
	t.Helper()
	s, err := OpenLocation(context.Background(), dir, local, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// restoreVerified finds, verifies and restores the newest checkpoint of s as
// the engine does at start, checks it is want and that its keyed state holds
// the files keyed, and returns its manifest.
func restoreVerified(t *testing.T, s *Store, want uint64, keyed map[string][]byte) *Manifest {
	t.Helper()
	m, err := s.Latest()
	if err != nil || m == nil || m.ID != want {
		t.Fatalf("Latest of %s = %v, %v; want checkpoint %d", s.Location(), m, err, want)
	}
	if err := s.Verify(m); err != nil {
		t.Fatalf("verify checkpoint %d of %s: %v", want, s.Location(), err)
	}
	if err := s.MoveIncompleteAside(); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(s.Root(), "live", "count")
	if ok, err := s.RestoreKeyed(m, "count", 0, live); !ok || err != nil {
		t.Fatalf("restore keyed state of checkpoint %d: %v, %v", want, ok, err)
	}
	for name, data := range keyed {
		got, err := os.ReadFile(filepath.Join(live, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("checkpoint %d restored %s as %d bytes (%v), want %d", want, name, len(got), err, len(data))
		}
	}
	return m
}

// TestDirWithLocalDir switches a checkpoint directory between runs without
// --local-dir (live state and checkpoints in the directory) and runs with
// one (live state local, checkpoints copied into the directory, sharing
// unchanged files with earlier ones by reference), both ways: every run
// restores the newest checkpoint the previous one wrote, no id is reused,
// and retention in either mode leaves the newest checkpoint restorable in
// the other.
func TestDirWithLocalDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "checkpoints")
	a, b := chkstoretest.Fill(300, 1), chkstoretest.Fill(200, 2)

	// A run without --local-dir: checkpoint 1, live state, an incomplete
	// checkpoint moved aside (its sinks may have pre-committed under 9).
	plain := openAt(t, dir, "")
	if plain.remote != nil || plain.Root() != dir {
		t.Fatalf("without a local directory, %s was not opened as a plain checkpoint directory", dir)
	}
	chkstoretest.CompleteCheckpoint(t, plain, 1, map[string][]byte{"a.sst": a})
	chkstoretest.WriteFile(t, filepath.Join(dir, "live", "count", "000009.log"), []byte("live"))
	if err := os.MkdirAll(filepath.Join(dir, asideName, "chk-0000000009"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain.Close()

	// A run with --local-dir restores it and keeps its live state local.
	local := filepath.Join(t.TempDir(), "local")
	withLocal := openAt(t, dir, local)
	if withLocal.remote == nil || withLocal.Root() != local || withLocal.Location() != dir {
		t.Fatalf("with --local-dir, root %s and location %s; want %s and %s", withLocal.Root(), withLocal.Location(), local, dir)
	}
	if _, err := Open(dir, quiet); !errors.Is(err, ErrLocked) {
		t.Fatalf("a second job on %s without --local-dir: %v, want ErrLocked", dir, err)
	}
	restoreVerified(t, withLocal, 1, map[string][]byte{"a.sst": a})
	if _, err := os.Stat(filepath.Join(dir, "live")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the stale live state of the run without --local-dir is still in %s (%v)", dir, err)
	}
	if next, err := withLocal.NextID(); next != 10 || err != nil {
		t.Fatalf("NextID = %d, %v; want 10, above the checkpoint moved aside", next, err)
	}
	m10 := linkCheckpoint(t, withLocal, 10, 1, []string{"a.sst"}, map[string][]byte{"b.sst": b})
	shared := filepath.Join(dir, "chk-0000000010", "state", "count", "0", "a.sst")
	if _, err := os.Stat(shared); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unchanged a.sst was copied again to %s (%v); want it shared with checkpoint 1", shared, err)
	}
	if err := withLocal.Retain(1); err != nil {
		t.Fatal(err)
	}
	withLocal.Close()

	// Without --local-dir again: checkpoint 10 restores, though checkpoint 1
	// that holds a.sst is no longer complete, and retention of the
	// directory's own checkpoints keeps it restorable.
	plain = openAt(t, dir, "")
	restoreVerified(t, plain, 10, map[string][]byte{"a.sst": a, "b.sst": b})
	if next, err := plain.NextID(); next != 11 || err != nil {
		t.Fatalf("NextID = %d, %v; want 11", next, err)
	}
	m11 := linkCheckpoint(t, plain, 11, 10, []string{"a.sst", "b.sst"}, nil)
	for _, f := range m11.Files {
		if f.Object != "" {
			t.Fatalf("checkpoint 11 of a run without --local-dir names %s for %s: its files must be its own", f.Object, f.Path)
		}
	}
	if err := plain.Retain(1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(plain.Dir(m10.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("retention kept checkpoint 10 (%v)", err)
	}
	plain.Close()

	// And with a fresh --local-dir, as on another machine.
	withLocal = openAt(t, dir, filepath.Join(t.TempDir(), "local"))
	restoreVerified(t, withLocal, 11, map[string][]byte{"a.sst": a, "b.sst": b})
}

// TestDirWithLocalDirSameDir checks that a --local-dir that is the
// checkpoint directory itself is no local directory: nothing is copied.
func TestDirWithLocalDirSameDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "checkpoints")
	s := openAt(t, dir, dir+"/")
	if s.remote != nil || s.Root() != dir {
		t.Fatalf("--local-dir %s/ opened as a separate local directory", dir)
	}
}
