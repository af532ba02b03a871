package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// forget makes this process forget what it built, as a new test process
// starts.
func forget() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
	}
	dir, built = "", nil
}

// TestSharedAcrossProcesses builds a binary, forgets it as another test
// process would not know it, and builds it again, by its import path this
// time: the second build must reuse the shared binary that go build found
// up to date (the same file, not relinked) through a link of its own.
func TestSharedAcrossProcesses(t *testing.T) {
	t.Cleanup(forget)
	first := Build(t, "./testdata/hello")
	if out, err := exec.Command(first).Output(); err != nil || string(out) != "hello\n" {
		t.Fatalf("%s: %q, %v", first, out, err)
	}
	shared, err := sharedDir()
	if err != nil {
		t.Fatal(err)
	}
	sharedBin := filepath.Join(shared, filepath.Base(first))
	before, err := os.Stat(sharedBin)
	if err != nil {
		t.Fatalf("no shared binary: %v", err)
	}
	forget()
	second := Build(t, "github.com/weirstream/weir/internal/testbin/testdata/hello")
	if second == first {
		t.Fatalf("the second process got the first one's link %s", first)
	}
	after, err := os.Stat(sharedBin)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) { // NB: go build touches an up-to-date binary, and renames a relinked one into place
		t.Errorf("the shared binary %s was rebuilt though up to date", sharedBin)
	}
	if got, err := os.Stat(second); err != nil || !os.SameFile(got, after) {
		t.Errorf("%s is not a link to the shared binary %s: %v", second, sharedBin, err)
	}
}

// TestCanonical checks that a package directory and its import path name
// one binary.
func TestCanonical(t *testing.T) {
	for _, c := range []struct{ pkg, want string }{
		{".", "github.com/weirstream/weir/internal/testbin"},
		{"./testdata/hello", "github.com/weirstream/weir/internal/testbin/testdata/hello"},
		{"../../cmd/weir", "github.com/weirstream/weir/cmd/weir"},
		{"github.com/weirstream/weir/cmd/weir", "github.com/weirstream/weir/cmd/weir"},
	} {
		if got, err := canonical(c.pkg); err != nil || got != c.want {
			t.Errorf("canonical(%q) = %q, %v; want %q", c.pkg, got, err, c.want)
		}
	}
}
