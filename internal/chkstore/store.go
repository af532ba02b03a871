package chkstore

import (
	"cmp"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/weirstream/weir/internal/manifest"
)

const (
	// lockName is the file whose flock marks the directory as in use; it
	// holds the pid of the process that last took the lock.
	lockName = "LOCK"
	// asideName is the subdirectory that incomplete checkpoints found at
	// start are moved into; the newest keepAside of them are kept.
	asideName = "incomplete"
	keepAside = 5
)

// ErrUnusableDir is wrapped when the checkpoint directory cannot be created
// or written, or is in use by another process.
var ErrUnusableDir = errors.New("checkpoint: unusable checkpoint directory")

// ErrLocked is wrapped, together with ErrUnusableDir, when another open Store
// (normally another process running a job) holds the checkpoint directory.
var ErrLocked = errors.New("checkpoint: directory in use by another process")

// Store is a checkpoint directory.
type Store struct {
	dir    string
	logger *slog.Logger
	lock   *os.File // holds the flock on LOCK until Close
	// prev is the newest complete checkpoint; files shared with it by hard
	// link keep its checksums instead of being read again.
	prev *Manifest
	// remote is the object store of an s3:// location, or of a checkpoint
	// directory opened with a local directory, or nil: dir is then the
	// checkpoint directory itself (see OpenLocation).
	remote *remote
	// locationLock holds the flock on the LOCK of a checkpoint directory
	// opened with a local directory (lock is then the local directory's).
	locationLock *os.File
}

// Open opens the checkpoint directory dir, creating it if needed, takes its
// lock and checks that it is writable. The lock is exclusive: until Close
// (or the death of the process), opening dir again, from this process or
// another, fails with an error that wraps ErrLocked and ErrUnusableDir and
// names the holder's pid. Two jobs on one directory would delete each
// other's live state and write the same checkpoint ids.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: no directory given", ErrUnusableDir)
	}
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrUnusableDir, dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	probe, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("%w %s: not writable: %w", ErrUnusableDir, dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return &Store{dir: dir, logger: logger, lock: lock}, nil
}

// lockDir takes the lock of dir and writes this process's pid into it.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	// NB: no O_TRUNC: a failed attempt must leave the holder's pid in place.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrUnusableDir, dir, err)
	}
	held, err := flock(f)
	if held {
		f.Close()
		return nil, fmt.Errorf("%w %s: %w (%s, see %s); stop that job, or give this one another checkpoint directory",
			ErrUnusableDir, dir, ErrLocked, lockHolder(path), path)
	}
	if err == nil {
		err = f.Truncate(0)
	}
	if err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w %s: lock %s: %w", ErrUnusableDir, dir, path, err)
	}
	return f, nil
}

// lockHolder describes the process named in the lock file at path.
func lockHolder(path string) string {
	data, _ := os.ReadFile(path)
	if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
		return "pid " + strconv.Itoa(pid)
	}
	return "a process that has not written its pid yet"
}

// Close releases the lock of the checkpoint directory; the store must not be
// used after. The LOCK file stays: deleting it would let two processes lock
// two different files of the same name.
func (s *Store) Close() error {
	var err error
	for _, f := range []**os.File{&s.lock, &s.locationLock} {
		if *f != nil {
			err = cmp.Or(err, (*f).Close())
			*f = nil
		}
	}
	return err
}

// Root returns the checkpoint directory or, for a location in object
// storage, the local directory that holds the live state and stages the
// checkpoints.
func (s *Store) Root() string { return s.dir }

// Location returns where the checkpoints are kept: the checkpoint directory,
// or s3://bucket/prefix.
func (s *Store) Location() string {
	if s.remote != nil {
		return s.remote.objects.Location()
	}
	return s.dir
}

// Dir returns the local directory of checkpoint id: the checkpoint itself,
// or, for a location in object storage, where it is staged before its upload
// and downloaded to by Verify.
func (s *Store) Dir(id uint64) string {
	return filepath.Join(s.dir, manifest.DirName(id))
}

