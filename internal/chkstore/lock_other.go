//go:build !unix || solaris || aix

package chkstore

import (
	"fmt"
	"os"
	"runtime"
)

// flock is not implemented here: rather than run two jobs on one directory
// unprotected, weir refuses to open a checkpoint directory.
func flock(*os.File) (bool, error) {
	return false, fmt.Errorf("locking a checkpoint directory is not supported on %s", runtime.GOOS)
}
