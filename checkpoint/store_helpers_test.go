package checkpoint

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/internal/chkstore"
	"github.com/weirstream/weir/internal/objstore"
	"github.com/weirstream/weir/internal/s3dev"
)

// The tests write checkpoints through the store a job uses
// (internal/chkstore) and read them through this package.

const remoteLocation = "s3://weir-test/jobs/count"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// openStore opens a store in a fresh local directory, or in remoteLocation
// on a development S3 server, staging in a fresh local directory.
func openStore(t *testing.T, remote bool) *chkstore.Store {
	t.Helper()
	location, local := filepath.Join(t.TempDir(), "checkpoints"), ""
	if remote {
		s3dev.StartTest(t, "").SetEnv(t)
		location, local = remoteLocation, filepath.Join(t.TempDir(), "local")
	}
	s, err := chkstore.OpenLocation(context.Background(), location, local, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fill returns n bytes that differ per seed byte.
func fill(n int, b byte) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b + byte(i%251)
	}
	return out
}

// completeCheckpoint writes a checkpoint with operator state and a keyed
// directory of files, and completes it.
func completeCheckpoint(t *testing.T, s *chkstore.Store, id uint64, keyed map[string][]byte) {
	t.Helper()
	dir, err := s.Begin(id)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := s.WriteOperatorState(id, "src", 0, []byte(fmt.Sprintf("offset-%d", id)))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range keyed {
		writeFile(t, filepath.Join(dir, "state", "count", "0", name), data)
	}
	m := &chkstore.Manifest{Job: "job", ID: id, MaxParallelism: 128, Operators: []chkstore.SubtaskState{
		{Operator: "src", Subtask: 0, Parallelism: 1, StateFile: rel},
		{Operator: "count", Subtask: 0, Parallelism: 1, KeyedDir: chkstore.KeyedDir("count", 0)},
	}}
	if err := s.Complete(m); err != nil {
		t.Fatal(err)
	}
}

// putObject overwrites the object at key in remoteLocation.
func putObject(ctx context.Context, key string, data []byte) error {
	objects, err := objstore.Open(ctx, remoteLocation, objstore.Options{Logger: quiet})
	if err != nil {
		return err
	}
	_, err = objects.PutBytes(ctx, key, data)
	return err
}