// KeyedDir returns the path, relative to a checkpoint directory, of the keyed
// state of an operator subtask.
func KeyedDir(operator string, subtask int) string {
	return filepath.ToSlash(filepath.Join("state", operator, strconv.Itoa(subtask)))
}

// ids lists the ids of all checkpoint directories, complete or not, in
// ascending order.
func (s *Store) ids() ([]uint64, error) {
	entries, err := listCheckpoints(s.dir)
	ids := make([]uint64, len(entries))
	for i, e := range entries {
		ids[i] = e.id
	}
	return ids, err
}

// checkpointEntry is a checkpoint directory: its id and its name, which is
// Dir's unless it was named by hand (chk-40).
type checkpointEntry struct {
	id   uint64
	name string
}

// listCheckpoints lists the checkpoint directories in dir by ascending id.
func listCheckpoints(dir string) ([]checkpointEntry, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: list %s: %w", dir, err)
	}
	var out []checkpointEntry
	for _, e := range entries {
		if id, ok := manifest.ParseDirName(e.Name()); ok && e.IsDir() {
			out = append(out, checkpointEntry{id, e.Name()})
		}
	}
	slices.SortFunc(out, func(a, b checkpointEntry) int { return cmp.Compare(a.id, b.id) })
	return out, nil
}

// asideDir returns the directory incomplete checkpoints are moved into.
func (s *Store) asideDir() string { return filepath.Join(s.dir, asideName) }

// aside lists the checkpoints moved aside.
func (s *Store) aside() ([]checkpointEntry, error) {
	entries, err := listCheckpoints(s.asideDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return entries, err
}

func (s *Store) complete(id uint64) bool {
	if s.remote != nil {
		_, err := s.remote.objects.Stat(s.remote.ctx, manifest.DirName(id)+"/"+ManifestName)
		return err == nil
	}
	return hasManifest(s.Dir(id))
}

func hasManifest(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, ManifestName))
	return err == nil
}

// Latest returns the manifest of the newest complete checkpoint, or nil if
// there is none. It does not verify the checkpoint's files.
func (s *Store) Latest() (*Manifest, error) {
	if s.remote != nil {
		return s.remoteLatest()
	}
	ids, err := s.ids()
	if err != nil {
		return nil, err
	}
	for i := len(ids) - 1; i >= 0; i-- {
		if s.complete(ids[i]) {
			return s.Read(ids[i])
		}
	}
	return nil, nil
}

// Read reads the manifest of checkpoint id.
func (s *Store) Read(id uint64) (*Manifest, error) {
	if s.remote != nil {
		return s.remote.manifest(id)
	}
	path := filepath.Join(s.Dir(id), ManifestName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %d: %w", id, err)
	}
	return manifest.Parse(id, path, data)
}

// NextID returns an id above every checkpoint directory present, complete or
// not, and every one moved aside, so that a new run never reuses the id of
// anything an earlier run may have written, pre-committed or committed.
func (s *Store) NextID() (uint64, error) {
	top, err := dirTopID(s.dir)
	if err != nil {
		return 0, err
	}
	if s.remote != nil {
		used, err := topID(s.remote.ctx, s.remote.objects)
		if err != nil {
			return 0, fmt.Errorf("checkpoint: %w", err)
		}
		top = max(top, used)
	}
	return top + 1, nil
}

