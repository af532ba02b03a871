// Package devbrokertest runs the development broker (package devbroker) in
// a child process for tests: the weir command's broker subcommand, built
// once per test process (package testbin) without the race detector.
//
// A broker in the test process serves every produce, fetch and
// transaction of the job binaries a test starts, and under go test -race
// that is race-instrumented code, which the test does not check for races
// (package devbroker's own tests do): in internal/e2e's group tests, whose
// members keep the broker busy, the test process spent 17.8 s of CPU with
// the broker inside and 3.4 s without (at load 12 on 2 cores). Tests that
// need no hook into the broker's internals run it here instead; stopping
// and restarting it on its address and data directory works as in the
// process.
package devbrokertest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/internal/testbin"
)

// ErrStopped is returned by methods that need a running broker after Stop.
var ErrStopped = errors.New("devbrokertest: broker stopped")

// weirPkg is the command whose broker subcommand runs the broker.
const weirPkg = "github.com/weirstream/weir/cmd/weir"

// startTimeout bounds the wait for a start's address: far above what a
// start takes on a loaded machine, it only keeps a broken binary from
// hanging the test.
const startTimeout = time.Minute

// Config configures a Broker; zero fields take the defaults of weir broker
// (and devbroker.Config), except Addr.
type Config struct {
	// Addr is the host:port to listen on; default 127.0.0.1:0, a free
	// port (Broker.Addr tells which).
	Addr string
	// Partitions is the partition count of topics created on first use.
	Partitions int
	// DataDir keeps the broker's state across Stop and Restart; empty:
	// in memory, lost at Stop.
	DataDir string
	// GroupMinSessionTimeout is the shortest session timeout a group
	// member may ask for.
	GroupMinSessionTimeout time.Duration
	// TransactionalIDExpiration is how long an unused transactional id is
	// remembered.
	TransactionalIDExpiration time.Duration
}

func (c Config) args() []string {
	args := []string{"broker", "--addr", c.Addr}
	if c.Partitions > 0 {
		args = append(args, "--partitions", strconv.Itoa(c.Partitions))
	}
	if c.DataDir != "" {
		args = append(args, "--data-dir", c.DataDir)
	}
	if c.GroupMinSessionTimeout > 0 {
		args = append(args, "--group-min-session-timeout", c.GroupMinSessionTimeout.String())
	}
	if c.TransactionalIDExpiration > 0 {
		args = append(args, "--transactional-id-expiration", c.TransactionalIDExpiration.String())
	}
	return args
}

// Broker is a development broker in a child process.
type Broker struct {
	bin string
	cfg Config // Addr is the address of the first start from then on

	mu   sync.Mutex
	cmd  *exec.Cmd     // the current start; nil after Stop
	done chan struct{} // closed when the current start's log is drained
	log  *logTail
}

// Start starts a broker, fails t if it cannot, and kills it when the test
// ends.
func Start(t testing.TB, cfg Config) *Broker {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	b := &Broker{bin: testbin.Build(t, weirPkg), cfg: cfg}
	if err := b.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.kill)
	return b
}

// start runs the binary and waits for the address it logs.
func (b *Broker) start() error {
	cmd := exec.Command(b.bin, b.cfg.args()...)
	dieWithParent(cmd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("devbrokertest: start %s: %w", b.bin, err)
	}
	log := &logTail{addr: make(chan string, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		log.scan(stderr)
	}()
	t := time.NewTimer(startTimeout)
	defer t.Stop()
	var addr string
	select {
	case addr = <-log.addr:
	case <-done:
		_ = cmd.Wait()
		return fmt.Errorf("devbrokertest: weir broker exited before it listened:\n%s", log)
	case <-t.C:
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		return fmt.Errorf("devbrokertest: weir broker did not listen within %v:\n%s", startTimeout, log)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cmd, b.done, b.log = cmd, done, log
	// NB: a restart must come back where the clients look for it.
	b.cfg.Addr = addr
	return nil
}

// Addr returns the host:port the broker listens on, the same after a
// Restart.
func (b *Broker) Addr() string { return b.cfg.Addr }

// Brokers returns the broker's address as a client's seed list.
func (b *Broker) Brokers() []string { return []string{b.cfg.Addr} }

// Log returns the last lines the current (or last) start logged.
func (b *Broker) Log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

// CreateTopic creates a topic with the given number of partitions (the
// broker's default if partitions <= 0).
func (b *Broker) CreateTopic(name string, partitions int) error {
	b.mu.Lock()
	running := b.cmd != nil
	b.mu.Unlock()
	if !running {
		return fmt.Errorf("devbrokertest: create topic %q: %w", name, ErrStopped)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.cfg.Addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	topic := kmsg.NewCreateTopicsRequestTopic()
	topic.Topic, topic.NumPartitions, topic.ReplicationFactor = name, -1, -1
	if partitions > 0 {
		topic.NumPartitions = int32(partitions)
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Topics = append(req.Topics, topic)
	req.TimeoutMillis = int32(startTimeout.Milliseconds())
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err == nil && len(resp.Topics) != 1 {
		err = fmt.Errorf("%d topics in the answer", len(resp.Topics))
	}
	if err == nil {
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}
	if err != nil {
		return fmt.Errorf("devbrokertest: create topic %q: %w", name, err)
	}
	return nil
}

// Stop stops the broker with SIGTERM, as Ctrl-C does: with a DataDir, it
// writes its state there. It returns an error, with the broker's log,
// unless the broker exited with status 0. Stopping a stopped broker does
// nothing.
func (b *Broker) Stop() error {
	b.mu.Lock()
	cmd, done, log := b.cmd, b.done, b.log
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("devbrokertest: stop: %w", err)
	}
	<-done // stderr closes when the process exits
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("devbrokertest: weir broker after SIGTERM: %w\n%s", err, log)
	}
	return nil
}

// Restart starts a stopped broker again on its address, with its Config
// (and so its DataDir).
func (b *Broker) Restart() error {
	b.mu.Lock()
	running := b.cmd != nil
	b.mu.Unlock()
	if running {
		return errors.New("devbrokertest: restart of a running broker: Stop it first")
	}
	return b.start()
}

// kill ends the broker at once, at the end of the test.
func (b *Broker) kill() {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
	_ = cmd.Wait()
}

// readyRE matches the line weir broker logs once it listens.
var readyRE = regexp.MustCompile(`msg="weir broker ready.*" addr=(\S+)`)

// logTail keeps the last lines of a start's log and reports its address.
type logTail struct {
	addr chan string // the address, once

	mu    sync.Mutex
	lines []string
}

// maxLogLines bounds the lines a logTail keeps.
const maxLogLines = 50

func (l *logTail) scan(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := readyRE.FindStringSubmatch(line); m != nil {
			select {
			case l.addr <- m[1]:
			default:
			}
		}
		l.mu.Lock()
		l.lines = append(l.lines, line)
		if len(l.lines) > maxLogLines {
			l.lines = l.lines[len(l.lines)-maxLogLines:]
		}
		l.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r) // a line too long for the buffer: drain the rest
}

func (l *logTail) String() string {
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
