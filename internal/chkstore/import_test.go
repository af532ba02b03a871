package chkstore

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/internal/chkstore/chkstoretest"
)

// TestImportCheckpointLocal imports a checkpoint of one local directory into
// another, as a task's new owner does: the id is above every id the source
// used (an incomplete one included), the lineage and the commit records are
// kept, and the files are hard links of the source's.
func TestImportCheckpointLocal(t *testing.T) {
	src, dst := openStore(t), openStore(t)
	chkstoretest.CompleteCheckpoint(t, src, 3, map[string][]byte{"000001.sst": chkstoretest.Fill(100, 1)})
	m5 := chkstoretest.CompleteCheckpoint(t, src, 5, map[string][]byte{"000001.sst": chkstoretest.Fill(100, 1), "000002.sst": chkstoretest.Fill(50, 2)})
	if err := src.MarkCommitted(5, "sink", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Begin(7); err != nil { // in flight: its owner may have pre-committed under 7
		t.Fatal(err)
	}
	chkstoretest.WriteFile(t, filepath.Join(src.Dir(7), "operators", "src.0"), []byte("pending"))
	// The lineage of a run started from a savepoint must survive the move.
	m5.Savepoint = "job/1@2026-01-01T00:00:00Z"
	rewriteManifest(t, src, m5)

	sp, err := ReadCheckpoint(context.Background(), src.Location(), 5)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dst.ImportSavepoint(context.Background(), sp)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != 8 || got.Savepoint != m5.Savepoint {
		t.Fatalf("imported as checkpoint %d with lineage %q; want 8 (above the 7 in flight) and %q", got.ID, got.Savepoint, m5.Savepoint)
	}
	if !dst.Committed(8, "sink", 0) {
		t.Fatal("the commit record of sink/0 was not imported: the sink would commit again")
	}
	latest, err := dst.Latest()
	if err != nil || latest == nil || latest.ID != 8 {
		t.Fatalf("Latest = %v, %v; want checkpoint 8", latest, err)
	}
	if err := dst.Verify(latest); err != nil {
		t.Fatal(err)
	}
	for _, f := range m5.Files {
		a, errA := os.Stat(filepath.Join(src.Dir(5), filepath.FromSlash(f.Path)))
		b, errB := os.Stat(filepath.Join(dst.Dir(8), filepath.FromSlash(f.Path)))
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			t.Errorf("file %s is not a hard link of the source's (%v, %v)", f.Path, errA, errB)
		}
	}
}

// rewriteManifest writes m again as the manifest of its checkpoint.
func rewriteManifest(t *testing.T, s *Store, m *Manifest) {
	t.Helper()
	if err := os.Remove(filepath.Join(s.Dir(m.ID), ManifestName)); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(m); err != nil {
		t.Fatal(err)
	}
}

// TestImportCheckpointRemote imports a checkpoint whose files are partly
// shared objects of an earlier checkpoint (File.Object) from one prefix of
// object storage into another, and restores it on a machine with an empty
// local directory.
func TestImportCheckpointRemote(t *testing.T) {
	startS3(t)
	ctx := context.Background()
	open := func(location string) *Store {
		s, err := OpenLocation(ctx, location, filepath.Join(t.TempDir(), "local"), quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	src := open("s3://weir-test/job/task-0/epoch-1")
	linkCheckpoint(t, src, 1, 0, nil, map[string][]byte{"000001.sst": chkstoretest.Fill(100, 1)})
	m2 := linkCheckpoint(t, src, 2, 1, []string{"000001.sst"}, map[string][]byte{"000002.sst": chkstoretest.Fill(60, 2)})
	shared := false
	for _, f := range m2.Files {
		shared = shared || f.Object != ""
	}
	if !shared {
		t.Fatal("test setup: checkpoint 2 shares no object with checkpoint 1")
	}
	sp, err := ReadCheckpoint(ctx, src.Location(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open("s3://weir-test/job/task-0/epoch-2").ImportSavepoint(ctx, sp); err != nil {
		t.Fatal(err)
	}
	fresh := open("s3://weir-test/job/task-0/epoch-2")
	m, err := fresh.Latest()
	if err != nil || m == nil || m.ID != 3 {
		t.Fatalf("Latest = %v, %v; want checkpoint 3", m, err)
	}
	if err := fresh.Verify(m); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(fresh.Dir(3), "state", "count", "0", "000001.sst"))
	if err != nil || string(data) != string(chkstoretest.Fill(100, 1)) {
		t.Fatalf("restored 000001.sst: %v", err)
	}
}
