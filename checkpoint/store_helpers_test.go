package checkpoint

import (
	"context"
	"io"
	"log/slog"
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

// putObject overwrites the object at key in remoteLocation.
func putObject(ctx context.Context, key string, data []byte) error {
	objects, err := objstore.Open(ctx, remoteLocation, objstore.Options{Logger: quiet})
	if err != nil {
		return err
	}
	_, err = objects.PutBytes(ctx, key, data)
	return err
}