// dirTopID returns the highest id of a checkpoint directory in dir or moved
// aside in it, or 0.
func dirTopID(dir string) (uint64, error) {
	var top uint64
	for _, d := range []string{dir, filepath.Join(dir, asideName)} {
		entries, err := listCheckpoints(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if len(entries) > 0 {
			top = max(top, entries[len(entries)-1].id)
		}
	}
	return top, nil
}

// Verify checks every file of m against its size and checksum. The error
// names the first bad file and the checkpoint and wraps ErrCorrupt. For a
// location in object storage, it downloads the files of m that the local
// directory does not already hold intact, verifying each object, so that
// ReadOperatorState and RestoreKeyed then read them locally.
func (s *Store) Verify(m *Manifest) error {
	if s.remote != nil {
		if err := s.fetch(m); err != nil {
			return err
		}
		s.prev = m
		return nil
	}
	if err := s.linkShared(m); err != nil {
		return err
	}
	dir := s.Dir(m.ID)
	for _, f := range m.Files {
		path := filepath.Join(dir, filepath.FromSlash(f.Path))
		size, sum, err := checksumFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("checkpoint %d: file %s is missing: %w", m.ID, path, ErrCorrupt)
		case err != nil:
			return fmt.Errorf("checkpoint %d: file %s: %w", m.ID, path, err)
		case size != f.Size:
			return fmt.Errorf("checkpoint %d: file %s has %d bytes, manifest says %d: %w", m.ID, path, size, f.Size, ErrCorrupt)
		case sum != f.CRC32C:
			return fmt.Errorf("checkpoint %d: file %s fails its checksum (crc32c %08x, manifest says %08x): %w", m.ID, path, sum, f.CRC32C, ErrCorrupt)
		}
	}
	s.prev = m
	return nil
}

