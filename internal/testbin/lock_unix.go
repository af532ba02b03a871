//go:build unix

package testbin

import (
	"fmt"
	"os"
	"syscall"
)

// lock takes an exclusive lock on the file name, waiting for other
// processes to release it, and returns its release. The kernel releases it
// if the process dies.
func lock(name string) (unlock func(), err error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return func() { f.Close() }, nil
}
