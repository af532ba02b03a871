package checkpoint

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/chkstore"
	"github.com/weirstream/weir/internal/chkstore/chkstoretest"
	"github.com/weirstream/weir/internal/manifest"
)

// inspected writes, into a local directory or object storage, checkpoint 1
// and checkpoint 2 sharing one of its files, with a commit record, and
// returns the store and the location to read.
func inspected(t *testing.T, remote bool) (*chkstore.Store, string) {
	t.Helper()
	s := openStore(t, remote)
	location := s.Location()
	chkstoretest.CompleteCheckpoint(t, s, 1, map[string][]byte{"a.sst": chkstoretest.Fill(1000, 1)})
	dir, err := s.Begin(2)
	if err != nil {
		t.Fatal(err)
	}
	keyed := filepath.Join(dir, "state", "count", "0")
	os.MkdirAll(keyed, 0o755)
	chkstoretest.WriteFile(t, filepath.Join(keyed, "b.sst"), chkstoretest.Fill(300, 2))
	if err := os.Link(filepath.Join(s.Dir(1), "state", "count", "0", "a.sst"), filepath.Join(keyed, "a.sst")); err != nil {
		t.Fatal(err)
	}
	rel, err := s.WriteOperatorState(2, "sink", 0, []byte(`{"pending":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	wm := int64(1234)
	m := &chkstore.Manifest{Job: "job", ID: 2, MaxParallelism: 128, Operators: []chkstore.SubtaskState{
		{Operator: "count", Subtask: 0, Parallelism: 2, KeyedDir: chkstore.KeyedDir("count", 0), EventTime: &wm},
		{Operator: "sink", Subtask: 0, Parallelism: 1, StateFile: rel},
	}}
	if err := s.Complete(m); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkCommitted(2, "sink", 0); err != nil {
		t.Fatal(err)
	}
	return s, location
}

func TestListInspectVerify(t *testing.T) {
	for _, remote := range []bool{false, true} {
		name := "local"
		if remote {
			name = "s3"
		}
		t.Run(name, func(t *testing.T) {
			_, location := inspected(t, remote)
			ctx := context.Background()
			list, err := List(ctx, location)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 2 || list[0].ID != 1 || list[1].ID != 2 || list[1].Kind != KindCheckpoint {
				t.Fatalf("List = %+v, want checkpoints 1 and 2", list)
			}
			if list[1].Size != 1000+300+int64(len(`{"pending":[]}`)) || list[1].Incremental != 300+int64(len(`{"pending":[]}`)) {
				t.Fatalf("checkpoint 2: size %d, incremental %d", list[1].Size, list[1].Incremental)
			}
			d, err := Inspect(ctx, location, "")
			if err != nil {
				t.Fatal(err)
			}
			if d.ID != 2 || len(d.Operators) != 2 {
				t.Fatalf("Inspect latest = %+v", d)
			}
			count, sink := d.Operators[0].Subtasks[0], d.Operators[1].Subtasks[0]
			if count.KeyGroups == nil || *count.KeyGroups != [2]int{0, 64} || count.KeyedBytes != 1300 || *count.EventTime != 1234 {
				t.Fatalf("count/0 = %+v", count)
			}
			if string(sink.State) != `{"pending":[]}` || !sink.Committed {
				t.Fatalf("sink/0 = %+v", sink)
			}
			if _, err := Inspect(ctx, location, "7"); !errors.Is(err, ErrNoCheckpoint) {
				t.Fatalf("Inspect of a missing id = %v, want ErrNoCheckpoint", err)
			}
			res, err := Verify(ctx, location, "2")
			if err != nil || !res.OK() {
				t.Fatalf("Verify = %+v, %v", res, err)
			}
			// Damage the file checkpoint 2 shares with checkpoint 1: both fail,
			// naming it.
			victim := "chk-0000000001/state/count/0/a.sst"
			if remote {
				err = putObject(ctx, victim, chkstoretest.Fill(1000, 9))
			} else {
				err = os.WriteFile(filepath.Join(location, filepath.FromSlash(victim)), chkstoretest.Fill(1000, 9), 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
			all, err := VerifyAll(ctx, location)
			if err != nil || len(all) != 2 {
				t.Fatalf("VerifyAll = %v, %v", all, err)
			}
			for _, res := range all {
				want := victim // shared in object storage; hard-linked in a directory
				if !remote {
					want = res.Dir + "/state/count/0/a.sst"
				}
				if res.OK() || res.Bad[0].Object != want || !strings.Contains(res.Bad[0].Problem, "crc32c") {
					t.Fatalf("checkpoint %d with a damaged file verified as %+v", res.ID, res)
				}
			}
		})
	}
}

// TestListSavepoint checks that a directory with a manifest that is not a
// checkpoint's is listed as a savepoint, also when it is the location.
func TestListSavepoint(t *testing.T) {
	s := openStore(t, false)
	chkstoretest.CompleteCheckpoint(t, s, 4, map[string][]byte{"a.sst": chkstoretest.Fill(10, 1)})
	sp := filepath.Join(t.TempDir(), "savepoints", "sp-4")
	if err := os.CopyFS(sp, os.DirFS(s.Dir(4))); err != nil {
		t.Fatal(err)
	}
	list, err := List(context.Background(), filepath.Dir(sp))
	if err != nil || len(list) != 1 || list[0].Kind != KindSavepoint || list[0].Dir != "sp-4" || list[0].ID != 4 {
		t.Fatalf("List of a savepoint directory = %+v, %v", list, err)
	}
	res, err := Verify(context.Background(), sp, "")
	if err != nil || !res.OK() || res.Dir != "" {
		t.Fatalf("Verify of a savepoint location = %+v, %v", res, err)
	}
}

// TestListNamesCorruptManifest checks that a damaged manifest fails the
// listing with ErrCorrupt, naming it.
func TestListNamesCorruptManifest(t *testing.T) {
	s := openStore(t, false)
	chkstoretest.CompleteCheckpoint(t, s, 3, nil)
	path := filepath.Join(s.Dir(3), manifest.Name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x20
	chkstoretest.WriteFile(t, path, data)
	_, err = List(context.Background(), s.Root())
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chk-0000000003/MANIFEST") {
		t.Fatalf("List with a damaged manifest = %v, want ErrCorrupt naming it", err)
	}
}
