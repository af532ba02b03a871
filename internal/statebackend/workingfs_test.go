package statebackend

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// syncCountingFS counts the syncs of files and directories by name.
type syncCountingFS struct {
	vfs.FS
	mu    sync.Mutex
	syncs map[string]int
}

type countedFile struct {
	vfs.File
	fs   *syncCountingFS
	name string
}

func (f countedFile) Sync() error {
	f.fs.mu.Lock()
	f.fs.syncs[f.name]++
	f.fs.mu.Unlock()
	return f.File.Sync()
}

func (f countedFile) SyncData() error { return f.Sync() }

func (fs *syncCountingFS) count(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	return countedFile{f, fs, name}, nil
}

func (fs *syncCountingFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.count(name, f, err)
}

func (fs *syncCountingFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.count(name, f, err)
}

func (fs *syncCountingFS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(name)
	return fs.count(name, f, err)
}

// workingCopy opens a Pebble database in dir of fs as a Backend does.
func workingCopy(t *testing.T, fs vfs.FS, dir string) *pebble.DB {
	t.Helper()
	opts := dbOptions(dir, nil, slog.New(slog.DiscardHandler))
	opts.FS = newWorkingCopyFS(fs, dir)
	db, err := pebble.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestWorkingCopyCheckpointsSurviveACrash writes a working copy, restores
// a second one from its checkpoint as the engine does (a copy, unsynced),
// writes and compacts there and checkpoints again, then crashes the
// filesystem (everything not synced is lost): the checkpoints still hold
// exactly what was written, while the working copies synced nothing but
// their sstables. With the syncs of the working copy left in (a plain FS,
// the old behavior) the count fails; with the sstables' syncs skipped too,
// the checkpoints lose data after the crash.
func TestWorkingCopyCheckpointsSurviveACrash(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	mem := vfs.NewCrashableMem()
	fs := &syncCountingFS{FS: mem, syncs: map[string]int{}}
	model := map[string]string{}
	write := func(db *pebble.DB, n int) {
		for range n {
			k, v := fmt.Sprintf("k%04d", rng.IntN(2000)), fmt.Sprintf("v%d", rng.Uint64())
			if err := db.Set([]byte(k), []byte(v), pebble.NoSync); err != nil {
				t.Fatal(err)
			}
			model[k] = v
		}
		if err := db.Flush(); err != nil { // an sstable in the working copy
			t.Fatal(err)
		}
	}
	checkpoint := func(db *pebble.DB, dest string) {
		if err := db.Checkpoint(dest); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}

	db := workingCopy(t, fs, "/task/live-1")
	write(db, 1000)
	write(db, 1000)
	checkpoint(db, "/task/chk-1")
	// The restore: sstables linked, the rest copied, nothing synced
	// (chkstore.RestoreKeyed).
	if err := mem.MkdirAll("/task/live-2", 0o755); err != nil {
		t.Fatal(err)
	}
	names, err := mem.List("/task/chk-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if err := vfs.LinkOrCopy(mem, "/task/chk-1/"+name, "/task/live-2/"+name); err != nil {
			t.Fatal(err)
		}
	}
	db = workingCopy(t, fs, "/task/live-2")
	write(db, 1000)
	if err := db.Compact(context.Background(), []byte("k"), []byte("l"), true); err != nil { // sstables of a compaction
		t.Fatal(err)
	}
	write(db, 500)
	checkpoint(db, "/task/chk-2")

	for name, n := range fs.syncs {
		if strings.HasPrefix(name, "/task/live-") && !strings.HasSuffix(name, ".sst") {
			t.Errorf("%s of a working copy was synced %d times", name, n)
		}
	}
	crashed := mem.CrashClone(vfs.CrashCloneCfg{}) // exactly what was synced
	opts := dbOptions("/task/chk-2", nil, slog.New(slog.DiscardHandler))
	opts.FS, opts.ReadOnly = crashed, true
	restored, err := pebble.Open("/task/chk-2", opts)
	if err != nil {
		t.Fatalf("seed %d: open the checkpoint after the crash: %v", seed, err)
	}
	defer restored.Close()
	got := map[string]string{}
	it, err := restored.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	for it.First(); it.Valid(); it.Next() {
		got[string(it.Key())] = string(it.Value())
	}
	if err := it.Close(); err != nil {
		t.Fatalf("seed %d: read the checkpoint after the crash: %v", seed, err)
	}
	if len(got) != len(model) {
		t.Fatalf("seed %d: the checkpoint holds %d keys after the crash, want %d", seed, len(got), len(model))
	}
	for k, v := range model {
		if got[k] != v {
			t.Fatalf("seed %d: key %s is %q after the crash, want %q", seed, k, got[k], v)
		}
	}
}
