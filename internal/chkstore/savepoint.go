package chkstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/weirstream/weir/internal/manifest"
	"github.com/weirstream/weir/internal/objstore"
)

// A savepoint is a complete checkpoint copied, file by file, into a
// directory of its own under a savepoint location (a directory or
// s3://bucket/prefix): savepoint-<id>-<time>/ with the checkpoint's files
// and, written last, its own MANIFEST. It shares nothing with the checkpoint
// location (no hard links, no references to shared objects), so retention
// never touches it and it can be moved to another machine; a job starts from
// it with ImportSavepoint.

// savepointPrefix begins the name of every savepoint directory.
const savepointPrefix = "savepoint-"

// ErrNoSavepoint is wrapped when a path given as a savepoint holds none.
var ErrNoSavepoint = errors.New("checkpoint: no savepoint")

// WriteSavepoint copies the complete checkpoint m, from its local directory
// (Dir), into a new directory under location and returns the savepoint's
// path. Every file is verified against m on the way: a file changed since
// the checkpoint fails the savepoint with ErrCorrupt. The manifest is
// written last, so a savepoint interrupted midway has none and is never
// restored.
func (s *Store) WriteSavepoint(ctx context.Context, m *Manifest, location string) (string, error) {
	name := fmt.Sprintf("%s%010d-%s", savepointPrefix, m.ID, time.Now().UTC().Format("20060102T150405.000Z"))
	return writeSavepoint(ctx, m, location, name, s.logger, func(f File) (string, error) {
		return filepath.Join(s.Dir(m.ID), filepath.FromSlash(f.Path)), nil
	})
}

// WriteSavepoint copies the checkpoint sp (opened by ReadCheckpoint) into
// the new directory name under location, as Store.WriteSavepoint does, and
// returns the savepoint's path. Files in object storage are downloaded
// into tmp on the way, and verified.
func (sp *Savepoint) WriteSavepoint(ctx context.Context, location, name, tmp string) (string, error) {
	local := !strings.HasPrefix(sp.Path, "s3://")
	return writeSavepoint(ctx, sp.Manifest, location, name, slog.New(slog.DiscardHandler), func(f File) (string, error) {
		key := f.Key(sp.dir)
		if local {
			return filepath.Join(sp.Path, filepath.FromSlash(key)), nil
		}
		dst := filepath.Join(tmp, filepath.FromSlash(key))
		return dst, sp.objects.Get(ctx, key, dst, objstore.Checksum{Size: f.Size, CRC32C: f.CRC32C})
	})
}

// writeSavepoint copies the files of m, each read from the local file that
// source returns, into the directory name under location, verifying each
// against m, then writes the savepoint's manifest.
func writeSavepoint(ctx context.Context, m *Manifest, location, name string, logger *slog.Logger, source func(File) (string, error)) (string, error) {
	objects, err := objstore.Open(ctx, location, objstore.Options{CreateBucket: true, Logger: logger})
	if err != nil {
		return "", fmt.Errorf("savepoint of checkpoint %d: %w", m.ID, err)
	}
	path := JoinLocation(objects.Location(), name)
	if existing, err := objects.List(ctx, name+"/"); err != nil || len(existing) > 0 {
		return "", fmt.Errorf("savepoint %s: exists already (or cannot be listed: %v)", path, err)
	}
	sp := *m
	sp.Version, sp.BytesWritten = manifest.Version, 0
	sp.Files = make([]File, len(m.Files))
	err = parallel(len(m.Files), func(i int) error {
		f := m.Files[i]
		src, err := source(f)
		if err != nil {
			return err
		}
		f.Object = "" // every file is the savepoint's own
		sum, err := objects.Put(ctx, name+"/"+f.Path, src)
		if err != nil {
			return err
		}
		if sum.Size != f.Size || sum.CRC32C != f.CRC32C {
			return fmt.Errorf("file %s is %s, the manifest of checkpoint %d says %s: %w",
				f.Path, sum, m.ID, objstore.Checksum{Size: f.Size, CRC32C: f.CRC32C}, ErrCorrupt)
		}
		sp.Files[i] = f
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("savepoint %s of checkpoint %d: %w", path, m.ID, err)
	}
	for _, f := range sp.Files {
		sp.BytesWritten += f.Size
	}
	data, err := manifest.Encode(&sp)
	if err == nil {
		_, err = objects.PutBytes(ctx, name+"/"+ManifestName, data)
	}
	if err != nil {
		return "", fmt.Errorf("savepoint %s of checkpoint %d: manifest: %w", path, m.ID, err)
	}
	return path, nil
}

// JoinLocation returns the location of name under location.
func JoinLocation(location, name string) string {
	if strings.HasPrefix(location, "s3://") {
		return strings.TrimSuffix(location, "/") + "/" + name
	}
	return filepath.Join(location, name)
}

// Savepoint is a savepoint opened by ReadSavepoint, or a complete
// checkpoint of another location opened by ReadCheckpoint: what
// ImportSavepoint copies into a store.
type Savepoint struct {
	Path     string // the savepoint's directory, or the checkpoint's location
	Manifest *Manifest
	objects  objstore.Store
	// dir is the key of the directory the files are in, relative to
	// objects: "" for a savepoint, chk-<id> for a checkpoint.
	dir string
	// checkpoint is set by ReadCheckpoint: the import keeps the lineage
	// (Manifest.Savepoint) the checkpoint has, takes an id above every id
	// its location used (nextID), and keeps its commit records.
	checkpoint bool
	nextID     uint64
	committed  []string // keys of its commit records
}

// Lineage identifies the savepoint in the manifests of the checkpoints of
// a run started from it (Manifest.Savepoint): its job, checkpoint id and
// creation time, which stay the same wherever it is copied.
func (sp *Savepoint) Lineage() string {
	m := sp.Manifest
	return fmt.Sprintf("%s/%d@%s", m.Job, m.ID, m.Created.UTC().Format(time.RFC3339Nano))
}

// ReadSavepoint opens the savepoint at path (a savepoint-… directory, local
// or s3://) and reads its manifest. A path that holds no manifest but
// savepoints below it fails with ErrNoSavepoint naming them.
func ReadSavepoint(ctx context.Context, path string) (*Savepoint, error) {
	objects, err := objstore.Open(ctx, path, objstore.Options{ReadOnly: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("savepoint %s: %w", path, err)
	}
	data, err := objects.GetBytes(ctx, ManifestName)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("%w at %s: it has no %s", ErrNoSavepoint, path, ManifestName)
	}
	if err != nil {
		return nil, fmt.Errorf("savepoint %s: %w", path, err)
	}
	m, err := manifest.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("savepoint %s: %w", path, err)
	}
	return &Savepoint{Path: objects.Location(), Manifest: m, objects: objects}, nil
}

