//go:build unix && !solaris && !aix

package chkstore

import (
	"errors"
	"os"
	"syscall"
)

// flock takes an exclusive lock on f without waiting; held reports that
// another open file holds it. The kernel drops the lock when f is closed or
// the process dies (kill -9 included), so a crashed job never leaves a stale
// lock behind.
func flock(f *os.File) (held bool, err error) {
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}
