package chkstore

import (
	"os"
	"testing"

	"github.com/weirstream/weir/internal/chkstore/chkstoretest"
)

func TestMarkCommitted(t *testing.T) {
	s := openStore(t)
	m := chkstoretest.CompleteCheckpoint(t, s, 1, map[string][]byte{"a.sst": chkstoretest.Fill(100, 1)})
	if s.Committed(1, "out", 0) {
		t.Fatal("committed before MarkCommitted")
	}
	if err := s.MarkCommitted(1, "out", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkCommitted(1, "out", 0); err != nil {
		t.Fatalf("again: %v", err)
	}
	if !s.Committed(1, "out", 0) || s.Committed(1, "out", 1) || s.Committed(1, "other", 0) || s.Committed(2, "out", 0) {
		t.Fatal("Committed does not tell exactly the marked subtask and checkpoint")
	}
	// The record is not part of the checkpoint: it still verifies.
	if err := s.Verify(m); err != nil {
		t.Fatal(err)
	}
	// A checkpoint deleted by retention is not brought back.
	if err := os.RemoveAll(s.Dir(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkCommitted(1, "out", 1); err != nil {
		t.Fatalf("mark a deleted checkpoint: %v", err)
	}
	if _, err := os.Stat(s.Dir(1)); !os.IsNotExist(err) {
		t.Fatalf("MarkCommitted recreated a deleted checkpoint: %v", err)
	}
}
