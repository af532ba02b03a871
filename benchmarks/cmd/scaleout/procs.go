package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Lines a member writes to stdout for the parent.
const (
	// firstReadPrefix: its job deserialized its first input record, the
	// start of the measured run (Unix ns).
	firstReadPrefix = "first-read "
	// statusPrefix: the address of its status server (/api/status).
	statusPrefix = "status "
)

// procs are the member processes of one run.
type procs struct {
	args   []string   // a member's flags
	exited chan error // a member's exit before stop or kill
	mu     sync.Mutex
	first  time.Time // the earliest first read any member reported
	ms     []*proc
}

// proc is one member process.
type proc struct {
	cmd    *exec.Cmd
	done   chan error
	killed bool
	status chan string // its status server's address, once
}

// startMembers re-executes this binary as n members, with session as their --group-session-timeout.
func startMembers(c benchConfig, broker, input, output, group, dir string, n int, session time.Duration) (*procs, error) {
	p := &procs{exited: make(chan error, 64), args: []string{"--member", "--brokers", broker, "--input", input,
		"--output", output, "--group", group, "--checkpoint-dir", dir, "--parallelism", strconv.Itoa(c.parallelism),
		"--checkpoint-interval", c.interval.String(), "--session-timeout", session.String(), "--member-log-level", cmp.Or(c.memberLog, "warn")}}
	for range n {
		if _, err := p.start(); err != nil {
			_, _ = p.stop()
			return nil, err
		}
	}
	return p, nil
}

// start starts one more member.
func (p *procs) start() (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	m := &proc{cmd: exec.Command(self, p.args...), done: make(chan error, 1), status: make(chan string, 1)}
	m.cmd.Stderr = os.Stderr
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start a member: %w", err)
	}
	p.mu.Lock()
	p.ms = append(p.ms, m)
	i := len(p.ms) - 1
	p.mu.Unlock()
	go func() {
		p.scan(m, bufio.NewScanner(out))
		err := m.cmd.Wait()
		m.done <- err
		p.mu.Lock()
		killed := m.killed
		p.mu.Unlock()
		if !killed {
			p.exited <- fmt.Errorf("member %d: %v", i, err)
		}
	}()
	return m, nil
}

// scan reads a member's stdout for its first-read and status lines.
func (p *procs) scan(m *proc, s *bufio.Scanner) {
	for s.Scan() {
		if addr, ok := strings.CutPrefix(s.Text(), statusPrefix); ok {
			m.status <- addr
			continue
		}
		v, ok := strings.CutPrefix(s.Text(), firstReadPrefix)
		if !ok {
			continue
		}
		ns, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		t := time.Unix(0, ns)
		p.mu.Lock()
		if p.first.IsZero() || t.Before(p.first) {
			p.first = t
		}
		p.mu.Unlock()
	}
}

func (p *procs) firstRead() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first, !p.first.IsZero()
}

// cpu returns the CPU time the members used so far, read from /proc; ok
// is false where there is none.
func (p *procs) cpu() (_ time.Duration, ok bool) {
	p.mu.Lock()
	ms := slices.Clone(p.ms)
	p.mu.Unlock()
	var sum time.Duration
	for _, m := range ms {
		d, err := procCPU(m.cmd.Process.Pid)
		if err != nil {
			return 0, false
		}
		sum += d
	}
	return sum, true
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, 100 on
// every Linux architecture Go supports.
const userHZ = 100

// procCPU returns the user and system CPU time of process pid from
// /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU returns utime+stime of a /proc/<pid>/stat line. The fields
// are counted after the command name's closing parenthesis, since the name
// may hold spaces.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime and stime are fields 14 and 15.
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc stat %q: too few fields", stat)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat %q: %w", stat, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// kill kills m with SIGKILL, as a machine's loss would, and waits for it.
func (p *procs) kill(m *proc) {
	p.mu.Lock()
	m.killed = true
	p.mu.Unlock()
	_ = m.cmd.Process.Kill()
	m.done <- <-m.done // kept for stop
}

// stop stops every live member with SIGTERM (a final checkpoint, then
// leaving the group), waits for them and returns the CPU time all members
// used.
func (p *procs) stop() (time.Duration, error) {
	p.mu.Lock()
	ms := p.ms
	for _, m := range ms {
		m.killed = true // an exit now is expected
	}
	p.mu.Unlock()
	for _, m := range ms {
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
	}
	var errs []error
	var cpu time.Duration
	for i, m := range ms {
		err := <-m.done
		m.done <- err // for a second stop
		if err != nil && !m.killedBefore(err) {
			errs = append(errs, fmt.Errorf("member %d: %w", i, err))
		}
		if st := m.cmd.ProcessState; st != nil {
			cpu += st.UserTime() + st.SystemTime()
		}
	}
	return cpu, errors.Join(errs...)
}

// killedBefore reports whether err is the exit of a member that kill
// ended with SIGKILL.
func (m *proc) killedBefore(err error) bool {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return false
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
