//go:build linux

package e2e

import (
	"bufio"
	"io"
	"maps"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is one start of a job binary, for the tests that drive restarts
// themselves because each start differs (another --parallelism, a
// savepoint to resume from), which the crash-test kit's restarts with the
// same flags do not do. Its output is scanned for the runtime's log lines.
type proc struct {
	cmd         *exec.Cmd
	checkpoints chan struct{} // one value per completed checkpoint
	exited      chan struct{} // closed once the process exited and its output is drained

	mu        sync.Mutex
	tail      []string
	savepoint string            // the path of the last "savepoint written" line
	started   map[int]time.Time // a group member's tasks: when it last started each
	lost      int               // "tasks lost" lines: times a group member was expelled
}

// procTimeout bounds each start of a job in these tests: far above what a
// start takes on a loaded machine, it only keeps a hung job from hanging
// the test.
const procTimeout = 3 * time.Minute

// startProc starts bin with args and extra environment variables (KEY=VALUE)
// and kills it when the test ends.
func startProc(t *testing.T, bin string, args []string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	w.Close() // the child holds its own copy
	p := &proc{cmd: cmd, checkpoints: make(chan struct{}, 1<<16), exited: make(chan struct{})}
	go p.scan(r)
	t.Cleanup(p.kill)
	return p
}

func (p *proc) scan(r io.ReadCloser) {
	defer close(p.exited)
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		p.line(sc.Text())
	}
	_, _ = io.Copy(io.Discard, r) // a line too long for the buffer: drain the rest
	r.Close()
	_ = p.cmd.Wait()
}

// The runtime's log lines the tests wait for (weirtest's process.go matches
// the same), in slog's text format.
const (
	logCheckpoint = `msg="checkpoint completed"`
	logSavepoint  = `msg="savepoint written"`
	logTaskStart  = `msg="starting task"`
	logTasksLost  = `msg="tasks lost`
)

func (p *proc) line(l string) {
	p.mu.Lock()
	p.tail = append(p.tail, l)
	if len(p.tail) > 80 {
		p.tail = p.tail[len(p.tail)-80:]
	}
	if strings.Contains(l, logSavepoint) {
		p.savepoint = logValue(l, "savepoint")
	}
	if strings.Contains(l, logTaskStart) {
		task, err := strconv.Atoi(logValue(l, "task"))
		at, err2 := time.Parse(time.RFC3339Nano, logValue(" "+l, "time")) // time= opens the line
		if err == nil && err2 == nil {
			if p.started == nil {
				p.started = map[int]time.Time{}
			}
			p.started[task] = at
		}
	}
	if strings.Contains(l, logTasksLost) {
		p.lost++
	}
	p.mu.Unlock()
	if strings.Contains(l, logCheckpoint) {
		select {
		case p.checkpoints <- struct{}{}:
		default:
		}
	}
}

// logValue returns the value of key in a slog text line, unquoted.
func logValue(line, key string) string {
	_, v, ok := strings.Cut(line, " "+key+"=")
	if !ok {
		return ""
	}
	if strings.HasPrefix(v, `"`) {
		v, _, _ = strings.Cut(v[1:], `"`)
		return v
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}

// awaitCheckpoints waits for n more completed checkpoints and reports
// whether they came before the process exited.
func (p *proc) awaitCheckpoints(t *testing.T, n int) bool {
	t.Helper()
	deadline := time.NewTimer(procTimeout)
	defer deadline.Stop()
	for range n {
		select {
		case <-p.checkpoints:
		case <-p.exited:
			return false
		case <-deadline.C:
			t.Fatalf("no checkpoint within %v\n%s", procTimeout, p.log())
		}
	}
	return true
}

// wait waits for the process to exit and returns its exit code, or -1 and
// the signal that ended it.
func (p *proc) wait(t *testing.T) (code int, sig syscall.Signal) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(procTimeout):
		p.kill()
		t.Fatalf("no exit within %v\n%s", procTimeout, p.log())
	}
	st := p.cmd.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, ws.Signal()
	}
	return st.ExitCode(), 0
}

// waitSuccess waits for the process to exit 0.
func (p *proc) waitSuccess(t *testing.T, what string) {
	t.Helper()
	if code, sig := p.wait(t); code != 0 {
		t.Fatalf("%s: exit status %d (signal %v), want 0\n%s", what, code, sig, p.log())
	}
}

// waitKilled waits for the process to die by SIGKILL: sent by the test, or
// by the process itself at an armed fault point.
func (p *proc) waitKilled(t *testing.T, what string) {
	t.Helper()
	if code, sig := p.wait(t); sig != syscall.SIGKILL {
		t.Fatalf("%s: exit status %d (signal %v), want death by SIGKILL\n%s", what, code, sig, p.log())
	}
}

func (p *proc) signal(s syscall.Signal) { _ = p.cmd.Process.Signal(s) }

// kill ends the process, if still running, and waits for it.
func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.signal(syscall.SIGKILL)
	<-p.exited
}

// savepointPath returns the savepoint the process logged, or "".
func (p *proc) savepointPath() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.savepoint
}

// tasksStarted returns the tasks the process, a group member, started,
// each with the time of its last start.
func (p *proc) tasksStarted() map[int]time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.started)
}

// timesLost returns how many times the process, a group member, lost its
// tasks: was expelled from the group.
func (p *proc) timesLost() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lost
}

// lastLine returns the last of the last lines the process wrote that
// contains s, or "".
func (p *proc) lastLine(s string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.tail) - 1; i >= 0; i-- {
		if strings.Contains(p.tail[i], s) {
			return p.tail[i]
		}
	}
	return ""
}

// log returns the last lines the process wrote, indented.
func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "    " + strings.Join(p.tail, "\n    ")
}
