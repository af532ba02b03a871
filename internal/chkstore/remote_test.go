package chkstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/weirstream/weir/internal/chkstore/chkstoretest"
	"github.com/weirstream/weir/internal/objstore"
	"github.com/weirstream/weir/internal/s3dev"
)

const remoteLocation = "s3://weir-test/jobs/count"

// recorder is an object store that records what is uploaded and deleted, and
// can refuse to upload manifests, as a job killed before its manifest upload
// would leave things.
type recorder struct {
	objstore.Store
	mu          sync.Mutex
	put         map[string]int64 // key → bytes uploaded
	deleted     []string         // in order
	noManifests bool
}

func (r *recorder) record(key string, sum objstore.Checksum, err error) {
	if err == nil {
		r.mu.Lock()
		r.put[key] = sum.Size
		r.mu.Unlock()
	}
}

func (r *recorder) Put(ctx context.Context, key, src string) (objstore.Checksum, error) {
	sum, err := r.Store.Put(ctx, key, src)
	r.record(key, sum, err)
	return sum, err
}

func (r *recorder) PutBytes(ctx context.Context, key string, data []byte) (objstore.Checksum, error) {
	if r.noManifests && strings.HasSuffix(key, "/"+ManifestName) {
		return objstore.Checksum{}, errors.New("killed before the manifest upload")
	}
	sum, err := r.Store.PutBytes(ctx, key, data)
	r.record(key, sum, err)
	return sum, err
}

func (r *recorder) Delete(ctx context.Context, keys ...string) error {
	r.mu.Lock()
	r.deleted = append(r.deleted, keys...)
	r.mu.Unlock()
	return r.Store.Delete(ctx, keys...)
}

// reset forgets what was recorded and returns the bytes uploaded by key.
func (r *recorder) reset() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	put := r.put
	r.put, r.deleted = map[string]int64{}, nil
	return put
}

// startS3 starts a development S3 server for the test and points the AWS
// environment at it.
func startS3(t *testing.T) {
	t.Helper()
	s3dev.StartTest(t, "").SetEnv(t)
}

