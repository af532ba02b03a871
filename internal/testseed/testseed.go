// Package testseed gives the project's randomized tests their seeds, one way
// for all of them: the seed comes from the environment variable
// WEIR_TEST_SEED when it is set (to rerun a failure, or to run every
// randomized test of a package with one chosen seed, as `make test-repeat`
// does), and from the clock otherwise. Each test logs its seed, and a failed
// test logs the command that reruns it with that seed.
package testseed

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// EnvVar names the environment variable that fixes the seed.
const EnvVar = "WEIR_TEST_SEED"

// Seed returns the seed of t's randomized choices. An unparsable
// WEIR_TEST_SEED fails the test rather than running with another seed.
func Seed(t testing.TB) uint64 {
	t.Helper()
	seed, fixed := uint64(time.Now().UnixNano()), false
	if v := os.Getenv(EnvVar); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want an unsigned 64-bit integer", EnvVar, v)
		}
		seed, fixed = s, true
	}
	t.Logf("seed %d (fixed by %s: %v)", seed, EnvVar, fixed)
	name := t.Name()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rerun with this seed: %s", Rerun(name, seed))
		}
	})
	return seed
}

// Rerun returns the shell command that runs the test called name (as
// testing.T.Name gives it) of the package in the working directory with
// seed.
func Rerun(name string, seed uint64) string {
	return fmt.Sprintf("%s=%d go test %s -run '^%s$'", EnvVar, seed, packageDir(), name)
}

// packageDir returns the working directory (go test runs a package's tests
// in its directory) relative to the module root, as ./dir.
func packageDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for root := wd; ; {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			if rel, err := filepath.Rel(root, wd); err == nil {
				return "./" + filepath.ToSlash(rel)
			}
			return wd
		}
		parent := filepath.Dir(root)
		if parent == root {
			return wd
		}
		root = parent
	}
}