// linkShared makes checkpoint m self-contained in the checkpoint
// directory, as every checkpoint written without a local directory is:
// a checkpoint written with one (OpenLocation) names, for a file it shares
// with an earlier checkpoint, that checkpoint's copy (File.Object), which
// Retain here would delete with its checkpoint. Each such file is
// hard-linked (or copied) to its own path; Verify then checks it there.
func (s *Store) linkShared(m *Manifest) error {
	dir, linked := s.Dir(m.ID), 0
	for _, f := range m.Files {
		own := filepath.Join(dir, filepath.FromSlash(f.Path))
		if f.Object == "" || fileExists(own) {
			continue
		}
		shared := filepath.Join(s.dir, filepath.FromSlash(f.Object))
		if !fileExists(shared) {
			return fmt.Errorf("checkpoint %d: file %s is missing (it is shared with an earlier checkpoint as %s): %w", m.ID, own, shared, ErrCorrupt)
		}
		err := os.MkdirAll(filepath.Dir(own), 0o755)
		if err == nil && os.Link(shared, own) != nil {
			err = copyFile(shared, own, true)
		}
		if err != nil {
			return fmt.Errorf("checkpoint %d: link shared file %s: %w", m.ID, shared, err)
		}
		linked++
	}
	if linked > 0 {
		s.logger.Info("linked the files a checkpoint written with --local-dir shares with earlier ones into its own directory",
			"checkpoint", m.ID, "files", linked, "dir", dir)
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Begin creates the directory of checkpoint id. For a location in object
// storage, it also reserves the id there, durably, before any sink can
// pre-commit under it.
func (s *Store) Begin(id uint64) (string, error) {
	dir := s.Dir(id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("checkpoint %d: %w", id, err)
	}
	if s.remote != nil {
		if _, err := s.remote.objects.PutBytes(s.remote.ctx, manifest.DirName(id)+"/"+reservedName, nil); err != nil {
			return "", fmt.Errorf("checkpoint %d: reserve the id: %w", id, err)
		}
		return dir, nil
	}
	// Sinks pre-commit under this id before the checkpoint completes: the
	// directory must survive a power loss, or NextID could hand the id out
	// again. It costs about 2 ms a checkpoint (ext4 on a virtual disk).
	if err := syncDir(s.dir); err != nil {
		return "", fmt.Errorf("checkpoint %d: %w", id, err)
	}
	return dir, nil
}

// WriteOperatorState writes the state of an operator subtask into checkpoint
// id and returns its path relative to the checkpoint directory.
func (s *Store) WriteOperatorState(id uint64, operator string, subtask int, data []byte) (string, error) {
	rel := fmt.Sprintf("operators/%s.%d", operator, subtask)
	path := filepath.Join(s.Dir(id), filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("checkpoint %d: %w", id, err)
	}
	if err := writeFileSync(path, data); err != nil {
		return "", fmt.Errorf("checkpoint %d: write state of %s/%d: %w", id, operator, subtask, err)
	}
	return rel, nil
}

// Complete lists and checksums the files of m's checkpoint, then writes the
// manifest atomically. Only after Complete returns nil is the checkpoint
// complete.
func (s *Store) Complete(m *Manifest) error {
	m.Version = manifest.Version
	files, written, err := s.listFiles(m.ID)
	if err != nil {
		return err
	}
	m.Files, m.BytesWritten = files, written
	data, err := manifest.Encode(m)
	if err != nil {
		return fmt.Errorf("checkpoint %d: encode manifest: %w", m.ID, err)
	}
	if s.remote != nil {
		if err := s.publishRemote(m, data); err != nil {
			return err
		}
		m.BytesWritten += int64(len(data))
		s.prev = m
		return nil
	}
	dir := s.Dir(m.ID)
	tmp := filepath.Join(dir, "."+ManifestName+".tmp")
	if err := writeFileSync(tmp, data); err != nil {
		return fmt.Errorf("checkpoint %d: write manifest: %w", m.ID, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ManifestName)); err != nil {
		return fmt.Errorf("checkpoint %d: publish manifest: %w", m.ID, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("checkpoint %d: %w", m.ID, err)
	}
	m.BytesWritten += int64(len(data))
	s.prev = m
	return nil
}

// listFiles walks checkpoint id. A file that is a hard link of the same path
// in the previous checkpoint keeps its checksum without being read, and does
// not count as written; for a location in object storage it is not uploaded
// again either, and its entry names the object that holds it. Every other
// file is checksummed or, for object storage, uploaded.
func (s *Store) listFiles(id uint64) ([]File, int64, error) {
	dir := s.Dir(id)
	prev := map[string]File{}
	var prevDir string
	if s.prev != nil {
		prevDir = s.Dir(s.prev.ID)
		for _, f := range s.prev.Files {
			if s.remote != nil {
				f.Object = f.Key(manifest.DirName(s.prev.ID))
			} else {
				f.Object = "" // a hard link at its own path (see linkShared)
			}
			prev[f.Path] = f
		}
	}
	var files []File
	var fresh []int          // indices in files of the files to read
	var paths, dirs []string // their local paths; the directories walked
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, path)
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		if rel == ManifestName || strings.HasPrefix(d.Name(), "."+ManifestName) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if p, ok := prev[rel]; ok && p.Size == info.Size() {
			if pinfo, err := os.Stat(filepath.Join(prevDir, filepath.FromSlash(rel))); err == nil && os.SameFile(info, pinfo) {
				files = append(files, p)
				return nil
			}
		}
		fresh = append(fresh, len(files))
		paths = append(paths, path)
		files = append(files, File{Path: rel})
		return nil
	})
	if err == nil {
		err = s.digest(id, files, fresh, paths)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("checkpoint %d: list files: %w", id, err)
	}
	var written int64
	for _, i := range fresh {
		written += files[i].Size
	}
	if s.remote != nil {
		return files, written, nil // the local copy is only a staging area
	}
	// Make the directory entries durable before the manifest points at them.
	for _, d := range append(dirs, s.dir) {
		if err := syncDir(d); err != nil {
			return nil, 0, fmt.Errorf("checkpoint %d: %w", id, err)
		}
	}
	return files, written, nil
}

