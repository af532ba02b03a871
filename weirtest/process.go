package weirtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/weirstream/weir/internal/fault"
)

// The log lines a weir job writes (internal/engine/coordinator.go,
// internal/engine/restart.go, internal/fault), matched in both of slog's
// formats (text: msg="…", JSON: "msg":"…").
const (
	logCheckpoint = "checkpoint completed"
	logRestart    = "job failed; restarting from the last complete checkpoint"
	logInjected   = "injected crash at "
)

func isMsg(line, msg string) bool {
	return strings.Contains(line, `msg="`+msg+`"`) || strings.Contains(line, `"msg":"`+msg+`"`)
}

// tailLines is how many lines of a start's output a failure report shows.
const tailLines = 60

// child is one start of a job binary. Its stdout and stderr are scanned for
// the runtime's log lines and their tail kept for failure reports.
type child struct {
	cmd         *exec.Cmd
	checkpoints chan struct{} // one value per completed checkpoint
	exited      chan struct{} // closed when the process has exited and its output is drained

	mu       sync.Mutex
	tail     []string
	restarts int       // in-process restarts logged
	injected bool      // the process reported an injected crash
	needAck  bool      // the binary must acknowledge fault points (fault.AckLine)
	acked    bool      // it did
	first    time.Time // when the first completed checkpoint was logged
}

// startChild starts bin with args and extra environment variables. With
// needAck, a child that logs a checkpoint before acknowledging fault points
// is killed: it would run without crashing.
func startChild(bin string, args, env []string, needAck bool) (*child, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	dieWithParent(cmd)
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	w.Close() // the child holds its own copy
	c := &child{cmd: cmd, checkpoints: make(chan struct{}, 1<<16), exited: make(chan struct{}), needAck: needAck}
	go c.scan(r)
	return c, nil
}

func (c *child) scan(r io.ReadCloser) {
	defer close(c.exited)
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		c.line(sc.Text())
	}
	// NB: a line longer than the buffer stops the scan; drain the rest so
	// that the child never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
	r.Close()
	_ = c.cmd.Wait()
}

func (c *child) line(l string) {
	c.mu.Lock()
	c.tail = append(c.tail, l)
	if len(c.tail) > tailLines {
		c.tail = c.tail[len(c.tail)-tailLines:]
	}
	if isMsg(l, logRestart) {
		c.restarts++
	}
	if strings.Contains(l, logInjected) {
		c.injected = true
	}
	if l == fault.AckLine {
		c.acked = true
	}
	checkpoint := isMsg(l, logCheckpoint)
	if checkpoint && c.needAck && !c.acked {
		c.signal(syscall.SIGKILL) // no fault points: start reports it
	}
	if checkpoint && c.first.IsZero() {
		c.first = time.Now()
	}
	c.mu.Unlock()
	if checkpoint {
		select {
		case c.checkpoints <- struct{}{}:
		default:
		}
	}
}

func (c *child) signal(s syscall.Signal) { _ = c.cmd.Process.Signal(s) }

// wait waits for the child to exit or ctx to end (then it kills the child).
// It returns the exit code, or -1 and the signal if a signal ended it.
func (c *child) wait(ctx context.Context) (code int, sig syscall.Signal, err error) {
	select {
	case <-c.exited:
	case <-ctx.Done():
		c.signal(syscall.SIGCONT) // a stopped child must run to die
		c.signal(syscall.SIGKILL)
		<-c.exited
		return -1, 0, ctx.Err()
	}
	st := c.cmd.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, ws.Signal(), nil
	}
	return st.ExitCode(), 0, nil
}

// kill ends the child, if still running, and waits for it.
func (c *child) kill() {
	select {
	case <-c.exited:
		return
	default:
	}
	c.signal(syscall.SIGCONT)
	c.signal(syscall.SIGKILL)
	<-c.exited
}

// log returns the last lines the child wrote, indented.
func (c *child) log() string {
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

// firstCheckpoint returns when the first completed checkpoint was logged,
// or the zero time.
func (c *child) firstCheckpoint() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first
}

func (c *child) counts() (restarts int, injected, acked bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restarts, c.injected, c.acked
}
