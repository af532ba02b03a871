//go:build !weirfault

package fault

// Enabled is false: the binary has no fault points.
const Enabled = false

// Point does nothing: the binary was built without the tag weirfault.
func Point(string) {}
