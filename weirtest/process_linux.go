package weirtest

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the job if the process running the kit
// dies first (a go test timeout, a kill -9 of weir crashtest), so that no
// start, paused ones included, outlives its test. NB: Linux sends the signal
// when the thread that started the child exits; Go only ends threads locked
// with LockOSThread, which the kit does not use.
func dieWithParent(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
