package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procs are the member processes of one run.
type procs struct {
	cmds   []*exec.Cmd
	exited chan error // a member's exit before stop
	waited []chan error
	mu     sync.Mutex
	first  time.Time // the earliest first read any member reported
}

// startMembers re-executes this binary as n members.
func startMembers(c benchConfig, broker, input, output, group, dir string, n int) (*procs, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p := &procs{exited: make(chan error, n)}
	for i := range n {
		cmd := exec.Command(self, "--member", "--brokers", broker, "--input", input, "--output", output,
			"--group", group, "--checkpoint-dir", dir, "--parallelism", strconv.Itoa(c.parallelism),
			"--checkpoint-interval", c.interval.String())
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			_, _ = p.stop()
			return nil, fmt.Errorf("start member %d: %w", i, err)
		}
		p.cmds = append(p.cmds, cmd)
		done := make(chan error, 1)
		p.waited = append(p.waited, done)
		go func() {
			p.scan(bufio.NewScanner(out))
			err := cmd.Wait()
			done <- err
			p.exited <- fmt.Errorf("member %d: %v", i, err)
		}()
	}
	return p, nil
}

// scan reads a member's stdout for its first-read line.
func (p *procs) scan(s *bufio.Scanner) {
	for s.Scan() {
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

// stop stops every member with SIGTERM (a final checkpoint, then leaving
// the group), waits for them and returns the CPU time they used.
func (p *procs) stop() (time.Duration, error) {
	for _, cmd := range p.cmds {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	var errs []error
	var cpu time.Duration
	for i, cmd := range p.cmds {
		if err := <-p.waited[i]; err != nil {
			errs = append(errs, fmt.Errorf("member %d: %w", i, err))
		}
		if st := cmd.ProcessState; st != nil {
			cpu += st.UserTime() + st.SystemTime()
		}
	}
	return cpu, errors.Join(errs...)
}
