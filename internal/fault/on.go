//go:build weirfault

package fault

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Enabled is true: the binary has fault points.
const Enabled = true

var (
	armed string       // point name, empty when disarmed
	count atomic.Int64 // passes left before the crash
)

func init() {
	spec := os.Getenv(EnvVar)
	if spec != "" || os.Getenv(CheckEnvVar) != "" {
		fmt.Fprintln(os.Stderr, AckLine)
	}
	if spec == "" {
		return
	}
	name, n, ok := strings.Cut(spec, ":")
	k, err := strconv.Atoi(n)
	if !ok || err != nil || k < 1 {
		fmt.Fprintf(os.Stderr, "weir: ignoring %s=%q: want point:n with n >= 1\n", EnvVar, spec)
		return
	}
	armed = name
	count.Store(int64(k))
}

// Point kills the process if a crash is armed at name and this is the n-th
// pass.
func Point(name string) {
	if armed != name {
		return
	}
	if count.Add(-1) == 0 {
		fmt.Fprintf(os.Stderr, "weir: injected crash at %s\n", name)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is delivered asynchronously
	}
}
