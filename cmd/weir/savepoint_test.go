package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/checkpoint"
	"github.com/weirstream/weir/connectors/discard"
	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/internal/jobtest"
	"github.com/weirstream/weir/runtime"
)

// TestSavepointCommand asks a running job, whose status server requires a
// bearer token, for a savepoint: refused without the token, written with
// it; 'weir checkpoints list' shows it as a savepoint, and verify passes.
func TestSavepointCommand(t *testing.T) {
	t.Setenv("WEIR_METRICS_BEARER_TOKEN", "")
	p := runtime.NewPipeline("unbounded")
	src, err := generator.NewSource(generator.SourceConfig[uint64]{Record: func(seq uint64) uint64 { return seq }, RatePerSecond: 1000})
	if err != nil {
		t.Fatal(err)
	}
	sink, err := discard.NewSink(discard.SinkConfig[uint64]{})
	if err != nil {
		t.Fatal(err)
	}
	runtime.To(runtime.From(p, "gen", src), "sink", sink)
	job, err := jobtest.Start(context.Background(), p, runtime.Config{CheckpointDir: t.TempDir(), CheckpointInterval: 10 * time.Millisecond,
		MetricsAddr: "127.0.0.1:0", MetricsAuth: runtime.MetricsAuth{BearerToken: "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Wait()
	defer job.Stop()
	savepoints := t.TempDir()
	weir := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	if code, _, stderr := weir("savepoint", "--addr", job.MetricsAddr(), "--dir", savepoints); code != exitFailure || !strings.Contains(stderr, "401") {
		t.Fatalf("weir savepoint without the token: exit %d, %s; want 1 and 401", code, stderr)
	}
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("s3cret\n"), 0o600)
	code, stdout, stderr := weir("savepoint", "--addr", job.MetricsAddr(), "--dir", savepoints, "--metrics-bearer-token-file", token)
	path := strings.TrimSpace(stdout)
	if code != exitOK || !strings.HasPrefix(path, filepath.Join(savepoints, "savepoint-")) {
		t.Fatalf("weir savepoint: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	list, err := checkpoint.List(context.Background(), savepoints)
	if err != nil || len(list) != 1 || list[0].Kind != checkpoint.KindSavepoint || filepath.Join(savepoints, list[0].Dir) != path {
		t.Fatalf("List(%s) = %+v, %v; want the savepoint %s", savepoints, list, err, path)
	}
	if code, stdout, _ := weir("checkpoints", "list", savepoints); code != exitOK || !strings.Contains(stdout, "savepoint") {
		t.Fatalf("weir checkpoints list: exit %d:\n%s", code, stdout)
	}
	if code, stdout, stderr := weir("checkpoints", "verify", path); code != exitOK {
		t.Fatalf("weir checkpoints verify %s: exit %d:\n%s%s", path, code, stdout, stderr)
	}
}
