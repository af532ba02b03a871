package e2e

import (
	"log/slog"
	"os"
	"testing"

	"github.com/weirstream/weir/internal/testbin"
)

var quietLog = slog.New(slog.DiscardHandler)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Remove()
	os.Exit(code)
}

// binary builds the job binary of pkg once per test process, with the
// fault points of the checkpoint protocol (build tag weirfault) that the
// crash tests arm.
func binary(t testing.TB, pkg string) string {
	t.Helper()
	return testbin.Build(t, pkg, "-tags", "weirfault")
}

// jobBinary builds the kafkajob binary once per test process.
func jobBinary(t testing.TB) string { return binary(t, jobPkg) }