// digest fills in the size and checksum of files[fresh[i]], read from
// paths[i]; for a location in object storage, it uploads them.
func (s *Store) digest(id uint64, files []File, fresh []int, paths []string) error {
	if s.remote == nil {
		buf := make([]byte, checksumBuffer)
		for i, fi := range fresh {
			size, sum, err := checksumFileBuf(paths[i], buf)
			if err != nil {
				return err
			}
			files[fi].Size, files[fi].CRC32C = size, sum
		}
		return nil
	}
	return parallel(len(fresh), func(i int) error {
		f := &files[fresh[i]]
		sum, err := s.remote.objects.Put(s.remote.ctx, f.Key(manifest.DirName(id)), paths[i])
		f.Size, f.CRC32C = sum.Size, sum.CRC32C
		return err
	})
}

// Abort empties the directory of an incomplete checkpoint. The empty
// directory stays as a record of the id, so that a restart before the next
// checkpoint completes does not reuse it; Retain deletes it once a later
// checkpoint completes.
func (s *Store) Abort(id uint64) error {
	if s.complete(id) {
		return fmt.Errorf("checkpoint %d: refusing to abort a complete checkpoint", id)
	}
	if s.remote != nil {
		if err := s.abortRemote(id); err != nil {
			return err
		}
	}
	dir := s.Dir(id)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checkpoint %d: %w", id, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("checkpoint %d: %w", id, err)
		}
	}
	return nil
}

// Retain deletes all but the newest keep complete checkpoints, and every
// incomplete checkpoint older than the newest complete one.
//
// For a location in object storage, it deletes the objects of those
// checkpoints that no retained checkpoint references, and the local copies
// of all checkpoints older than the newest complete one.
func (s *Store) Retain(keep int) error {
	if s.remote != nil {
		return s.retainRemote(keep)
	}
	ids, err := s.ids()
	if err != nil {
		return err
	}
	kept := 0
	for i := len(ids) - 1; i >= 0; i-- {
		id := ids[i]
		if s.complete(id) {
			if kept++; kept <= keep {
				continue
			}
		} else if kept == 0 {
			continue // newer than every complete checkpoint: may be in flight
		}
		if err := os.RemoveAll(s.Dir(id)); err != nil {
			return fmt.Errorf("checkpoint %d: delete: %w", id, err)
		}
		s.logger.Debug("deleted checkpoint", "checkpoint", id)
	}
	return nil
}

// MoveIncompleteAside moves every checkpoint directory without a manifest
// into the subdirectory incomplete/, logging each at warn level, and then
// deletes all but the newest keepAside there. The runtime calls it at start,
// after the restored checkpoint was verified. Nothing is ever restored from
// incomplete/, but NextID counts it, so an id is never used twice, and the
// files stay for inspection: most incomplete checkpoints were just
// interrupted, but one that lost its MANIFEST may be the only record of
// what a sink committed.
//
// For a location in object storage, the local directories are only copies:
// all but the one of the checkpoint Verify downloaded are deleted, and the
// incomplete checkpoints in object storage are left to Retain.
func (s *Store) MoveIncompleteAside() error {
	if s.remote != nil {
		if err := s.dropStaleLive(); err != nil {
			return err
		}
		return s.dropStaging(func(id uint64) bool { return s.prev == nil || id != s.prev.ID })
	}
	entries, err := listCheckpoints(s.dir)
	if err != nil {
		return err
	}
	moved := false
	for _, e := range entries {
		from := filepath.Join(s.dir, e.name)
		if hasManifest(from) {
			continue
		}
		if err := os.MkdirAll(s.asideDir(), 0o755); err != nil {
			return fmt.Errorf("checkpoint %d: move incomplete checkpoint aside: %w", e.id, err)
		}
		to := filepath.Join(s.asideDir(), e.name)
		if err := os.Rename(from, to); err != nil {
			return fmt.Errorf("checkpoint %d: move incomplete checkpoint aside (if %s exists, move it out of the way by hand): %w", e.id, to, err)
		}
		s.logger.Warn("moved incomplete checkpoint aside: it has no MANIFEST and is never restored", "checkpoint", e.id, "path", to)
		moved = true
	}
	if !moved {
		return nil
	}
	for _, d := range []string{s.asideDir(), s.dir} {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("checkpoint: move incomplete checkpoints aside: %w", err)
		}
	}
	return s.pruneAside()
}

