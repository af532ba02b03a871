package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/testseed"
)

// TestCorruptCheckpointIsRefused flips one byte in a file of the newest
// checkpoint and checks that the restart refuses with an error naming the
// file and the checkpoint, and deletes nothing.
func TestCorruptCheckpointIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the example")
	}
	seed := testseed.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 4))
	bin := buildWordcount(t)
	input, _ := writeInput(t, rng, 2, 2000)

	for _, tc := range []struct {
		name  string
		match func(rel string) bool
	}{
		{"keyed state sstable", func(rel string) bool { return strings.HasSuffix(rel, ".sst") }},
		{"operator state", func(rel string) bool { return strings.HasPrefix(rel, "operators/") }},
		{"pebble manifest", func(rel string) bool { return strings.Contains(rel, "/MANIFEST-") }},
		{"checkpoint manifest", func(rel string) bool { return rel == "MANIFEST" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := newJob(t, bin, input)
			j.runToEnd(t)
			chk := newestCheckpoint(t, j.checkpoints)
			victim := pickFile(t, chk, tc.match)
			flipByte(t, victim, rng)
			before := listTree(t, j.checkpoints)

			out, err := j.command().CombinedOutput()
			if err == nil {
				t.Fatalf("restart with a corrupt %s succeeded:\n%s", victim, tail(out))
			}
			msg := string(out)
			if !strings.Contains(msg, victim) {
				t.Fatalf("error does not name the corrupt file %s:\n%s", victim, tail(out))
			}
			id := strings.TrimLeft(strings.TrimPrefix(filepath.Base(chk), "chk-"), "0")
			if !strings.Contains(msg, "checkpoint "+id) {
				t.Fatalf("error does not name checkpoint %s:\n%s", id, tail(out))
			}
			if after := listTree(t, j.checkpoints); !slices.Equal(before, after) {
				t.Fatalf("the refused restart changed the checkpoint directory:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

func newestCheckpoint(t *testing.T, dir string) string {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(dir, "chk-*"))
	if len(matches) == 0 {
		t.Fatalf("no checkpoint in %s", dir)
	}
	slices.Sort(matches)
	return matches[len(matches)-1]
}

func pickFile(t *testing.T, dir string, match func(string) bool) string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			if match(filepath.ToSlash(rel)) {
				found = append(found, path)
			}
		}
		return err
	})
	if len(found) == 0 {
		t.Fatalf("no matching file in %s", dir)
	}
	return found[0]
}

func flipByte(t *testing.T, path string, rng *rand.Rand) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		t.Fatalf("read %s: %v (%d bytes)", path, err, len(data))
	}
	i := rng.IntN(len(data))
	data[i] ^= 0x20
	// NB: write in place: the file may be a hard link shared with the live
	// state, exactly as on-disk corruption would be.
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("flipped byte %d of %s", i, path)
}

func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !strings.Contains(path, string(filepath.Separator)+"live") {
			out = append(out, fmt.Sprintf("%s %v", path, d.IsDir()))
		}
		return err
	})
	return out
}
