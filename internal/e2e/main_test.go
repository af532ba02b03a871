package e2e

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var quietLog = slog.New(slog.DiscardHandler)

var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
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

// jobBinary builds the kafkajob binary once per test process.
func jobBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binPath = filepath.Join(binDir, "kafkajob")
		out, err := exec.Command("go", "build", "-o", binPath, jobPkg).CombinedOutput()
		if err != nil {
			binError = fmt.Errorf("go build %s: %v\n%s", jobPkg, err, out)
		}
	})
	if binError != nil {
		t.Fatal(binError)
	}
	return binPath
}
