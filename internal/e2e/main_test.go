package e2e

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
)

var quietLog = slog.New(slog.DiscardHandler)

var (
	binDir   string
	binMu    sync.Mutex
	binBuilt = map[string]string{} // package → binary
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "weir-e2e-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// binary builds the job binary of pkg once per test process, with the
// fault points of the checkpoint protocol (build tag weirfault) that the
// crash tests arm.
func binary(t testing.TB, pkg string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if bin, ok := binBuilt[pkg]; ok {
		return bin
	}
	bin := filepath.Join(binDir, path.Base(pkg))
	if out, err := exec.Command("go", "build", "-tags", "weirfault", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	binBuilt[pkg] = bin
	return bin
}

// jobBinary builds the kafkajob binary once per test process.
func jobBinary(t testing.TB) string { return binary(t, jobPkg) }
