package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Child is a job binary running as a child process. Its stderr is scanned
// for the runtime's "checkpoint completed" log lines and kept for failure
// reports.
type Child struct {
	cmd         *exec.Cmd
	checkpoints chan struct{} // one value per completed checkpoint
	exited      chan struct{} // closed when the process has exited
	state       *os.ProcessState

	mu   sync.Mutex
	tail []string // last lines of stderr
}

const tailLines = 60

// StartChild starts bin with args and extra environment variables.
func StartChild(t testing.TB, bin string, env []string, args ...string) *Child {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	c := &Child{cmd: cmd, checkpoints: make(chan struct{}, 1<<16), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.tail = append(c.tail, line)
			if len(c.tail) > tailLines {
				c.tail = c.tail[len(c.tail)-tailLines:]
			}
			c.mu.Unlock()
			if strings.Contains(line, `msg="checkpoint completed"`) {
				select {
				case c.checkpoints <- struct{}{}:
				default:
				}
			}
		}
		_ = cmd.Wait() // after stderr is drained, as exec requires
		c.state = cmd.ProcessState
		close(c.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.exited
	})
	return c
}

// Checkpoints receives a value for every checkpoint the child completes.
func (c *Child) Checkpoints() <-chan struct{} { return c.checkpoints }

// Exited is closed when the child has exited.
func (c *Child) Exited() <-chan struct{} { return c.exited }

// Kill sends SIGKILL.
func (c *Child) Kill() { _ = c.cmd.Process.Signal(syscall.SIGKILL) }

// ErrTimeout is returned by Wait when the child does not exit in time.
var ErrTimeout = errors.New("e2e: child did not exit in time")

// Wait waits up to timeout for the child to exit and returns its exit code
// and whether SIGKILL ended it.
func (c *Child) Wait(timeout time.Duration) (code int, killed bool, err error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
		return -1, false, ErrTimeout
	}
	if ws, ok := c.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, ws.Signal() == syscall.SIGKILL, nil
	}
	return c.state.ExitCode(), false, nil
}

// Log returns the last lines the child wrote to stderr.
func (c *Child) Log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b bytes.Buffer
	for _, l := range c.tail {
		b.WriteString("    ")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}
