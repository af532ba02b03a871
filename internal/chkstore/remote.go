package chkstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/weirstream/weir/internal/manifest"
	"github.com/weirstream/weir/internal/objstore"
)

// reservedName is the empty object Begin writes into a checkpoint's
// directory in object storage: the durable record that its id is taken, as
// the directory itself is in a local checkpoint directory.
const reservedName = "RESERVED"

// liveName is the directory of the live state in the checkpoint directory
// (or the local directory) that the engine uses (see the package doc).
const liveName = "live"

// transferConcurrency bounds the files of one checkpoint uploaded or
// downloaded at once: enough to hide the latency of a request to S3 behind
// the others (a large file is uploaded in parallel parts besides).
const transferConcurrency = 8

// remote is the object store of a checkpoint location in object storage.
type remote struct {
	objects objstore.Store
	// ctx bounds every request; it is the context given to OpenLocation.
	ctx context.Context
	mu  sync.Mutex
	// manifests caches the manifests read or written (they never change),
	// so that retention does not download them at every checkpoint.
	manifests map[uint64]*Manifest
}

// OpenLocation opens the checkpoint location: a directory path, or
// s3://bucket/prefix in an S3-compatible object store.
//
// A directory path without a localDir (or with localDir the same directory)
// behaves exactly as Open: the checkpoints, the live state and the lock are
// all in it, and a checkpoint costs no copy. With another localDir, the
// directory is a location like s3:// (a shared filesystem, NFS, where live
// Pebble state would be slow and unsafe): the live state and the staging
// copies are in localDir, completed checkpoints are copied into the
// directory through a local object store, and both directories are locked.
// Either way of opening restores the checkpoints the other wrote.
//
// For s3://, endpoint, region and credentials come from the standard AWS
// environment and configuration (package objstore), and the bucket is
// created if missing. The live state, the lock and the staging copies of the
// checkpoints are in localDir, which must not be shared with another job.
// A checkpoint is staged in localDir as in a checkpoint directory, then
// Complete uploads the files that are new since the previous checkpoint
// (a file that is the same inode as the same path in the previous one is not:
// Pebble never changes an sstable, so such a file is shared and the manifest
// names the object it was first uploaded as) and, last, the manifest: a
// checkpoint exists in object storage exactly when its manifest object does.
// Verify downloads a checkpoint into an empty localDir, verifying every
// object's checksum. Every request is bounded by ctx, which must last as
// long as the store, final checkpoint included.
//
// NB: the lock is on localDir: two jobs with different local directories
// and the same s3:// location are not detected, and would delete each
// other's checkpoints.
func OpenLocation(ctx context.Context, location, localDir string, logger *slog.Logger) (*Store, error) {
	loc, err := objstore.ParseLocation(location)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnusableDir, err)
	}
	if !loc.IsS3() {
		if localDir == "" || filepath.Clean(localDir) == loc.Path {
			return Open(location, logger)
		}
		return openDirWithLocalDir(ctx, loc.Path, localDir, logger)
	}
	if localDir == "" {
		return nil, fmt.Errorf("%w: %s: checkpoints in object storage need a local directory for the live state and the staging of checkpoints (--local-dir)", ErrUnusableDir, location)
	}
	if logger == nil {
		logger = slog.Default()
	}
	objects, err := objstore.Open(ctx, location, objstore.Options{CreateBucket: true, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnusableDir, err)
	}
	return openRemote(ctx, objects, localDir, logger)
}

// openRemote opens a Store that keeps its checkpoints in objects and stages
// them in localDir.
func openRemote(ctx context.Context, objects objstore.Store, localDir string, logger *slog.Logger) (*Store, error) {
	s, err := Open(localDir, logger)
	if err != nil {
		return nil, err
	}
	s.remote = &remote{objects: objects, ctx: ctx, manifests: map[uint64]*Manifest{}}
	return s, nil
}

// openDirWithLocalDir opens the checkpoint directory dir as a location in
// object storage staged in localDir. It also locks dir, as Open does: two
// jobs on one directory are refused whichever of them has a local directory.
func openDirWithLocalDir(ctx context.Context, dir, localDir string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	objects, err := objstore.Open(ctx, dir, objstore.Options{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnusableDir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s, err := openRemote(ctx, objects, localDir, logger)
	if err != nil {
		lock.Close()
		return nil, err
	}
	s.locationLock = lock
	return s, nil
}

// manifest returns the manifest of checkpoint id, reading it once.
func (r *remote) manifest(id uint64) (*Manifest, error) {
	r.mu.Lock()
	m := r.manifests[id]
	r.mu.Unlock()
	if m != nil {
		return m, nil
	}
	key := manifest.DirName(id) + "/" + ManifestName
	data, err := r.objects.GetBytes(r.ctx, key)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %d: %w", id, err)
	}
	m, err = manifest.Parse(id, key+" in "+r.objects.Location(), data)
	if err != nil {
		return nil, err
	}
	r.remember(m)
	return m, nil
}

func (r *remote) remember(m *Manifest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.manifests[m.ID] = m
}

func (r *remote) forget(id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.manifests, id)
}

