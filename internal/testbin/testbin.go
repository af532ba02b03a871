// Package testbin builds the binaries that tests run as child processes
// (examples, job binaries, the weir command). Each go build of a weir
// binary costs seconds of CPU, nearly all of it the link, and the test
// processes of several packages (go test runs them in parallel) run the
// same binaries without changing them: so a binary is built once into a
// directory the test processes share, and afterwards go build relinks it
// only when its sources changed (its check costs a fraction of a link).
// Each test process uses its own hard link to the shared binary, so that a
// rebuild by another process never changes a binary under a running test.
// Call Remove after the tests, from TestMain, to delete the process's
// links:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		testbin.Remove()
//		os.Exit(code)
//	}
//
// The shared directory is weir-testbin in the user's cache directory (or
// the temporary directory): one binary per package and build flags, about
// 50 MB each; delete it at will.
package testbin

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	dir   string            // this process's links
	built map[string]string // key → this process's link
)

// Build returns pkg's binary (an import path, or a directory as go build
// takes it), built with go build and flags (for example "-tags",
// "weirfault"), up to date the first time it is asked for in this test
// process. A failed build fails t, and the next call tries again.
func Build(t testing.TB, pkg string, flags ...string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	bin, err := build(pkg, flags)
	if err != nil {
		t.Fatalf("testbin: %v", err)
	}
	return bin
}

func build(pkg string, flags []string) (string, error) {
	importPath, err := canonical(pkg)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(strings.Join(append([]string{importPath}, flags...), "\x00")))
	key := path.Base(importPath) + "-" + hex.EncodeToString(sum[:6])
	if bin, ok := built[key]; ok {
		return bin, nil
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "weir-testbin-*")
		if err != nil {
			return "", err
		}
		dir, built = d, map[string]string{}
	}
	shared, err := sharedDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, key)
	if err := buildShared(filepath.Join(shared, key), bin, pkg, flags); err != nil {
		return "", err
	}
	built[key] = bin
	return bin, nil
}

// buildShared brings the shared binary up to date and links it to bin,
// holding the shared binary's lock: no other process writes it meanwhile.
func buildShared(shared, bin, pkg string, flags []string) error {
	unlock, err := lock(shared + ".lock")
	if errors.Is(err, errNoLocks) {
		return goBuild(bin, pkg, flags)
	}
	if err != nil {
		return err
	}
	defer unlock()
	if err := goBuild(shared, pkg, flags); err != nil {
		return err
	}
	// NB: go build replaces an outdated binary with a new file (rename or
	// remove and create), so the link keeps the binary this process built
	// even if another process rebuilds the shared one.
	if err := os.Link(shared, bin); err != nil {
		return copyFile(shared, bin)
	}
	return nil
}

// errNoLocks means the system has no file locks for lock to take.
var errNoLocks = errors.New("testbin: no file locks")

func goBuild(out, pkg string, flags []string) error {
	args := append(append([]string{"build"}, flags...), "-o", out, pkg)
	if b, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s %s: %v\n%s", strings.Join(flags, " "), pkg, err, b)
	}
	return nil
}

// sharedDir returns the directory of the shared binaries, created if need
// be.
func sharedDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	d := filepath.Join(base, "weir-testbin")
	return d, os.MkdirAll(d, 0o755)
}

// canonical returns pkg's import path, so that "." in a package's test
// and the import path elsewhere share a binary.
func canonical(pkg string) (string, error) {
	if !strings.HasPrefix(pkg, ".") && !filepath.IsAbs(pkg) {
		return pkg, nil
	}
	abs, err := filepath.Abs(pkg)
	if err != nil {
		return "", err
	}
	root, modPath, err := module(abs)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil {
		return "", err
	}
	return path.Join(modPath, filepath.ToSlash(rel)), nil
}

// module returns the root directory and the module path of the module
// holding dir.
func module(dir string) (root, modPath string, err error) {
	for d := dir; ; d = filepath.Dir(d) {
		f, err := os.Open(filepath.Join(d, "go.mod"))
		if err == nil {
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if p, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
					return d, strings.Trim(strings.TrimSpace(p), `"`), nil
				}
			}
			return "", "", fmt.Errorf("%s: no module line", f.Name())
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", "", err
		}
		if filepath.Dir(d) == d {
			return "", "", fmt.Errorf("no go.mod above %s", dir)
		}
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Remove deletes this process's links to the binaries Build built.
func Remove() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
	}
	dir, built = "", nil
}
