//go:build invariants || race

package invariants

// Enabled is true: expensive self-checks run.
const Enabled = true
