// Package s3dev runs an in-process, S3-compatible server for development and
// tests, as package devbroker does for Kafka: `weir s3` serves it, and tests
// start one per test with StartTest. It is a thin layer over gofakes3
// (github.com/johannesboyne/gofakes3), chosen because it is a library that
// builds from Go modules, starts in microseconds, and speaks what the object
// store needs: single PUTs of any size, multipart uploads, ListObjectsV2 with
// prefixes and continuation tokens, HeadObject, DeleteObject(s), user
// metadata and bucket creation. A real server built from Go modules (such as
// SeaweedFS) would be heavier to embed and to start per test.
//
// It accepts any credentials and never checks request signatures; buckets
// are not created on first use (the client is expected to create its own,
// as a job does). Without DataDir, objects live in memory. With DataDir,
// each object is a file under DataDir/buckets/BUCKET/KEY and its metadata a
// file under DataDir/metadata, so they survive a restart of the server.
//
// It is not a production server. In particular, with DataDir an object is
// written in place, without fsync: a crash of the server (not of its
// clients) can leave a truncated object, which the checksum verification of
// package objstore then refuses. And a listing from DataDir returns every
// matching key in one page, however many (gofakes3's file backend does not
// page), which clients handle as a last page; the in-memory store pages.
package s3dev

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Region is the region Env gives clients; the server accepts any.
const Region = "us-east-1"

// Config configures a Server.
type Config struct {
	// Addr is the host:port to listen on. Default 127.0.0.1:9000; port 0
	// picks a free port (see Server.Endpoint).
	Addr string
	// DataDir, if set, keeps buckets and objects in this directory across
	// restarts. Empty means in memory only.
	DataDir string
	// Logger receives the server's logs; gofakes3's per-request logs at
	// Debug level. Default slog.Default().
	Logger *slog.Logger
}

// Server is a running development S3 server.
type Server struct {
	http     *http.Server
	ln       net.Listener
	endpoint string
	done     chan error
	mu       sync.Mutex
	fresh    map[net.Conn]bool // connections that have not sent a request yet
}

// Start starts a server and returns once it accepts connections.
func Start(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:9000"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	backend, err := newBackend(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("s3dev: listen on %s: %w", cfg.Addr, err)
	}
	fake := gofakes3.New(backend, gofakes3.WithLogger(slogAdapter{cfg.Logger}), gofakes3.WithoutVersioning())
	s := &Server{
		http:     &http.Server{Handler: fake.Server(), ReadHeaderTimeout: 30 * time.Second},
		ln:       ln,
		endpoint: "http://" + ln.Addr().String(),
		done:     make(chan error, 1),
		fresh:    map[net.Conn]bool{},
	}
	s.http.ConnState = s.track
	go func() { s.done <- s.http.Serve(ln) }()
	return s, nil
}

func newBackend(dir string) (gofakes3.Backend, error) {
	if dir == "" {
		return s3mem.New(), nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("s3dev: data directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("s3dev: data directory %s: %w", dir, err)
	}
	fs, err := s3afero.FsPath(abs, 0)
	if err != nil {
		return nil, fmt.Errorf("s3dev: data directory %s: %w", dir, err)
	}
	b, err := s3afero.MultiBucket(fs)
	if err != nil {
		return nil, fmt.Errorf("s3dev: data directory %s: %w", dir, err)
	}
	return b, nil
}

// Endpoint returns the server's URL, e.g. http://127.0.0.1:9000: the value
// of AWS_ENDPOINT_URL for its clients.
func (s *Server) Endpoint() string { return s.endpoint }

// Env returns the environment a client needs to use the server, as
// NAME=value: the endpoint, a region and placeholder credentials (any are
// accepted).
func (s *Server) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL=" + s.endpoint,
		"AWS_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=weir",
		"AWS_SECRET_ACCESS_KEY=weir",
	}
}

// track keeps the set of connections that have not sent a request yet.
func (s *Server) track(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if state == http.StateNew {
		s.fresh[c] = true
	} else {
		delete(s.fresh, c)
	}
}

// Close stops the server, waiting up to 5 seconds for requests in flight.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// NB: Shutdown waits 5 s for a connection that has sent no request, and
	// AWS clients open spare ones: once no connection can arrive, close
	// those; their clients retry elsewhere.
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.fresh {
		c.Close()
	}
	s.mu.Unlock()
	if serr := s.http.Shutdown(ctx); err == nil && !errors.Is(serr, net.ErrClosed) {
		err = serr
	}
	if serr := <-s.done; err == nil && !errors.Is(serr, http.ErrServerClosed) && !errors.Is(serr, net.ErrClosed) {
		err = serr
	}
	return err
}

// StartTest starts a server on a free loopback port for the test tb, in
// memory if dir is empty, and stops it when the test ends.
func StartTest(tb testing.TB, dir string) *Server {
	tb.Helper()
	s, err := Start(Config{Addr: "127.0.0.1:0", DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("s3dev: close: %v", err)
		}
	})
	return s
}

// SetEnv points the test's AWS environment at the server (t.Setenv, so not
// for parallel tests). It also isolates the test from the machine's AWS
// configuration: no profile, config or credentials file is read, and the
// EC2 instance metadata service is never asked for credentials.
func (s *Server) SetEnv(tb testing.TB) {
	tb.Helper()
	IsolateEnv(tb)
	for _, kv := range s.Env() {
		name, value, _ := strings.Cut(kv, "=")
		tb.Setenv(name, value)
	}
}

// IsolateEnv clears the test's AWS environment, so that what it configures
// is all an AWS client sees: no credentials, no endpoint, no region, no
// profile or shared files, and no instance metadata service.
func IsolateEnv(tb testing.TB) {
	tb.Helper()
	empty := filepath.Join(tb.TempDir(), "none")
	for _, name := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		tb.Setenv(name, "")
		os.Unsetenv(name)
	}
	tb.Setenv("AWS_CONFIG_FILE", empty)
	tb.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	tb.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// slogAdapter passes gofakes3's logs to slog: errors as errors, the rest at
// Debug level (it logs every request at info).
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Print(level gofakes3.LogLevel, v ...any) {
	msg := fmt.Sprint(v...)
	if level == gofakes3.LogErr {
		a.l.Error("s3dev: " + msg)
		return
	}
	a.l.Debug("s3dev: "+msg, "level", string(level))
}
