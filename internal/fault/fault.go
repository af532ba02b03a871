// Package fault injects crashes at named points of the engine, for crash
// tests. The points compile only with the build tag "weirfault" (as Pebble
// gates its invariants); without it Point is an empty function the compiler
// drops, so users' job binaries carry no fault points.
//
// A binary built with the tag is driven by the environment variable
// WEIR_CRASH_AT, of the form "point:n": the process kills itself with
// SIGKILL the n-th time it passes point. So that a crash test cannot pass
// by never crashing, the binary acknowledges at start-up: when EnvVar or
// CheckEnvVar is set, it writes AckLine to stderr before anything else.
// The crash-test kit (package weirtest) sets CheckEnvVar on every start of
// a job it crashes at protocol points and refuses a binary that does not
// acknowledge.
package fault

const (
	// EnvVar names the environment variable that arms a crash.
	EnvVar = "WEIR_CRASH_AT"
	// CheckEnvVar, set to any value, asks a binary built with the tag to
	// write AckLine at start-up without arming a crash.
	CheckEnvVar = "WEIR_FAULT_CHECK"
	// AckLine is what a binary with fault points writes to stderr at
	// start-up when EnvVar or CheckEnvVar is set.
	AckLine = "weir: fault points compiled in"
)
