//go:build !linux

package statebackend

// adviseHugePages is a no-op where transparent huge pages are not a thing;
// see the Linux version.
func adviseHugePages[T any]([]T) {}
