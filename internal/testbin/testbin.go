// Package testbin builds the binaries that tests run as child processes
// (examples, job binaries, the weir command), once per test process: each
// go build of a weir binary costs seconds of CPU, most of them the link,
// and tests run such a binary without changing it. Call Remove after the
// tests, from TestMain, to delete what was built:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		testbin.Remove()
//		os.Exit(code)
//	}
package testbin

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	dir   string
	built = map[string]string{} // package and flags → binary
)

// Build returns pkg's binary (an import path, or a directory as go build
// takes it), built with go build and flags (for example "-tags",
// "weirfault") the first time it is asked for in this test process. A
// failed build fails t, and the next call tries again.
func Build(t testing.TB, pkg string, flags ...string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	key := strings.Join(append([]string{pkg}, flags...), "\x00")
	if bin, ok := built[key]; ok {
		return bin
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "weir-testbin-*")
		if err != nil {
			t.Fatalf("testbin: %v", err)
		}
		dir = d
	}
	name := path.Base(filepath.ToSlash(pkg))
	if name == "." || name == "/" {
		name = "main"
	}
	bin := filepath.Join(dir, name+"-"+strconv.Itoa(len(built)))
	args := append(append([]string{"build"}, flags...), "-o", bin, pkg)
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("testbin: go build %s: %v\n%s", strings.Join(flags, " "), err, out)
	}
	built[key] = bin
	return bin
}

// Remove deletes the binaries Build built.
func Remove() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
	}
	dir, built = "", map[string]string{}
}
