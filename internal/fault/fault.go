// Package fault injects crashes at named points of the runtime, for crash
// tests. It is driven by the environment variable WEIR_CRASH_AT, of the form
// "point:n": the process kills itself with SIGKILL the n-th time it passes
// point. Without the variable, Point is a cheap no-op.
package fault

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// EnvVar names the environment variable that arms a crash.
const EnvVar = "WEIR_CRASH_AT"

var (
	armed string       // point name, empty when disarmed
	count atomic.Int64 // passes left before the crash
)

func init() {
	spec := os.Getenv(EnvVar)
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
