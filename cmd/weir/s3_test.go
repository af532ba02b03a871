package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/objstore"
	"github.com/weirstream/weir/internal/s3dev"
)

// startS3Cmd runs "weir s3" in process until the returned stop is called,
// reads the export line it prints, and sets the test's environment from it.
// stop cancels the command's context, as SIGINT or SIGTERM does, and
// checks that it exits 0 after logging its shutdown.
func startS3Cmd(t *testing.T, args ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	var stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, append([]string{"s3", "--addr", "127.0.0.1:0"}, args...), outW, &stderr)
		outW.Close()
	}()
	exports := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "export "); ok {
				exports <- line
			}
		}
		close(exports)
	}()
	var line string
	select {
	case l, ok := <-exports:
		if !ok {
			t.Fatalf("weir s3 exited (code %d) without printing the environment:\n%s", <-code, stderr.String())
		}
		line = l
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("weir s3 printed no environment within 30s")
	}
	s3dev.IsolateEnv(t)
	for _, kv := range strings.Fields(line) {
		name, value, _ := strings.Cut(kv, "=")
		t.Setenv(name, value)
	}
	return func() {
		cancel()
		if c := <-code; c != exitOK {
			t.Fatalf("weir s3 exited %d after its context ended:\n%s", c, stderr.String())
		}
		if !strings.Contains(stderr.String(), "weir s3 stopping") {
			t.Errorf("weir s3 did not log its shutdown:\n%s", stderr.String())
		}
	}
}

// TestS3Command runs "weir s3 --data-dir", creates a bucket and an object
// through the environment it prints, restarts it, and reads the object back.
func TestS3Command(t *testing.T) {
	dir := t.TempDir()
	stop := startS3Cmd(t, "--data-dir", dir)
	st, err := objstore.Open(t.Context(), "s3://weir-cli/job", objstore.Options{CreateBucket: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutBytes(t.Context(), "chk-1/MANIFEST", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	stop()

	stop = startS3Cmd(t, "--data-dir", dir)
	defer stop()
	st, err = objstore.Open(t.Context(), "s3://weir-cli/job", objstore.Options{})
	if err != nil {
		t.Fatalf("the bucket did not survive a restart: %v", err)
	}
	if data, err := st.GetBytes(t.Context(), "chk-1/MANIFEST"); err != nil || string(data) != "kept" {
		t.Fatalf("after a restart, GetBytes = %q, %v; want %q", data, err, "kept")
	}
}

func TestS3CommandUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if c := run(t.Context(), []string{"s3", "extra"}, &stdout, &stderr); c != exitUsage || !strings.Contains(stderr.String(), `unexpected argument "extra"`) {
		t.Fatalf("weir s3 extra: exit %d, stderr %q", c, stderr.String())
	}
	stderr.Reset()
	busy := startS3Cmd(t)
	defer busy()
	addr := strings.TrimPrefix(os.Getenv("AWS_ENDPOINT_URL"), "http://")
	if c := run(t.Context(), []string{"s3", "--addr", addr}, &stdout, &stderr); c != exitFailure || !strings.Contains(stderr.String(), "Pick another --addr") {
		t.Fatalf("weir s3 on a busy port: exit %d, stderr %q", c, stderr.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the command's goroutine and the
// test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
