package s3dev_test

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/objstore"
	"github.com/weirstream/weir/internal/s3dev"
)

var quiet = slog.New(slog.DiscardHandler)

// TestDataDirSurvivesRestart writes through one server and reads through
// another on the same data directory and address: the objects and their
// checksums (user metadata) must survive.
func TestDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	srv, err := s3dev.Start(s3dev.Config{Addr: "127.0.0.1:0", DataDir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetEnv(t)
	st, err := objstore.Open(t.Context(), "s3://weir-dev/p", objstore.Options{CreateBucket: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := st.PutBytes(t.Context(), "chk-1/MANIFEST", []byte("manifest"))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(t.Context(), "chk-1/MANIFEST"); !errors.Is(err, objstore.ErrUnreachable) {
		t.Fatalf("Stat with the server stopped = %v; want ErrUnreachable", err)
	}

	addr := strings.TrimPrefix(srv.Endpoint(), "http://")
	again, err := s3dev.Start(s3dev.Config{Addr: addr, DataDir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := st.Get(t.Context(), "chk-1/MANIFEST", filepath.Join(t.TempDir(), "m"), sum); err != nil {
		t.Fatalf("Get after a restart: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	srv := s3dev.StartTest(t, "")
	addr := strings.TrimPrefix(srv.Endpoint(), "http://")
	if _, err := s3dev.Start(s3dev.Config{Addr: addr, Logger: quiet}); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Start on a busy address = %v; want an error naming it", err)
	}
}

// TestCloseWithIdleConnection checks that Close does not wait for a
// connection that never sent a request (AWS clients open spare ones):
// http.Server.Shutdown alone waits 5 s for it and fails.
func TestCloseWithIdleConnection(t *testing.T) {
	srv, err := s3dev.Start(s3dev.Config{Addr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(srv.Endpoint(), "http://")
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	// The server accepts connections in order: once a request on a later
	// one is answered, the idle one was accepted.
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(srv.Endpoint() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := srv.Close(); err != nil {
		t.Fatalf("Close with an idle connection: %v", err)
	}
}