// remoteDir is a checkpoint directory in object storage: its objects.
type remoteDir struct {
	objects  []objstore.Object
	complete bool // has a manifest
}

// remoteDirs lists the checkpoint directories in object storage by id.
func (s *Store) remoteDirs() (map[uint64]*remoteDir, error) {
	objs, err := s.remote.objects.List(s.remote.ctx, manifest.DirPrefix)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	dirs := map[uint64]*remoteDir{}
	for _, o := range objs {
		name, rest, ok := strings.Cut(o.Key, "/")
		id, isDir := manifest.ParseDirName(name)
		if !ok || !isDir || name != manifest.DirName(id) {
			continue
		}
		d := dirs[id]
		if d == nil {
			d = &remoteDir{}
			dirs[id] = d
		}
		d.objects = append(d.objects, o)
		d.complete = d.complete || rest == ManifestName
	}
	return dirs, nil
}

// topID returns the highest id of a checkpoint directory in objects,
// complete or not, those moved aside (incomplete/, by a run without a local
// directory on a checkpoint directory) included, or 0.
func topID(ctx context.Context, objects objstore.Store) (uint64, error) {
	if loc, err := objstore.ParseLocation(objects.Location()); err == nil && !loc.IsS3() {
		// NB: listed as directories: an aborted checkpoint's is empty, and
		// a local store lists only files.
		return dirTopID(loc.Path)
	}
	var top uint64
	objs, err := objects.List(ctx, manifest.DirPrefix)
	if err != nil {
		return 0, err
	}
	for _, o := range objs {
		name, _, _ := strings.Cut(o.Key, "/")
		if id, ok := manifest.ParseDirName(name); ok {
			top = max(top, id)
		}
	}
	return top, nil
}

// remoteLatest returns the manifest of the newest complete checkpoint in
// object storage, or nil.
func (s *Store) remoteLatest() (*Manifest, error) {
	dirs, err := s.remoteDirs()
	if err != nil {
		return nil, err
	}
	var newest uint64
	for id, d := range dirs {
		if d.complete {
			newest = max(newest, id)
		}
	}
	if newest == 0 {
		return nil, nil
	}
	return s.Read(newest)
}

// fetch downloads the files of m into its local directory, verifying each
// object; files already there intact are kept.
func (s *Store) fetch(m *Manifest) error {
	dir := s.Dir(m.ID)
	return parallel(len(m.Files), func(i int) error {
		f := m.Files[i]
		path := filepath.Join(dir, filepath.FromSlash(f.Path))
		if size, sum, err := checksumFile(path); err == nil && size == f.Size && sum == f.CRC32C {
			return nil // staged here by this machine before
		}
		key := f.Key(manifest.DirName(m.ID))
		err := s.remote.objects.Get(s.remote.ctx, key, path, objstore.Checksum{Size: f.Size, CRC32C: f.CRC32C})
		switch {
		case errors.Is(err, objstore.ErrCorrupt):
			return fmt.Errorf("checkpoint %d: file %s: %w: %w", m.ID, f.Path, ErrCorrupt, err)
		case errors.Is(err, objstore.ErrNotFound):
			return fmt.Errorf("checkpoint %d: file %s: object %s is missing from %s: %w", m.ID, f.Path, key, s.Location(), ErrCorrupt)
		case err != nil:
			return fmt.Errorf("checkpoint %d: download file %s: %w", m.ID, f.Path, err)
		}
		return nil
	})
}

// publishRemote uploads the manifest of m, whose files are uploaded: from
// now on, the checkpoint is complete.
func (s *Store) publishRemote(m *Manifest, data []byte) error {
	if _, err := s.remote.objects.PutBytes(s.remote.ctx, manifest.DirName(m.ID)+"/"+ManifestName, data); err != nil {
		return fmt.Errorf("checkpoint %d: upload manifest: %w", m.ID, err)
	}
	stored := *m // as read back: BytesWritten without the manifest
	s.remote.remember(&stored)
	return nil
}

