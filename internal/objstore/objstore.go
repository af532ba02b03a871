package objstore

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"strings"
	"time"
)

var (
	// ErrBadLocation is wrapped when a location is neither a directory path
	// nor a well-formed s3://bucket/prefix.
	ErrBadLocation = errors.New("objstore: bad location")
	// ErrBadKey is wrapped when a key is not a relative '/'-separated path.
	ErrBadKey = errors.New("objstore: bad key")
	// ErrNotFound is wrapped when an object does not exist.
	ErrNotFound = errors.New("objstore: object not found")
	// ErrCorrupt is wrapped when an object's bytes do not match its
	// checksum or size.
	ErrCorrupt = errors.New("objstore: object fails its checksum")
	// ErrChanged is wrapped when a local file changed while it was uploaded.
	ErrChanged = errors.New("objstore: file changed during upload")
	// ErrUnreachable is wrapped when the endpoint cannot be reached.
	ErrUnreachable = errors.New("objstore: endpoint unreachable")
	// ErrNoCredentials is wrapped when no credentials can be found.
	ErrNoCredentials = errors.New("objstore: no credentials")
	// ErrAccessDenied is wrapped when the endpoint refuses the credentials
	// or the operation.
	ErrAccessDenied = errors.New("objstore: access denied")
	// ErrNoBucket is wrapped when the bucket does not exist and
	// Options.CreateBucket is not set.
	ErrNoBucket = errors.New("objstore: no such bucket")
	// ErrExists is wrapped when Create finds its key taken.
	ErrExists = errors.New("objstore: object exists already")
)

// Store is a flat namespace of immutable objects under one location. Its
// methods are safe for concurrent use. Every error names the location and
// the key.
type Store interface {
	// Location returns the store's location as Open parsed it: a clean
	// directory path or s3://bucket/prefix.
	Location() string
	// Put uploads the local file src as key, atomically, and returns its
	// size and CRC-32C. An existing object of that key is replaced.
	Put(ctx context.Context, key, src string) (Checksum, error)
	// PutBytes stores data as key, atomically.
	PutBytes(ctx context.Context, key string, data []byte) (Checksum, error)
	// Create stores data as key, atomically, only if key does not exist:
	// of concurrent Creates of one key, exactly one succeeds and the others
	// fail with ErrExists. In S3 it is a conditional put (If-None-Match: *),
	// which S3 and most compatible servers honour.
	Create(ctx context.Context, key string, data []byte) error
	// Get downloads key into the local file dst, atomically and durably
	// (fsynced), and verifies it against want and against the checksum
	// stored with the object. On a mismatch it returns an error wrapping
	// ErrCorrupt and leaves nothing at dst.
	Get(ctx context.Context, key, dst string, want Checksum) error
	// GetBytes returns the content of key, verified against the checksum
	// stored with the object, if it has one.
	GetBytes(ctx context.Context, key string) ([]byte, error)
	// Stat describes key, or returns an error wrapping ErrNotFound.
	Stat(ctx context.Context, key string) (Object, error)
	// List returns the objects whose keys begin with prefix, in ascending
	// key order. The prefix is a string prefix, not a directory: "chk-1"
	// also matches "chk-10/MANIFEST".
	List(ctx context.Context, prefix string) ([]Object, error)
	// Delete removes the keys. Missing keys are not an error.
	Delete(ctx context.Context, keys ...string) error
}

// Checksum is the size and CRC-32C (Castagnoli) of an object's bytes, as a
// checkpoint manifest records them for each file.
type Checksum struct {
	Size   int64
	CRC32C uint32
}

func (c Checksum) String() string { return fmt.Sprintf("%d bytes, crc32c %08x", c.Size, c.CRC32C) }

// Object describes a stored object.
type Object struct {
	Key      string
	Size     int64
	Modified time.Time
}

// Options configures Open.
type Options struct {
	// CreateBucket creates the bucket of an s3:// location if it does not
	// exist (a local directory is always created).
	CreateBucket bool
	// ReadOnly opens a store that is only read, such as by an inspection
	// tool: a local directory must exist and is neither created nor probed
	// for writing (it may be read-only, or in use by a job).
	ReadOnly bool
	// Logger receives the store's logs. Default slog.Default().
	Logger *slog.Logger
}

// Open opens the store at location: a directory path, or s3://bucket/prefix
// with endpoint, region and credentials from the standard AWS environment
// and configuration. It checks that the store is usable before returning.
func Open(ctx context.Context, location string, opts Options) (Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	loc, err := ParseLocation(location)
	if err != nil {
		return nil, err
	}
	if loc.Bucket == "" {
		if opts.ReadOnly {
			return openLocalReadOnly(loc.Path)
		}
		return openLocal(loc.Path)
	}
	return openS3(ctx, loc, opts)
}

// castagnoli is the CRC-32C table: hardware-accelerated on amd64 and arm64,
// and the checksum the checkpoint manifest and S3 both use.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkKey rejects keys that are not relative, clean, '/'-separated paths: a
// key like "../x" would escape a local store, and "a//b" or a trailing '/'
// would name different objects in S3 and the same file locally.
func checkKey(location, key string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q in %s: %s (want a relative path like chk-0000000042/MANIFEST)", ErrBadKey, key, location, why)
	}
	switch {
	case key == "":
		return bad("empty")
	case strings.HasPrefix(key, "/"):
		return bad("absolute")
	case strings.Contains(key, "\\"):
		return bad("contains a backslash")
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return bad("empty path segment")
		case ".", "..":
			return bad("contains " + seg)
		}
	}
	return nil
}

// corrupt reports that what was read of an object does not match what was
// expected of it.
func corrupt(location, key string, got, want Checksum, what string) error {
	return fmt.Errorf("%w: object %s in %s has %v, %s says %v; the object was damaged or replaced, restore from another checkpoint",
		ErrCorrupt, key, location, got, what, want)
}
