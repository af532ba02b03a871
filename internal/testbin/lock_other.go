//go:build !unix

package testbin

// lock is not implemented here: Build then links a binary of its own.
func lock(string) (func(), error) { return nil, errNoLocks }
