package devbrokertest

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the broker if the test process dies
// first (a go test timeout), so that no broker outlives its test. NB: Linux
// sends the signal when the thread that started the child exits; Go only
// ends threads locked with LockOSThread.
func dieWithParent(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
