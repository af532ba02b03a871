package statebackend

import (
	"syscall"
	"unsafe"
)

// madvHugePage is MADV_HUGEPAGE, which the syscall package does not name.
const madvHugePage = 14

// adviseHugePages asks Linux to back a large, freshly allocated slice with
// transparent huge pages (where THP is in "madvise" mode, the common
// default, it does not otherwise). A cache lookup into a state of millions
// of keys lands on a random page: with 4 KiB pages it misses the TLB too,
// with 2 MiB pages mostly not. Measured on the counting benchmark: about a
// tenth faster. Filling such a slice the first time also faults in 512
// times fewer pages (see delta.grow). Failure is harmless and ignored: the
// advice is an optimization only.
func adviseHugePages[T any](s []T) {
	var zero T
	size := uintptr(len(s)) * unsafe.Sizeof(zero)
	if size < 4<<20 { // smaller than two huge pages: nothing to gain
		return
	}
	const page = 4096
	mem := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), size)
	p := uintptr(unsafe.Pointer(&mem[0]))
	// madvise wants whole pages: trim to the ones inside mem.
	lo, hi := (page-p%page)%page, size-(p+size)%page
	_ = syscall.Madvise(mem[lo:hi], madvHugePage)
}
