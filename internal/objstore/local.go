package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
)

// tmpPrefix begins the names of files being written; List skips them.
const tmpPrefix = ".objstore-tmp-"

// local is a Store in a directory: an object is a file at its key.
type local struct{ dir string }

func openLocal(dir string) (*local, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("objstore: %s: create directory: %w", dir, err)
	}
	probe, err := os.CreateTemp(dir, tmpPrefix+"probe-*")
	if err != nil {
		return nil, fmt.Errorf("objstore: %s: not writable: %w", dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return &local{dir: dir}, nil
}

func openLocalReadOnly(dir string) (*local, error) {
	info, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no directory %s", ErrNotFound, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("objstore: %s: %w", dir, err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrBadLocation, dir)
	}
	return &local{dir: dir}, nil
}

func (l *local) Location() string { return l.dir }

func (l *local) path(key string) (string, error) {
	if err := checkKey(l.dir, key); err != nil {
		return "", err
	}
	return filepath.Join(l.dir, filepath.FromSlash(key)), nil
}

func (l *local) Put(ctx context.Context, key, src string) (Checksum, error) {
	dst, err := l.path(key)
	if err != nil {
		return Checksum{}, err
	}
	in, err := os.Open(src)
	if err != nil {
		return Checksum{}, fmt.Errorf("objstore: put %s in %s: %w", key, l.dir, err)
	}
	defer in.Close()
	sum, err := l.publish(dst, in)
	if err != nil {
		return Checksum{}, fmt.Errorf("objstore: put %s in %s from %s: %w", key, l.dir, src, err)
	}
	return sum, nil
}

func (l *local) PutBytes(ctx context.Context, key string, data []byte) (Checksum, error) {
	dst, err := l.path(key)
	if err != nil {
		return Checksum{}, err
	}
	sum, err := l.publish(dst, bytes.NewReader(data))
	if err != nil {
		return Checksum{}, fmt.Errorf("objstore: put %s in %s: %w", key, l.dir, err)
	}
	return sum, nil
}

// Create writes data to a temporary file and hard-links it to key: link(2)
// fails if the name exists, so exactly one of concurrent Creates succeeds,
// also between processes on a shared filesystem.
func (l *local) Create(ctx context.Context, key string, data []byte) error {
	dst, err := l.path(key)
	if err != nil {
		return err
	}
	if err := mkdirAllSync(l.dir, filepath.Dir(dst)); err != nil {
		return fmt.Errorf("objstore: create %s in %s: %w", key, l.dir, err)
	}
	tmp := filepath.Join(filepath.Dir(dst), tmpPrefix+"create-"+filepath.Base(dst))
	tmp = fmt.Sprintf("%s-%d-%d", tmp, os.Getpid(), createSeq.Add(1))
	defer os.Remove(tmp)
	if _, err := writeAtomic(tmp, bytes.NewReader(data), nil); err != nil {
		return fmt.Errorf("objstore: create %s in %s: %w", key, l.dir, err)
	}
	if err := os.Link(tmp, dst); errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s in %s", ErrExists, key, l.dir)
	} else if err != nil {
		return fmt.Errorf("objstore: create %s in %s: %w", key, l.dir, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("objstore: create %s in %s: %w", key, l.dir, err)
	}
	return nil
}

// createSeq tells apart the temporary files of concurrent Creates.
var createSeq atomic.Uint64

// publish writes r to dst atomically and durably: a temporary file in dst's
// directory, fsynced, renamed into place, the directory fsynced.
func (l *local) publish(dst string, r io.Reader) (Checksum, error) {
	if err := mkdirAllSync(l.dir, filepath.Dir(dst)); err != nil {
		return Checksum{}, err
	}
	return writeAtomic(dst, r, nil)
}

// writeAtomic copies r into dst through a temporary file, checksumming the
// bytes, and renames it into place only if check (when given) accepts the
// checksum.
func writeAtomic(dst string, r io.Reader, check func(Checksum) error) (Checksum, error) {
	tmp, err := os.CreateTemp(filepath.Dir(dst), tmpPrefix+"*")
	if err != nil {
		return Checksum{}, err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	h := crc32.New(castagnoli)
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	sum := Checksum{Size: n, CRC32C: h.Sum32()}
	if err == nil && check != nil {
		err = check(sum)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err == nil {
		err = syncDir(filepath.Dir(dst))
	}
	return sum, err
}

func (l *local) Get(ctx context.Context, key, dst string, want Checksum) error {
	src, err := l.path(key)
	if err != nil {
		return err
	}
	in, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s in %s", ErrNotFound, key, l.dir)
	}
	if err != nil {
		return fmt.Errorf("objstore: get %s from %s: %w", key, l.dir, err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("objstore: get %s from %s: %w", key, l.dir, err)
	}
	_, err = writeAtomic(dst, in, func(got Checksum) error {
		if got != want {
			return corrupt(l.dir, key, got, want, "its manifest")
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("objstore: get %s from %s into %s: %w", key, l.dir, dst, err)
	}
	return err
}

func (l *local) GetBytes(ctx context.Context, key string) ([]byte, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s in %s", ErrNotFound, key, l.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("objstore: get %s from %s: %w", key, l.dir, err)
	}
	return data, nil
}

func (l *local) Stat(ctx context.Context, key string) (Object, error) {
	p, err := l.path(key)
	if err != nil {
		return Object{}, err
	}
	info, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && info.IsDir()) {
		return Object{}, fmt.Errorf("%w: %s in %s", ErrNotFound, key, l.dir)
	}
	if err != nil {
		return Object{}, fmt.Errorf("objstore: stat %s in %s: %w", key, l.dir, err)
	}
	return Object{Key: key, Size: info.Size(), Modified: info.ModTime()}, nil
}

func (l *local) List(ctx context.Context, prefix string) ([]Object, error) {
	// Walk only the deepest directory that can hold the prefix's keys.
	root := l.dir
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		if err := checkKey(l.dir, prefix[:i]); err != nil {
			return nil, err
		}
		root = filepath.Join(l.dir, filepath.FromSlash(prefix[:i]))
	}
	var out []Object
	// Another process may delete keys while we walk (an old owner's
	// retention, say): an entry gone between reading its directory and
	// looking at it is left out, as S3 leaves out a key deleted before the
	// listing reaches it.
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), tmpPrefix) {
			return err
		}
		rel, _ := filepath.Rel(l.dir, p)
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		out = append(out, Object{Key: key, Size: info.Size(), Modified: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: list %q in %s: %w", prefix, l.dir, err)
	}
	slices.SortFunc(out, func(a, b Object) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (l *local) Delete(ctx context.Context, keys ...string) error {
	for _, key := range keys {
		p, err := l.path(key)
		if err != nil {
			return err
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("objstore: delete %s in %s: %w", key, l.dir, err)
		}
		// Remove the directories the key emptied, as S3 has none to leave.
		for d := path.Dir(key); d != "."; d = path.Dir(d) {
			if os.Remove(filepath.Join(l.dir, filepath.FromSlash(d))) != nil {
				break
			}
		}
	}
	return nil
}

// mkdirAllSync creates dir and its missing parents below root, fsyncing each
// new directory's parent so that the entries survive a power loss.
func mkdirAllSync(root, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir && parent != root {
		if err := mkdirAllSync(root, parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(filepath.Dir(dir))
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
