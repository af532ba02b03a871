//go:build unix

package statebackend

import (
	"syscall"
	"time"
)

// processCPU returns the user and system CPU time of the process, all
// goroutines included: the background writer and Pebble's compactions.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
