package chkstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/chkstore/chkstoretest"
	"github.com/weirstream/weir/internal/manifest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "checkpoints"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCompleteVerifyRead(t *testing.T) {
	s := openStore(t)
	m := chkstoretest.CompleteCheckpoint(t, s, 7, map[string][]byte{"000001.sst": chkstoretest.Fill(1000, 1), "MANIFEST-000001": chkstoretest.Fill(50, 2)})
	if len(m.Files) != 3 {
		t.Fatalf("manifest lists %d files, want 3: %+v", len(m.Files), m.Files)
	}
	if err := s.Verify(m); err != nil {
		t.Fatal(err)
	}
	got, err := s.Latest()
	if err != nil || got == nil || got.ID != 7 {
		t.Fatalf("Latest() = %+v, %v; want checkpoint 7", got, err)
	}
	// NB: the stored BytesWritten cannot count the manifest itself; the
	// manifest Complete returns does.
	info, err := os.Stat(filepath.Join(s.Dir(7), ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	if got.BytesWritten+info.Size() != m.BytesWritten {
		t.Fatalf("stored BytesWritten %d + manifest %d != returned %d", got.BytesWritten, info.Size(), m.BytesWritten)
	}
	got.BytesWritten = m.BytesWritten
	if !sameManifest(got, m) {
		t.Fatalf("Latest() = %+v; want %+v", got, m)
	}
	data, err := s.ReadOperatorState(got, "src", 0)
	if err != nil || string(data) != "offset-7" {
		t.Fatalf("ReadOperatorState = %q, %v", data, err)
	}
	if data, err := s.ReadOperatorState(got, "count", 0); data != nil || err != nil {
		t.Fatalf("ReadOperatorState of a keyed-only subtask = %q, %v; want nil", data, err)
	}
}

func TestVerifyDetectsDamage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string) error
		want   string
	}{
		{"missing", os.Remove, "missing"},
		{"size", func(p string) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			f.Write([]byte{0})
			return f.Close()
		}, "bytes"},
		{"flipped byte", func(p string) error {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			data[len(data)/2] ^= 0x10
			return os.WriteFile(p, data, 0o644)
		}, "checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			m := chkstoretest.CompleteCheckpoint(t, s, 3, map[string][]byte{"000001.sst": chkstoretest.Fill(1000, 1), "000002.sst": chkstoretest.Fill(700, 9)})
			victim := filepath.Join(s.Dir(3), "state", "count", "0", "000002.sst")
			if err := tc.damage(victim); err != nil {
				t.Fatal(err)
			}
			err := s.Verify(m)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Verify = %v, want ErrCorrupt", err)
			}
			for _, want := range []string{"checkpoint 3", victim, tc.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestReadDetectsCorruptManifest(t *testing.T) {
	s := openStore(t)
	chkstoretest.CompleteCheckpoint(t, s, 5, map[string][]byte{"000001.sst": chkstoretest.Fill(10, 1)})
	path := filepath.Join(s.Dir(5), ManifestName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte(`"job"`))
	data[i+2] ^= 0x01
	chkstoretest.WriteFile(t, path, data)
	_, err = s.Latest()
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "checkpoint 5") {
		t.Fatalf("Latest with a damaged manifest = %v; want ErrCorrupt naming checkpoint 5", err)
	}

	// A manifest moved to another checkpoint's directory is refused.
	s2 := openStore(t)
	chkstoretest.CompleteCheckpoint(t, s2, 2, nil)
	good, err := os.ReadFile(filepath.Join(s2.Dir(2), ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	chkstoretest.WriteFile(t, filepath.Join(s2.Dir(3), ManifestName), good)
	if _, err := s2.Read(3); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read(3) of checkpoint 2's manifest = %v, want ErrCorrupt", err)
	}
}

// TestCompleteCountsOnlyNewBytes checks the incremental accounting: files
// hard-linked from the previous checkpoint keep their checksum and are not
// counted as written; new files and copies are.
func TestCompleteCountsOnlyNewBytes(t *testing.T) {
	for _, reopen := range []bool{false, true} {
		t.Run(fmt.Sprintf("reopen=%v", reopen), func(t *testing.T) {
			s := openStore(t)
			m1 := chkstoretest.CompleteCheckpoint(t, s, 1, map[string][]byte{
				"000001.sst": chkstoretest.Fill(4000, 1),
				"000002.sst": chkstoretest.Fill(3000, 2),
				"000003.sst": chkstoretest.Fill(2000, 3),
			})
			if m1.BytesWritten < 9000 {
				t.Fatalf("first checkpoint wrote %d bytes, want at least 9000", m1.BytesWritten)
			}
			if reopen { // a restarted job learns the previous checkpoint from Verify
				s.Close()
				var err error
				if s, err = Open(s.Root(), quiet); err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				if err := s.Verify(m1); err != nil {
					t.Fatal(err)
				}
			}
			dir2, err := s.Begin(2)
			if err != nil {
				t.Fatal(err)
			}
			keyed1 := filepath.Join(s.Dir(1), "state", "count", "0")
			keyed2 := filepath.Join(dir2, "state", "count", "0")
			if err := os.MkdirAll(keyed2, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"000001.sst", "000002.sst"} {
				if err := os.Link(filepath.Join(keyed1, name), filepath.Join(keyed2, name)); err != nil {
					t.Fatal(err)
				}
			}
			// An equal copy is a new file: it is read and counted.
			chkstoretest.WriteFile(t, filepath.Join(keyed2, "000003.sst"), chkstoretest.Fill(2000, 3))
			chkstoretest.WriteFile(t, filepath.Join(keyed2, "000004.sst"), chkstoretest.Fill(500, 4))
			rel, err := s.WriteOperatorState(2, "src", 0, []byte("offset-2"))
			if err != nil {
				t.Fatal(err)
			}
			m2 := &Manifest{Job: "job", ID: 2, MaxParallelism: 128, Operators: []SubtaskState{{Operator: "src", StateFile: rel}}}
			if err := s.Complete(m2); err != nil {
				t.Fatal(err)
			}
			info, err := os.Stat(filepath.Join(dir2, ManifestName))
			if err != nil {
				t.Fatal(err)
			}
			want := int64(2000+500+len("offset-2")) + info.Size()
			if m2.BytesWritten != want {
				t.Fatalf("second checkpoint: BytesWritten = %d, want %d (new files and manifest only)", m2.BytesWritten, want)
			}
			// Reused entries carry the right checksums.
			if err := s.Verify(m2); err != nil {
				t.Fatal(err)
			}
			if len(m2.Files) != 5 {
				t.Fatalf("second checkpoint lists %d files, want 5: %+v", len(m2.Files), m2.Files)
			}
		})
	}
}

func checkpointDirs(t *testing.T, s *Store) []string {
	t.Helper()
	entries, err := os.ReadDir(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

func TestRetain(t *testing.T) {
	s := openStore(t)
	complete := map[uint64]bool{1: true, 3: true, 4: true, 6: true, 9: true}
	for id := uint64(1); id <= 11; id++ {
		if complete[id] {
			chkstoretest.CompleteCheckpoint(t, s, id, map[string][]byte{"000001.sst": chkstoretest.Fill(10, byte(id))})
		} else if _, err := s.Begin(id); err != nil {
			t.Fatal(err)
		}
	}
	// Not checkpoints: never touched.
	for _, name := range []string{"live", "chk-abc"} {
		if err := os.MkdirAll(filepath.Join(s.Root(), name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		keep int
		want []string
	}{
		// 10 and 11 are newer than the newest complete checkpoint (9): they
		// may be in flight and stay; 2, 5, 7, 8 are debris.
		{3, []string{"LOCK", "chk-0000000004", "chk-0000000006", "chk-0000000009", "chk-0000000010", "chk-0000000011", "chk-abc", "live"}},
		{1, []string{"LOCK", "chk-0000000009", "chk-0000000010", "chk-0000000011", "chk-abc", "live"}},
		{5, []string{"LOCK", "chk-0000000009", "chk-0000000010", "chk-0000000011", "chk-abc", "live"}},
	}
	for _, st := range steps {
		if err := s.Retain(st.keep); err != nil {
			t.Fatal(err)
		}
		if got := checkpointDirs(t, s); !slices.Equal(got, st.want) {
			t.Fatalf("after Retain(%d): %v, want %v", st.keep, got, st.want)
		}
	}
	m, err := s.Latest()
	if err != nil || m == nil || m.ID != 9 {
		t.Fatalf("Latest after Retain = %+v, %v; want checkpoint 9", m, err)
	}
	if err := s.Verify(m); err != nil {
		t.Fatalf("retained checkpoint damaged: %v", err)
	}
	// With no complete checkpoint at all, nothing is deleted.
	s2 := openStore(t)
	for id := uint64(1); id <= 3; id++ {
		s2.Begin(id)
	}
	if err := s2.Retain(1); err != nil {
		t.Fatal(err)
	}
	want := []string{"LOCK", "chk-0000000001", "chk-0000000002", "chk-0000000003"}
	if got := checkpointDirs(t, s2); !slices.Equal(got, want) {
		t.Fatalf("Retain without complete checkpoints deleted something: %v, want %v", got, want)
	}
}

// TestMoveIncompleteAsideAndAbort checks that incomplete checkpoints are
// never deleted at start, only moved aside (with a warning naming where),
// and that an aborted checkpoint keeps its id.
func TestMoveIncompleteAsideAndAbort(t *testing.T) {
	var log bytes.Buffer
	s, err := Open(filepath.Join(t.TempDir(), "checkpoints"), slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	chkstoretest.CompleteCheckpoint(t, s, 1, nil)
	s.Begin(2)
	chkstoretest.CompleteCheckpoint(t, s, 3, nil)
	s.Begin(4)
	chkstoretest.WriteFile(t, filepath.Join(s.Dir(4), "state", "count", "0", "000001.sst"), chkstoretest.Fill(10, 4))
	if err := s.Abort(3); err == nil {
		t.Fatal("Abort of a complete checkpoint succeeded")
	}
	if err := s.Abort(4); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(s.Dir(4)); err != nil || len(entries) != 0 {
		t.Fatalf("aborted checkpoint 4: %v, %v; want an empty directory that keeps the id", entries, err)
	}
	if id, _ := s.NextID(); id != 5 {
		t.Fatalf("NextID after aborting checkpoint 4 = %d, want 5", id)
	}
	s.Begin(5)
	sst := filepath.Join("state", "count", "0", "000001.sst")
	chkstoretest.WriteFile(t, filepath.Join(s.Dir(5), sst), chkstoretest.Fill(10, 5))
	if err := s.MoveIncompleteAside(); err != nil {
		t.Fatal(err)
	}
	want := []string{"LOCK", "chk-0000000001", "chk-0000000003", "incomplete"}
	if got := checkpointDirs(t, s); !slices.Equal(got, want) {
		t.Fatalf("after MoveIncompleteAside: %v, want %v", got, want)
	}
	aside := filepath.Join(s.Root(), "incomplete")
	if data, err := os.ReadFile(filepath.Join(aside, "chk-0000000005", sst)); err != nil || !bytes.Equal(data, chkstoretest.Fill(10, 5)) {
		t.Fatalf("checkpoint 5 moved aside lost its files: %v", err)
	}
	for _, id := range []string{"2", "4", "5"} {
		path := filepath.Join(aside, "chk-000000000"+id)
		warned := slices.ContainsFunc(strings.Split(log.String(), "\n"), func(l string) bool {
			return strings.Contains(l, "level=WARN") && strings.Contains(l, "path="+path)
		})
		if !warned {
			t.Errorf("no warning names %s:\n%s", path, log.String())
		}
	}
	if m, err := s.Latest(); err != nil || m.ID != 3 {
		t.Fatalf("Latest = %+v, %v; want checkpoint 3", m, err)
	}
	if id, _ := s.NextID(); id != 6 {
		t.Fatalf("NextID after moving checkpoint 5 aside = %d, want 6", id)
	}
}

// TestMoveIncompleteAsideKeepsNewest checks that the checkpoints moved aside
// are bounded, and that dropping the oldest keeps ids from being reused.
func TestMoveIncompleteAsideKeepsNewest(t *testing.T) {
	s := openStore(t)
	chkstoretest.CompleteCheckpoint(t, s, 1, nil)
	var want []string
	for run := range keepAside + 3 {
		id := uint64(10 * (run + 1))
		s.Begin(id)
		if err := s.MoveIncompleteAside(); err != nil {
			t.Fatal(err)
		}
		want = append(want, filepath.Base(s.Dir(id)))
		if len(want) > keepAside {
			want = want[1:]
		}
		if got := asideDirs(t, s); !slices.Equal(got, want) {
			t.Fatalf("run %d: moved aside %v, want %v", run, got, want)
		}
		if next, _ := s.NextID(); next != id+1 {
			t.Fatalf("run %d: NextID = %d, want %d", run, next, id+1)
		}
	}
}

func asideDirs(t *testing.T, s *Store) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.Root(), "incomplete"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestNextID(t *testing.T) {
	s := openStore(t)
	if id, err := s.NextID(); err != nil || id != 1 {
		t.Fatalf("NextID of an empty store = %d, %v; want 1", id, err)
	}
	chkstoretest.CompleteCheckpoint(t, s, 3, nil)
	if id, _ := s.NextID(); id != 4 {
		t.Fatalf("NextID = %d, want 4", id)
	}
	// Incomplete checkpoints count too: their sinks may have pre-committed.
	s.Begin(12)
	if id, _ := s.NextID(); id != 13 {
		t.Fatalf("NextID with incomplete checkpoint 12 = %d, want 13", id)
	}
	// Directories named by hand without zero padding, and ids beyond ten
	// digits.
	os.Mkdir(filepath.Join(s.Root(), "chk-40"), 0o755)
	if id, _ := s.NextID(); id != 41 {
		t.Fatalf("NextID with chk-40 = %d, want 41", id)
	}
	os.Mkdir(filepath.Join(s.Root(), "chk-123456789012"), 0o755)
	if id, _ := s.NextID(); id != 123456789013 {
		t.Fatalf("NextID with chk-123456789012 = %d, want 123456789013", id)
	}
	// Things that are not checkpoint directories do not count.
	chkstoretest.WriteFile(t, filepath.Join(s.Root(), "chk-999999999999"), nil)
	os.Mkdir(filepath.Join(s.Root(), "chk-x1"), 0o755)
	os.Mkdir(filepath.Join(s.Root(), "xchk-999999999999"), 0o755)
	if id, _ := s.NextID(); id != 123456789013 {
		t.Fatalf("NextID counted a non-checkpoint entry: %d", id)
	}
	// Checkpoints moved aside count, under the name they had.
	if err := s.MoveIncompleteAside(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "incomplete", "chk-123456789012")); err != nil {
		t.Fatal(err)
	}
	if id, _ := s.NextID(); id != 123456789013 {
		t.Fatalf("NextID with chk-123456789012 moved aside = %d, want 123456789013", id)
	}
}

func TestRestoreKeyed(t *testing.T) {
	s := openStore(t)
	m := chkstoretest.CompleteCheckpoint(t, s, 1, map[string][]byte{"000001.sst": chkstoretest.Fill(100, 1), "MANIFEST-000001": chkstoretest.Fill(20, 2)})
	dst := filepath.Join(t.TempDir(), "live", "count", "0")
	chkstoretest.WriteFile(t, filepath.Join(dst, "stale.sst"), []byte("old"))
	ok, err := s.RestoreKeyed(m, "count", 0, dst)
	if err != nil || !ok {
		t.Fatalf("RestoreKeyed = %v, %v", ok, err)
	}
	entries, err := os.ReadDir(dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("restored %d files, want 2 (stale files removed): %v", len(entries), entries)
	}
	src := filepath.Join(s.Dir(1), "state", "count", "0")
	for _, name := range []string{"000001.sst", "MANIFEST-000001"} {
		a, err1 := os.Stat(filepath.Join(src, name))
		b, err2 := os.Stat(filepath.Join(dst, name))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		linked := os.SameFile(a, b)
		if want := strings.HasSuffix(name, ".sst"); linked != want {
			t.Errorf("%s: hard-linked %v, want %v", name, linked, want)
		}
	}
	// Pebble appends to its MANIFEST: that must not reach the checkpoint.
	f, err := os.OpenFile(filepath.Join(dst, "MANIFEST-000001"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("more"))
	f.Close()
	if err := s.Verify(m); err != nil {
		t.Fatalf("writing the restored state changed the checkpoint: %v", err)
	}
	// A subtask without keyed state gets an empty directory.
	ok, err = s.RestoreKeyed(m, "count", 1, dst)
	if err != nil || ok {
		t.Fatalf("RestoreKeyed of a missing subtask = %v, %v; want false, nil", ok, err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("RestoreKeyed of a missing subtask left %s: %v", dst, err)
	}
}

func TestOpenRejectsUnusableDir(t *testing.T) {
	if _, err := Open("", quiet); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	chkstoretest.WriteFile(t, file, nil)
	if _, err := Open(filepath.Join(file, "sub"), quiet); err == nil {
		t.Fatal("Open under a regular file succeeded")
	}
}

// sameManifest compares manifests by their encodings, in which times are
// instants.
func sameManifest(a, b *Manifest) bool {
	ea, erra := manifest.Encode(a)
	eb, errb := manifest.Encode(b)
	return erra == nil && errb == nil && bytes.Equal(ea, eb)
}

// TestCompleteReadsThroughOneBuffer completes a checkpoint of many small
// files and checks that checksumming them did not allocate a read buffer
// for each.
func TestCompleteReadsThroughOneBuffer(t *testing.T) {
	const files = 20
	s := openStore(t)
	if _, err := s.Begin(1); err != nil {
		t.Fatal(err)
	}
	m := &Manifest{Job: "job", ID: 1, MaxParallelism: 128}
	for i := range files {
		rel, err := s.WriteOperatorState(1, fmt.Sprintf("op%d", i), 0, []byte("state"))
		if err != nil {
			t.Fatal(err)
		}
		m.Operators = append(m.Operators, SubtaskState{Operator: fmt.Sprintf("op%d", i), StateFile: rel})
	}
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	if err := s.Complete(m); err != nil {
		t.Fatal(err)
	}
	goruntime.ReadMemStats(&after)
	// At most a quarter of io.Copy's buffer (32 KB) a file.
	if got, most := after.TotalAlloc-before.TotalAlloc, uint64(files*(32<<10)/4); got > most {
		t.Errorf("completing a checkpoint of %d files allocated %d bytes, want at most %d", files, got, most)
	}
	if err := s.Verify(m); err != nil {
		t.Fatal(err)
	}
}
