package weirtest_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/weirtest"
)

// helperEnv names the job a re-executed test binary runs Check on.
const helperEnv = "WEIRTEST_HELPER_JOB"

// TestJobDiesWithKit kills the process running the kit (this test binary,
// re-executed) with SIGKILL while its job runs, and checks that the job
// does not outlive it.
func TestJobDiesWithKit(t *testing.T) {
	if bin := os.Getenv(helperEnv); bin != "" {
		_, err := weirtest.Check(t.Context(), weirtest.Job{Binary: bin, Args: []string{"{dir}"},
			Output: weirtest.Files{Dir: "{dir}/out"}, Kills: 1, WorkDir: t.TempDir()})
		t.Fatalf("the job should have run until this process was killed: %v", err)
	}
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	bin := script(t, "echo $$ > "+pidFile+".tmp && mv "+pidFile+".tmp "+pidFile+"\nexec sleep 300\n")
	helper := exec.Command(os.Args[0], "-test.run=^TestJobDiesWithKit$")
	// The helper dies by SIGKILL and cannot remove its temporary
	// directories: they go under this test's, which is removed.
	helper.Env = append(os.Environ(), helperEnv+"="+bin, "TMPDIR="+t.TempDir())
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer helper.Process.Kill()
	pid := waitFor(t, "the job to start", func() (int, bool) {
		b, err := os.ReadFile(pidFile)
		n, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		return n, err == nil && perr == nil
	})
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	waitFor(t, "the job to die with the kit", func() (int, bool) { return 0, !running(pid) })
}

// running reports whether pid is a live process (not gone, not a zombie).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	return err == nil && !strings.HasPrefix(s[strings.LastIndexByte(s, ')')+1:], " Z")
}

// waitFor polls cond (a process outside the test has no other signal to
// give) for up to a minute.
func waitFor(t *testing.T, what string, cond func() (int, bool)) int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if v, ok := cond(); ok {
			return v
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
	return 0
}
