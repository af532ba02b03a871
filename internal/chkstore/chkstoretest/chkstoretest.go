// Package chkstoretest writes checkpoints for tests: those of the job's
// store (internal/chkstore) and those of package checkpoint, which reads
// what the store wrote.
package chkstoretest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/internal/manifest"
)

// Store is what the helpers use of a *chkstore.Store. NB: an interface, not
// the type, so that chkstore's own tests can use the helpers: importing
// chkstore here would be an import cycle for them.
type Store interface {
	Begin(id uint64) (string, error)
	WriteOperatorState(id uint64, operator string, subtask int, data []byte) (string, error)
	Complete(m *manifest.Manifest) error
}

// WriteFile writes data to path, creating its directory.
func WriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Fill returns n bytes that differ per seed byte b.
func Fill(n int, b byte) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b + byte(i%251)
	}
	return out
}

// CompleteCheckpoint writes checkpoint id of job "job": the operator state
// "offset-<id>" of "src" and the files keyed (by name) as the keyed state
// of "count" (in state/count/0), and completes it.
func CompleteCheckpoint(t testing.TB, s Store, id uint64, keyed map[string][]byte) *manifest.Manifest {
	t.Helper()
	dir, err := s.Begin(id)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := s.WriteOperatorState(id, "src", 0, fmt.Appendf(nil, "offset-%d", id))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range keyed {
		WriteFile(t, filepath.Join(dir, "state", "count", "0", name), data)
	}
	m := &manifest.Manifest{Job: "job", ID: id, MaxParallelism: 128, Operators: []manifest.SubtaskState{
		{Operator: "src", Subtask: 0, Parallelism: 1, StateFile: rel},
		{Operator: "count", Subtask: 0, Parallelism: 1, KeyedDir: "state/count/0"},
	}}
	if err := s.Complete(m); err != nil {
		t.Fatal(err)
	}
	return m
}
