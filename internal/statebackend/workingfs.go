package statebackend

import (
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// workingCopyFS is the filesystem of a live Pebble database: a working copy
// that no restart ever opens again (the engine rebuilds it from the newest
// checkpoint at every start), so only what a checkpoint takes from it must
// reach the disk. A checkpoint (Backend.checkpoint, Pebble's Checkpoint)
// hard-links the sstables, so those stay synced as they are written (and an
// ingested one is synced by delta.writeSST); every other file it needs
// (MANIFEST, OPTIONS, markers) it copies and syncs in the checkpoint
// directory, which is outside the working copy. So a sync of any other file
// of the working copy, or of its directories, is skipped.
//
// NB: opening a restored copy synced six times, most of its time (median
// 50 ms, 80–95% of it in syncs; scaleout failover of 8 tasks of 1M keys at
// a load of 11–18), on a takeover's path; without them the median open is
// 15 ms. Each checkpoint's ingest synced the MANIFEST once more.
type workingCopyFS struct {
	vfs.FS
	dir string // the working copy, cleaned, with a trailing separator
}

// newWorkingCopyFS returns fs with the syncs of the working copy in dir
// skipped, but those of its sstables.
func newWorkingCopyFS(fs vfs.FS, dir string) vfs.FS {
	return &workingCopyFS{FS: fs, dir: filepath.Clean(dir) + string(filepath.Separator)}
}

// durable reports whether the file or directory name needs its syncs.
func (fs *workingCopyFS) durable(name string) bool {
	name = filepath.Clean(name)
	inside := strings.HasPrefix(name, fs.dir) || name+string(filepath.Separator) == fs.dir
	return !inside || strings.HasSuffix(name, ".sst")
}

func (fs *workingCopyFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || fs.durable(name) {
		return f, err
	}
	return unsyncedFile{f}, nil
}

func (fs *workingCopyFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs *workingCopyFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap(name, f, err)
}

func (fs *workingCopyFS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(name)
	return fs.wrap(name, f, err)
}

func (fs *workingCopyFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

// unsyncedFile is a file of the working copy whose syncs are skipped.
type unsyncedFile struct{ vfs.File }

func (unsyncedFile) Sync() error                           { return nil }
func (unsyncedFile) SyncData() error                       { return nil }
func (unsyncedFile) SyncTo(int64) (fullSync bool, _ error) { return false, nil }
