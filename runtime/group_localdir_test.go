package runtime

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
)

// TestMemberLocalDirOnSharedDirectory: a member on a shared checkpoint
// directory keeps its tasks' live state in its LocalDir when given one, as
// on s3://, and in the tasks' epochs (the directory) otherwise.
func TestMemberLocalDirOnSharedDirectory(t *testing.T) {
	local := filepath.Join(t.TempDir(), "local")
	for _, localDir := range []string{local, ""} {
		cfg := Config{
			CheckpointDir: filepath.Join(t.TempDir(), "checkpoints"), LocalDir: localDir, Group: "orders",
			Cluster: newFakeCluster(4, nil), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		}
		cfg.EnsureDefaults()
		m, cleanup, err := newMember(t.Context(), NewPipeline("orders"), cfg)
		if err != nil {
			t.Fatal(err)
		}
		cleanup()
		if m.localRoot != localDir {
			t.Errorf("--local-dir %q: the tasks' live state goes to %q, want %q", localDir, m.localRoot, localDir)
		}
	}
}