// pruneAside deletes all but the newest keepAside checkpoints moved aside.
// The newest stay, so NextID still sees the highest id.
func (s *Store) pruneAside() error {
	entries, err := s.aside()
	if err != nil {
		return err
	}
	for _, e := range entries[:max(0, len(entries)-keepAside)] {
		path := filepath.Join(s.asideDir(), e.name)
		if err := os.RemoveAll(path); err != nil {
			return fmt.Errorf("checkpoint %d: delete old incomplete checkpoint: %w", e.id, err)
		}
		s.logger.Info("deleted old incomplete checkpoint", "checkpoint", e.id, "path", path)
	}
	return nil
}

// ReadOperatorState returns the operator state of a subtask in m, or nil.
func (s *Store) ReadOperatorState(m *Manifest, operator string, subtask int) ([]byte, error) {
	st, ok := m.Subtask(operator, subtask)
	if !ok || st.StateFile == "" {
		return nil, nil
	}
	data, err := os.ReadFile(filepath.Join(s.Dir(m.ID), filepath.FromSlash(st.StateFile)))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %d: state of %s/%d: %w", m.ID, operator, subtask, err)
	}
	return data, nil
}

// RestoreKeyed materializes the keyed state of an operator subtask from m
// into the live directory dst (replacing it): sstables are hard-linked, since
// Pebble never changes them, and every other file is copied, because Pebble
// appends to its MANIFEST and the checkpoint must stay as it was. It reports
// false if m holds no keyed state for the subtask.
//
// NB: dst is a working copy, rebuilt from a checkpoint at every start, and
// a checkpoint copies and syncs what it takes from it but the sstables (see
// statebackend's workingCopyFS): so nothing else is synced here. The syncs
// it made (the copies of MANIFEST, OPTIONS and the marker, and dst) were
// on a takeover's path.
func (s *Store) RestoreKeyed(m *Manifest, operator string, subtask int, dst string) (bool, error) {
	st, ok := m.Subtask(operator, subtask)
	if err := os.RemoveAll(dst); err != nil {
		return false, err
	}
	if !ok || st.KeyedDir == "" {
		return false, nil
	}
	src := filepath.Join(s.Dir(m.ID), filepath.FromSlash(st.KeyedDir))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return false, err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return false, fmt.Errorf("checkpoint %d: keyed state of %s/%d: %w", m.ID, operator, subtask, err)
	}
	for _, e := range entries {
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		sst := strings.HasSuffix(e.Name(), ".sst")
		if sst && os.Link(from, to) == nil {
			continue
		}
		// NB: an sstable copied (across filesystems) is synced: the next
		// checkpoint hard-links it.
		if err := copyFile(from, to, sst); err != nil {
			return false, fmt.Errorf("checkpoint %d: restore %s: %w", m.ID, from, err)
		}
	}
	return true, nil
}

func checksumFile(path string) (int64, uint32, error) {
	return checksumFileBuf(path, make([]byte, checksumBuffer))
}

// checksumBuffer is the read buffer of checksumFile, io.Copy's size.
const checksumBuffer = 32 << 10

// checksumFileBuf is checksumFile reading through buf. NB: Complete reads
// every new file of a checkpoint through one buffer: io.Copy from a file
// allocated a buffer of its own for each (at each checkpoint of Nexmark
// q7, ten files of a few bytes to a few KB: 320 KB of garbage).
func checksumFileBuf(path string, buf []byte) (int64, uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	// NB: the file wrapped, so that io.CopyBuffer uses buf rather than
	// the file's WriteTo, which allocates its own.
	n, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf)
	return n, h.Sum32(), err
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// copyFile copies the file from to the file to, then syncs it if sync is
// set.
func copyFile(from, to string, sync bool) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if !sync {
		return out.Close()
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