// openRemoteStore opens a store in remoteLocation staging in a fresh local
// directory, as a job on a new machine would.
func openRemoteStore(t *testing.T) (*Store, *recorder) {
	t.Helper()
	ctx := context.Background()
	objects, err := objstore.Open(ctx, remoteLocation, objstore.Options{CreateBucket: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Store: objects, put: map[string]int64{}}
	s, err := openRemote(ctx, rec, filepath.Join(t.TempDir(), "local"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, rec
}

// remoteKeys lists the keys in remoteLocation under prefix.
func remoteKeys(t *testing.T, s *Store, prefix string) []string {
	t.Helper()
	objs, err := s.remote.objects.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	return keys
}

// linkCheckpoint stages checkpoint id with the keyed files of checkpoint
// from hard-linked (as Pebble links unchanged sstables) and the new files,
// and completes it.
func linkCheckpoint(t *testing.T, s *Store, id, from uint64, linked []string, fresh map[string][]byte) *Manifest {
	t.Helper()
	dir, err := s.Begin(id)
	if err != nil {
		t.Fatal(err)
	}
	keyed := filepath.Join(dir, "state", "count", "0")
	if err := os.MkdirAll(keyed, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range linked {
		if err := os.Link(filepath.Join(s.Dir(from), "state", "count", "0", name), filepath.Join(keyed, name)); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range fresh {
		chkstoretest.WriteFile(t, filepath.Join(keyed, name), data)
	}
	m := &Manifest{Job: "job", ID: id, MaxParallelism: 128, Operators: []SubtaskState{
		{Operator: "count", Subtask: 0, Parallelism: 1, KeyedDir: KeyedDir("count", 0)},
	}}
	if err := s.Complete(m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRemoteIncremental checks that a checkpoint in object storage uploads
// only the files new since the previous one, plus its manifest, measured in
// bytes; that it restores into an empty local directory; and that the
// restored files are shared again by the next checkpoint.
func TestRemoteIncremental(t *testing.T) {
	startS3(t)
	s, rec := openRemoteStore(t)
	chkstoretest.CompleteCheckpoint(t, s, 1, map[string][]byte{"000001.sst": chkstoretest.Fill(40000, 1), "000002.sst": chkstoretest.Fill(30000, 2)})
	rec.reset()
	m2 := linkCheckpoint(t, s, 2, 1, []string{"000001.sst", "000002.sst"}, map[string][]byte{"000003.sst": chkstoretest.Fill(500, 3)})
	put := rec.reset()
	manifest, err := s.remote.objects.Stat(context.Background(), "chk-0000000002/MANIFEST")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"chk-0000000002/RESERVED": 0, "chk-0000000002/state/count/0/000003.sst": 500, "chk-0000000002/MANIFEST": manifest.Size}
	if !mapsEqual(put, want) {
		t.Fatalf("second checkpoint uploaded %v, want the new file and the manifest only: %v", put, want)
	}
	if m2.BytesWritten != 500+manifest.Size {
		t.Fatalf("BytesWritten = %d, want %d", m2.BytesWritten, 500+manifest.Size)
	}
	for _, f := range m2.Files {
		if wantObj := "chk-0000000001/" + f.Path; f.Path != "state/count/0/000003.sst" && f.Object != wantObj {
			t.Errorf("shared file %s names object %q, want %q", f.Path, f.Object, wantObj)
		}
	}
	if err := s.MarkCommitted(2, "sink", 1); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// A new machine: an empty local directory.
	s2, rec2 := openRemoteStore(t)
	m, err := s2.Latest()
	if err != nil || m == nil || m.ID != 2 {
		t.Fatalf("Latest = %+v, %v; want checkpoint 2", m, err)
	}
	if next, err := s2.NextID(); err != nil || next != 3 {
		t.Fatalf("NextID = %d, %v; want 3", next, err)
	}
	if err := s2.Verify(m); err != nil {
		t.Fatal(err)
	}
	if !s2.Committed(2, "sink", 1) || s2.Committed(2, "sink", 0) {
		t.Fatal("commit records not read back from object storage")
	}
	dst := filepath.Join(t.TempDir(), "live")
	if ok, err := s2.RestoreKeyed(m, "count", 0, dst); err != nil || !ok {
		t.Fatalf("RestoreKeyed = %v, %v", ok, err)
	}
	for name, data := range map[string][]byte{"000001.sst": chkstoretest.Fill(40000, 1), "000002.sst": chkstoretest.Fill(30000, 2), "000003.sst": chkstoretest.Fill(500, 3)} {
		if got, err := os.ReadFile(filepath.Join(dst, name)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("restored %s: %d bytes, %v", name, len(got), err)
		}
	}
	// The files downloaded are shared with the next checkpoint: only its
	// manifest (and the reservation of its id) are uploaded.
	rec2.reset()
	linkCheckpoint(t, s2, 3, 2, []string{"000001.sst", "000002.sst", "000003.sst"}, nil)
	if put := rec2.reset(); len(put) != 2 || put["chk-0000000003/RESERVED"] != 0 {
		t.Fatalf("checkpoint after a restore uploaded %v, want its reservation and manifest only", put)
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestRemoteCorruptObjectRefused checks that a restore refuses an object
// whose bytes are not the manifest's, naming it, and leaves nothing of it.
func TestRemoteCorruptObjectRefused(t *testing.T) {
	startS3(t)
	s, _ := openRemoteStore(t)
	chkstoretest.CompleteCheckpoint(t, s, 1, map[string][]byte{"000001.sst": chkstoretest.Fill(1000, 1), "000002.sst": chkstoretest.Fill(700, 9)})
	s.Close()
	// Replaced with bytes of the same size: the object's own checksum
	// matches them, the manifest's does not.
	victim := "chk-0000000001/state/count/0/000002.sst"
	if _, err := s.remote.objects.PutBytes(context.Background(), victim, chkstoretest.Fill(700, 10)); err != nil {
		t.Fatal(err)
	}
	s2, _ := openRemoteStore(t)
	m, err := s2.Latest()
	if err != nil {
		t.Fatal(err)
	}
	err = s2.Verify(m)
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, objstore.ErrCorrupt) {
		t.Fatalf("Verify = %v, want ErrCorrupt", err)
	}
	for _, want := range []string{"checkpoint 1", victim, remoteLocation} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(s2.Dir(1), filepath.FromSlash("state/count/0/000002.sst"))); !os.IsNotExist(err) {
		t.Fatalf("the corrupt object was left in the local directory: %v", err)
	}
	// A missing object is refused the same way.
	if err := s.remote.objects.Delete(context.Background(), victim); err != nil {
		t.Fatal(err)
	}
	if err := s2.Verify(m); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), victim) {
		t.Fatalf("Verify with a missing object = %v, want ErrCorrupt naming %s", err, victim)
	}
}

// TestRemoteRetain checks that retention deletes the manifest of a dropped
// checkpoint first, then only the objects no retained checkpoint
// references, and the local copies of older checkpoints.
func TestRemoteRetain(t *testing.T) {
	startS3(t)
	s, rec := openRemoteStore(t)
	chkstoretest.CompleteCheckpoint(t, s, 1, map[string][]byte{"a.sst": chkstoretest.Fill(100, 1), "b.sst": chkstoretest.Fill(100, 2)})
	linkCheckpoint(t, s, 2, 1, []string{"a.sst"}, map[string][]byte{"c.sst": chkstoretest.Fill(100, 3)})
	linkCheckpoint(t, s, 3, 2, []string{"a.sst", "c.sst"}, map[string][]byte{"d.sst": chkstoretest.Fill(100, 4)})
	if err := s.MarkCommitted(3, "sink", 0); err != nil {
		t.Fatal(err)
	}
	rec.reset()
	if err := s.Retain(1); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"chk-0000000001/state/count/0/a.sst",
		"chk-0000000002/state/count/0/c.sst",
		"chk-0000000003/MANIFEST",
		"chk-0000000003/RESERVED",
		"chk-0000000003/committed/sink.0",
		"chk-0000000003/state/count/0/d.sst",
	}
	if got := remoteKeys(t, s, ""); !slices.Equal(got, want) {
		t.Fatalf("after Retain(1):\n got %v\nwant %v", got, want)
	}
	// Each dropped checkpoint lost its manifest before anything else.
	for _, dir := range []string{"chk-0000000001/", "chk-0000000002/"} {
		i := slices.IndexFunc(rec.deleted, func(k string) bool { return strings.HasPrefix(k, dir) })
		if i < 0 || rec.deleted[i] != dir+ManifestName {
			t.Errorf("first deletion in %s: %v, want its manifest (all: %v)", dir, rec.deleted[i:], rec.deleted)
		}
	}
	if got := checkpointDirs(t, s); !slices.Equal(got, []string{"LOCK", "chk-0000000003"}) {
		t.Fatalf("local copies after Retain: %v, want the newest only", got)
	}
	// What is left restores.
	s.Close()
	s2, _ := openRemoteStore(t)
	m, err := s2.Latest()
	if err != nil || m.ID != 3 {
		t.Fatalf("Latest = %+v, %v", m, err)
	}
	if err := s2.Verify(m); err != nil {
		t.Fatal(err)
	}
	// Once checkpoint 4 no longer shares a.sst, its object goes too.
	linkCheckpoint(t, s2, 4, 3, []string{"c.sst", "d.sst"}, nil)
	if err := s2.Retain(1); err != nil {
		t.Fatal(err)
	}
	if got := remoteKeys(t, s2, "chk-0000000001"); len(got) != 0 {
		t.Fatalf("unreferenced objects of checkpoint 1 kept: %v", got)
	}
}

// TestRemoteManifestNeverUploaded checks the checkpoint of a job killed
// after uploading its files and before its manifest: it is not complete,
// its id is not reused, and retention deletes it once a later checkpoint
// completes.
func TestRemoteManifestNeverUploaded(t *testing.T) {
	startS3(t)
	s, rec := openRemoteStore(t)
	chkstoretest.CompleteCheckpoint(t, s, 1, map[string][]byte{"a.sst": chkstoretest.Fill(100, 1)})
	rec.noManifests = true
	if _, err := s.Begin(2); err != nil {
		t.Fatal(err)
	}
	chkstoretest.WriteFile(t, filepath.Join(s.Dir(2), "state", "count", "0", "b.sst"), chkstoretest.Fill(100, 2))
	if err := s.Complete(&Manifest{Job: "job", ID: 2}); err == nil {
		t.Fatal("Complete succeeded without its manifest")
	}
	if got := remoteKeys(t, s, "chk-0000000002/"); !slices.Contains(got, "chk-0000000002/state/count/0/b.sst") {
		t.Fatalf("checkpoint 2 uploaded %v; the test needs its files uploaded", got)
	}
	s.Close() // killed: no Abort

	s2, _ := openRemoteStore(t)
	m, err := s2.Latest()
	if err != nil || m == nil || m.ID != 1 {
		t.Fatalf("Latest = %+v, %v; want checkpoint 1 (2 has no manifest)", m, err)
	}
	if next, _ := s2.NextID(); next != 3 {
		t.Fatalf("NextID = %d, want 3: checkpoint 2's id may have been pre-committed under", next)
	}
	if err := s2.Verify(m); err != nil {
		t.Fatal(err)
	}
	if err := s2.MoveIncompleteAside(); err != nil {
		t.Fatal(err)
	}
	linkCheckpoint(t, s2, 3, 1, []string{"a.sst"}, nil)
	if err := s2.Retain(2); err != nil {
		t.Fatal(err)
	}
	if got := remoteKeys(t, s2, "chk-0000000002"); len(got) != 0 {
		t.Fatalf("after a later checkpoint completed, incomplete checkpoint 2 kept %v", got)
	}
	if got := remoteKeys(t, s2, "chk-0000000001/"); !slices.Contains(got, "chk-0000000001/MANIFEST") {
		t.Fatalf("Retain(2) dropped checkpoint 1: %v", got)
	}
}

// TestRemoteAbort checks that an aborted checkpoint keeps only the record
// of its id.
func TestRemoteAbort(t *testing.T) {
	startS3(t)
	s, rec := openRemoteStore(t)
	chkstoretest.CompleteCheckpoint(t, s, 1, nil)
	if err := s.Abort(1); err == nil {
		t.Fatal("Abort of a complete checkpoint succeeded")
	}
	rec.noManifests = true
	s.Begin(2)
	chkstoretest.WriteFile(t, filepath.Join(s.Dir(2), "x"), []byte("x"))
	if err := s.Complete(&Manifest{Job: "job", ID: 2}); err == nil {
		t.Fatal("Complete succeeded without its manifest")
	}
	if err := s.Abort(2); err != nil {
		t.Fatal(err)
	}
	if got := remoteKeys(t, s, "chk-0000000002"); !slices.Equal(got, []string{"chk-0000000002/RESERVED"}) {
		t.Fatalf("after Abort: %v, want the reservation only", got)
	}
	if next, _ := s.NextID(); next != 3 {
		t.Fatalf("NextID = %d, want 3", next)
	}
}

func TestOpenLocation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "checkpoints")
	s, err := OpenLocation(context.Background(), dir, "", quiet)
	if err != nil {
		t.Fatal(err)
	}
	if s.remote != nil || s.Root() != dir || s.Location() != dir {
		t.Fatalf("a path opened as %+v, want a local checkpoint directory", s)
	}
	s.Close()
	for _, tc := range []struct{ location, local, want string }{
		{"gs://bucket/x", "/tmp/x", "scheme"},
		{remoteLocation, "", "--local-dir"},
	} {
		_, err := OpenLocation(context.Background(), tc.location, tc.local, quiet)
		if !errors.Is(err, ErrUnusableDir) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenLocation(%q, %q) = %v, want ErrUnusableDir mentioning %q", tc.location, tc.local, err, tc.want)
		}
	}
	startS3(t)
	s, err = OpenLocation(context.Background(), remoteLocation, filepath.Join(t.TempDir(), "local"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Location() != remoteLocation {
		t.Fatalf("Location() = %q, want %q", s.Location(), remoteLocation)
	}
	if m, err := s.Latest(); m != nil || err != nil { // in the bucket it created
		t.Fatalf("Latest of a new location = %+v, %v; want none", m, err)
	}
}