// abortRemote deletes what an incomplete checkpoint uploaded, but the record
// of its id.
func (s *Store) abortRemote(id uint64) error {
	objs, err := s.remote.objects.List(s.remote.ctx, manifest.DirName(id)+"/")
	if err != nil {
		return fmt.Errorf("checkpoint %d: %w", id, err)
	}
	var keys []string
	for _, o := range objs {
		if o.Key != manifest.DirName(id)+"/"+reservedName {
			keys = append(keys, o.Key)
		}
	}
	if err := s.remote.objects.Delete(s.remote.ctx, keys...); err != nil {
		return fmt.Errorf("checkpoint %d: %w", id, err)
	}
	return nil
}

// retainRemote keeps the newest keep complete checkpoints in object storage
// and everything newer than the newest complete one (it may be in flight).
// Of every other checkpoint, it deletes first the manifest, so that a crash
// midway leaves an incomplete checkpoint and never a complete one with
// missing files, then every object no retained manifest references. A
// checkpoint whose objects are all still referenced stays as an incomplete
// directory of shared files, swept again at every Retain.
func (s *Store) retainRemote(keep int) error {
	dirs, err := s.remoteDirs()
	if err != nil {
		return err
	}
	ids := slices.SortedFunc(func(yield func(uint64) bool) {
		for id := range dirs {
			if !yield(id) {
				return
			}
		}
	}, func(a, b uint64) int { return cmp.Compare(b, a) }) // newest first
	kept, referenced := 0, map[string]bool{}
	var drop []uint64
	for _, id := range ids {
		switch {
		case dirs[id].complete:
			if kept++; kept <= keep {
				m, err := s.Read(id)
				if err != nil {
					return fmt.Errorf("%w; deleting nothing", err)
				}
				for _, f := range m.Files {
					referenced[f.Key(manifest.DirName(id))] = true
				}
				for _, o := range dirs[id].objects {
					referenced[o.Key] = true // manifest, commit records
				}
				continue
			}
		case kept == 0:
			continue // newer than every complete checkpoint: may be in flight
		}
		drop = append(drop, id)
	}
	for _, id := range drop {
		if err := s.dropRemote(id, dirs[id], referenced); err != nil {
			return err
		}
	}
	if s.prev == nil {
		return nil
	}
	return s.dropStaging(func(id uint64) bool { return id < s.prev.ID })
}

// dropRemote deletes the manifest of checkpoint id, then its objects that
// are not referenced.
func (s *Store) dropRemote(id uint64, d *remoteDir, referenced map[string]bool) error {
	if d.complete {
		if err := s.remote.objects.Delete(s.remote.ctx, manifest.DirName(id)+"/"+ManifestName); err != nil {
			return fmt.Errorf("checkpoint %d: delete: %w", id, err)
		}
		s.remote.forget(id)
	}
	var keys []string
	for _, o := range d.objects {
		if !referenced[o.Key] {
			keys = append(keys, o.Key)
		}
	}
	if err := s.remote.objects.Delete(s.remote.ctx, keys...); err != nil {
		return fmt.Errorf("checkpoint %d: delete: %w", id, err)
	}
	s.logger.Debug("deleted checkpoint", "checkpoint", id, "location", s.Location(), "objects", len(keys), "shared_objects_kept", len(d.objects)-len(keys))
	return nil
}

// dropStaleLive deletes the live state that a run without a local directory
// left in a checkpoint directory (live/, see package internal/engine): no
// run restores live state, every run restores its checkpoint, and this one
// keeps its live state in the local directory.
func (s *Store) dropStaleLive() error {
	if s.locationLock == nil {
		return nil
	}
	live := filepath.Join(s.remote.objects.Location(), liveName)
	if !fileExists(live) {
		return nil
	}
	if err := os.RemoveAll(live); err != nil {
		return fmt.Errorf("checkpoint: delete the live state %s of a run without --local-dir: %w", live, err)
	}
	s.logger.Info("deleted the live state a run without --local-dir left in the checkpoint directory", "path", live)
	return nil
}

// dropStaging deletes the local copies of the checkpoints for which drop
// returns true.
func (s *Store) dropStaging(drop func(id uint64) bool) error {
	entries, err := listCheckpoints(s.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !drop(e.id) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.dir, e.name)); err != nil {
			return fmt.Errorf("checkpoint %d: delete local copy: %w", e.id, err)
		}
	}
	return nil
}

// parallel calls fn(0) to fn(n-1), transferConcurrency at a time, and
// returns the error of the lowest i that failed, so that the error does not
// depend on timing.
func parallel(n int, fn func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, transferConcurrency)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(i)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
