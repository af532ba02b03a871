// Package benchmarks holds weir's performance benchmarks: programs under
// cmd/ that measure the engine and, in the same run, a hand-written Go
// program doing the same work, and print both side by side. Machines here are
// shared and noisy, so the ratio measured within one run is what counts.
//
//	go run ./benchmarks/cmd/counting     # core runtime: keyed counting with checkpoints
package benchmarks