// ImportSavepoint copies the savepoint sp into the store as a complete
// checkpoint, downloading every file and verifying it against sp's
// manifest (a damaged or missing file fails with ErrCorrupt naming its
// object), and returns its manifest, which has Savepoint set to sp's
// lineage. The checkpoint keeps sp's id unless the store already used it.
// The caller checks that the store holds no complete checkpoint; a restore
// then finds this one as the newest, through the ordinary path (Latest,
// Verify, ReadOperatorState, RestoreKeyed).
//
// A checkpoint opened by ReadCheckpoint is imported the same way, but keeps
// its lineage and its commit records (its sinks need not commit it again),
// and takes an id above every id its own location used, complete or not:
// its owner there may have pre-committed under those. Between two local
// directories its files are hard-linked (and verified) instead of copied.
func (s *Store) ImportSavepoint(ctx context.Context, sp *Savepoint) (*Manifest, error) {
	next, err := s.NextID()
	if err != nil {
		return nil, err
	}
	m := *sp.Manifest
	m.ID = max(m.ID, next, sp.nextID)
	if !sp.checkpoint {
		m.Savepoint = sp.Lineage()
	}
	dir, err := s.Begin(m.ID)
	if err != nil {
		return nil, err
	}
	err = parallel(len(m.Files), func(i int) error {
		f := m.Files[i]
		key := f.Key(sp.dir)
		dst := filepath.Join(dir, filepath.FromSlash(f.Path))
		if s.linkLocal(sp, key, dst, f) {
			return nil
		}
		err := sp.objects.Get(ctx, key, dst, objstore.Checksum{Size: f.Size, CRC32C: f.CRC32C})
		switch {
		case errors.Is(err, objstore.ErrCorrupt):
			return fmt.Errorf("file %s: %w: %w", f.Path, ErrCorrupt, err)
		case errors.Is(err, objstore.ErrNotFound):
			return fmt.Errorf("file %s: object %s is missing: %w", f.Path, key, ErrCorrupt)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("savepoint %s: %w; nothing was restored", sp.Path, err)
	}
	m.Files = nil
	if err := s.Complete(&m); err != nil {
		return nil, fmt.Errorf("savepoint %s: %w", sp.Path, err)
	}
	for _, key := range sp.committed {
		name := path.Base(key)
		i := strings.LastIndexByte(name, '.')
		subtask, err := strconv.Atoi(name[i+1:])
		if i < 0 || err != nil {
			continue // not a record MarkCommitted wrote
		}
		if err := s.MarkCommitted(m.ID, name[:i], subtask); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

// linkLocal hard-links the file key of sp to dst when both are local, and
// reports whether dst then holds the file f intact. Anything else (object
// storage, another filesystem, a damaged file) falls back to a copy, which
// verifies and names the damage.
func (s *Store) linkLocal(sp *Savepoint, key, dst string, f File) bool {
	if s.remote != nil || strings.HasPrefix(sp.Path, "s3://") {
		return false
	}
	src := filepath.Join(sp.Path, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil || os.Link(src, dst) != nil {
		return false
	}
	if size, sum, err := checksumFile(dst); err == nil && size == f.Size && sum == f.CRC32C {
		return true
	}
	os.Remove(dst)
	return false
}

// ReadCheckpoint opens the complete checkpoint id of the checkpoint location
// (a directory or s3://) for ImportSavepoint into another location: how a
// task of a job spread over processes starts, in a location of its own,
// from the checkpoint its previous owner left (package tasklineage). It
// reads the location without locking it: its files are immutable once its
// manifest exists.
func ReadCheckpoint(ctx context.Context, location string, id uint64) (*Savepoint, error) {
	objects, err := objstore.Open(ctx, location, objstore.Options{ReadOnly: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("checkpoint %d in %s: %w", id, location, err)
	}
	dir := manifest.DirName(id)
	key := dir + "/" + ManifestName
	data, err := objects.GetBytes(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %d in %s: %w", id, location, err)
	}
	m, err := manifest.Parse(id, key+" in "+objects.Location(), data)
	if err != nil {
		return nil, err
	}
	sp := &Savepoint{Path: objects.Location(), Manifest: m, objects: objects, dir: dir, checkpoint: true}
	top, err := topID(ctx, objects)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %d in %s: %w", id, location, err)
	}
	sp.nextID = top + 1
	committed, err := objects.List(ctx, dir+"/"+manifest.CommittedName+"/")
	if err != nil && !errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("checkpoint %d in %s: %w", id, location, err)
	}
	for _, o := range committed {
		sp.committed = append(sp.committed, o.Key)
	}
	return sp, nil
}
