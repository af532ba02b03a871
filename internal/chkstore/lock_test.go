package chkstore

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOpenLocksDir checks that a second Store on a directory is refused
// while the first is open, with a message naming the directory and the
// holder, and allowed once the first is closed.
func TestOpenLocksDir(t *testing.T) {
	s := openStore(t)
	_, err := Open(s.Root(), quiet)
	if !errors.Is(err, ErrLocked) || !errors.Is(err, ErrUnusableDir) {
		t.Fatalf("second Open = %v; want ErrLocked and ErrUnusableDir", err)
	}
	pid := "pid " + strconv.Itoa(os.Getpid())
	for _, want := range []string{s.Root(), pid} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// The failed attempt left the holder's pid in place.
	if data, err := os.ReadFile(filepath.Join(s.Root(), lockName)); err != nil || string(data) != strconv.Itoa(os.Getpid())+"\n" {
		t.Fatalf("LOCK holds %q, %v; want this pid", data, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(s.Root(), quiet)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

const lockHelperEnv = "WEIR_CHECKPOINT_LOCK_HELPER"

// TestLockHelperProcess is not a test: run as a child by
// TestLockHeldByAnotherProcess, it opens the store named in its environment,
// reports it on stdout and holds it until killed (or its stdin closes).
func TestLockHelperProcess(t *testing.T) {
	dir := os.Getenv(lockHelperEnv)
	if dir == "" {
		t.Skip("helper process")
	}
	if _, err := Open(dir, quiet); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("locked\n")
	io.Copy(io.Discard, os.Stdin)
}

// TestLockHeldByAnotherProcess checks the lock between processes: refused
// while a child holds it, naming the child's pid, and free again once the
// child is killed with SIGKILL (the kernel releases it, so a crashed job
// leaves no stale lock).
func TestLockHeldByAnotherProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "checkpoints")
	child := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
	child.Env = append(os.Environ(), lockHelperEnv+"="+dir)
	child.Stderr = os.Stderr
	if _, err := child.StdinPipe(); err != nil { // open until the child is killed
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "locked\n" {
		t.Fatalf("helper did not lock %s: %q, %v", dir, line, err)
	}
	_, err = Open(dir, quiet)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(child.Process.Pid)) {
		t.Fatalf("Open while pid %d holds %s = %v; want ErrLocked naming that pid", child.Process.Pid, dir, err)
	}
	child.Process.Kill()
	child.Wait()
	s, err := Open(dir, quiet)
	if err != nil {
		t.Fatalf("Open after the holder was killed: %v", err)
	}
	s.Close()
}
