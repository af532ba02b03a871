//go:build !invariants && !race

// Package invariants switches expensive self-checks on with the build tag
// "invariants" (and under the race detector, so that CI runs them), as Pebble
// does. Code guards a check with `if invariants.Enabled { … }`; without the
// tag the constant is false and the compiler drops the check.
package invariants

// Enabled is false: expensive self-checks are compiled out.
const Enabled = false
