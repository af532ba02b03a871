// Package pgtest runs a throwaway PostgreSQL server for tests, from the
// binaries of Debian's postgresql package (/usr/lib/postgresql/<version>/bin).
// A test package shares one server among its tests, started by the first
// that needs one and stopped by Main:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// and each test asks for a database of its own with DB(t), which skips the
// test with the reason when no server could be started (PostgreSQL not
// installed: `make test-deps` as root installs it).
//
// The server runs in a temporary directory, listens on 127.0.0.1 on a free
// port, allows prepared transactions, and trades durability for speed
// (fsync off): the tests crash jobs, never the server. Run as root, it runs
// as the postgres user, because the server refuses to run as root.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Password is the password of the server's superuser, "postgres". TCP
// connections authenticate with it (scram-sha-256).
const Password = "weir-pgtest-secret"

// Options configure a server.
type Options struct {
	// Settings are extra server settings (name → value), passed as -c
	// name=value; they override the defaults of Start.
	Settings map[string]string
	// Durable keeps fsync on (benchmarks); tests leave it off.
	Durable bool
	// TLSCert and TLSKey, if set, are PEM files of the server's
	// certificate and key: the server then accepts TLS (ssl=on). They are
	// copied into the server's directory, readable by the server only.
	TLSCert, TLSKey string
}

// Server is a running PostgreSQL server.
type Server struct {
	dir  string // temporary directory: data/ and the socket
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when the postmaster has exited
	log  *os.File
	dbs  atomic.Int64
}

// ErrNotInstalled reports that no PostgreSQL server binaries were found.
var ErrNotInstalled = errors.New("pgtest: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); " +
	"install Debian's postgresql package (`make test-deps` does, as root)")

// binGlob matches the bin directories of Debian's PostgreSQL packages.
var binGlob = "/usr/lib/postgresql/*/bin"

// BinDir returns the bin directory of the newest PostgreSQL installed from
// Debian's packages.
func BinDir() (string, error) {
	dirs, _ := filepath.Glob(binGlob)
	dirs = slices.DeleteFunc(dirs, func(d string) bool {
		_, err := os.Stat(filepath.Join(d, "initdb"))
		return err != nil
	})
	if len(dirs) == 0 {
		return "", ErrNotInstalled
	}
	slices.SortFunc(dirs, func(a, b string) int { return version(a) - version(b) })
	return dirs[len(dirs)-1], nil
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start initializes a cluster in a new temporary directory and starts it.
func Start(opts Options) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "weir-pgtest-*")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, done: make(chan struct{})}
	if err := s.start(bin, cred, opts); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// credential returns the identity the server must run as: the postgres
// user when we are root, else nil (ourselves).
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, and the server refuses root, but there is no postgres user to run it as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (s *Server) start(bin string, cred *syscall.Credential, opts Options) error {
	if cred != nil {
		if err := os.Chown(s.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	pwfile := filepath.Join(s.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(Password+"\n"), 0o600); err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(pwfile, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	data := filepath.Join(s.dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-E", "UTF8",
		"--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile="+pwfile, "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	settings := map[string]string{
		"listen_addresses":          "127.0.0.1",
		"unix_socket_directories":   s.dir,
		"max_prepared_transactions": "64",
		"max_connections":           "200",
		"fsync":                     "off",
		"synchronous_commit":        "off",
		"full_page_writes":          "off",
	}
	if opts.Durable {
		delete(settings, "fsync")
		delete(settings, "synchronous_commit")
		delete(settings, "full_page_writes")
	}
	if opts.TLSCert != "" {
		for _, f := range [][2]string{{opts.TLSCert, "server.crt"}, {opts.TLSKey, "server.key"}} {
			if err := copyFor(f[0], filepath.Join(s.dir, f[1]), cred); err != nil {
				return err
			}
		}
		settings["ssl"] = "on"
		settings["ssl_cert_file"] = filepath.Join(s.dir, "server.crt")
		settings["ssl_key_file"] = filepath.Join(s.dir, "server.key")
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	var err error
	if s.log, err = os.Create(filepath.Join(s.dir, "server.log")); err != nil {
		return err
	}
	// NB: a port found free may be taken before the server binds it; try
	// a few.
	for range 5 {
		if s.port, err = freePort(); err != nil {
			return err
		}
		args := []string{"-D", data, "-p", strconv.Itoa(s.port)}
		for _, k := range slices.Sorted(mapKeys(settings)) {
			args = append(args, "-c", k+"="+settings[k])
		}
		s.cmd = exec.Command(filepath.Join(bin, "postgres"), args...)
		s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
		// Pdeathsig: a test binary killed by a timeout takes its server along.
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
		if err := s.cmd.Start(); err != nil {
			return fmt.Errorf("pgtest: start postgres: %w", err)
		}
		s.done = make(chan struct{})
		go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.done)
		if err = s.waitReady(time.Minute); err == nil {
			return nil
		}
		select {
		case <-s.done: // exited: maybe the port was taken; try another
		default:
			return err
		}
	}
	return err
}

// copyFor copies src to dst, mode 0600, owned by cred (the server's user).
func copyFor(src, dst string, cred *syscall.Credential) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if cred != nil {
		return os.Chown(dst, int(cred.Uid), int(cred.Gid))
	}
	return nil
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls until the server accepts connections, it exits, or
// timeout passes. (The server announces readiness only in its log.)
func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, s.URL("postgres"))
		cancel()
		if err == nil {
			c.Close(context.Background())
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("pgtest: postgres exited at start:\n%s", s.Log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: postgres not ready after %v: %v\n%s", timeout, err, s.Log())
		}
	}
}

// URL returns the connection URL of database db as the superuser.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", Password, s.port, db)
}

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.port }

// CreateDB creates a new empty database and returns its URL.
func (s *Server) CreateDB(ctx context.Context, prefix string) (string, error) {
	name := fmt.Sprintf("%s_%d", sanitize(prefix), s.dbs.Add(1))
	c, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return s.URL(name), nil
}

func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '_'
	}, s)
	return s[:min(len(s), 40)]
}

// Log returns the server's log.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// Stop shuts the server down (fast shutdown: open transactions are rolled
// back, prepared ones kept) and removes its directory.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	if s.log != nil {
		s.log.Close()
	}
	os.RemoveAll(s.dir)
}

// shared is the server of the test package: the first test that needs it
// starts it, and Main stops it after the last.
var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
	inMain     bool
)

// Main runs the package's tests and stops the shared server if one of them
// started it; it returns the exit code for os.Exit.
func Main(m *testing.M) int {
	inMain = true
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	return code
}

// Shared returns the package's server, starting it on first use, or skips
// t with the reason there is none.
func Shared(t testing.TB) *Server {
	t.Helper()
	if !inMain {
		t.Fatal("pgtest: call pgtest.Main from TestMain, so that the server is stopped after the tests")
	}
	sharedOnce.Do(func() { shared, sharedErr = Start(Options{}) })
	if sharedErr != nil {
		t.Skipf("skipped: no PostgreSQL server: %v", sharedErr)
	}
	return shared
}

// DB creates a database for t on the shared server and returns its URL; it
// skips t when there is no server.
func DB(t testing.TB) string {
	t.Helper()
	s := Shared(t)
	url, err := s.CreateDB(t.Context(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return url
}
