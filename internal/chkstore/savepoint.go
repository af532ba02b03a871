package chkstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
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
	objects, err := objstore.Open(ctx, location, objstore.Options{CreateBucket: true, Logger: s.logger})
	if err != nil {
		return "", fmt.Errorf("savepoint of checkpoint %d: %w", m.ID, err)
	}
	name := fmt.Sprintf("%s%010d-%s", savepointPrefix, m.ID, time.Now().UTC().Format("20060102T150405.000Z"))
	path := JoinLocation(objects.Location(), name)
	if existing, err := objects.List(ctx, name+"/"); err != nil || len(existing) > 0 {
		return "", fmt.Errorf("savepoint %s: exists already (or cannot be listed: %v)", path, err)
	}
	sp := *m
	sp.Version, sp.BytesWritten = manifest.Version, 0
	sp.Files = make([]File, len(m.Files))
	err = parallel(len(m.Files), func(i int) error {
		f := m.Files[i]
		f.Object = "" // every file is the savepoint's own
		sum, err := objects.Put(ctx, name+"/"+f.Path, filepath.Join(s.Dir(m.ID), filepath.FromSlash(f.Path)))
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

// Savepoint is a savepoint opened by ReadSavepoint.
type Savepoint struct {
	Path     string
	Manifest *Manifest
	objects  objstore.Store
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
func (s *Store) ImportSavepoint(ctx context.Context, sp *Savepoint) (*Manifest, error) {
	next, err := s.NextID()
	if err != nil {
		return nil, err
	}
	m := *sp.Manifest
	m.ID, m.Savepoint = max(m.ID, next), sp.Lineage()
	dir, err := s.Begin(m.ID)
	if err != nil {
		return nil, err
	}
	err = parallel(len(m.Files), func(i int) error {
		f := m.Files[i]
		key := f.Key("")
		err := sp.objects.Get(ctx, key, filepath.Join(dir, filepath.FromSlash(f.Path)), objstore.Checksum{Size: f.Size, CRC32C: f.CRC32C})
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
	return &m, nil
}
