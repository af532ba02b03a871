//go:build !linux

package devbrokertest

import "os/exec"

// dieWithParent does nothing where the kernel cannot tie a child's life to
// its parent's: a broker can outlive a test process that was killed.
func dieWithParent(*exec.Cmd) {}
