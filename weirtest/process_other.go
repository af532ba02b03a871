//go:build !linux

package weirtest

import "os/exec"

// dieWithParent does nothing where the kernel cannot tie a child's life to
// its parent's: a job can outlive a kit that was killed.
func dieWithParent(*exec.Cmd) {}
