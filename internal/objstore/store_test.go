package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/weirstream/weir/internal/s3dev"
	"github.com/weirstream/weir/internal/testseed"
)

const testBucket = "weir-test"

var quiet = slog.New(slog.DiscardHandler)

// stores opens one store of each kind the package has: a local directory,
// and a bucket prefix on a development S3 server in memory and on disk.
func stores(t *testing.T) map[string]func(t *testing.T) Store {
	return map[string]func(t *testing.T) Store{
		"local": func(t *testing.T) Store {
			st, err := Open(t.Context(), filepath.Join(t.TempDir(), "store"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		"s3-memory": func(t *testing.T) Store { return openDev(t, s3dev.StartTest(t, "")) },
		"s3-datadir": func(t *testing.T) Store {
			return openDev(t, s3dev.StartTest(t, t.TempDir()))
		},
	}
}

// openDev opens s3://weir-test/jobs/one on srv, creating the bucket.
func openDev(t *testing.T, srv *s3dev.Server) *s3Store {
	t.Helper()
	srv.SetEnv(t)
	st, err := Open(t.Context(), "s3://"+testBucket+"/jobs/one", Options{CreateBucket: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return st.(*s3Store)
}

// writeFile writes n seeded random bytes to a new file and returns its path
// and checksum.
func writeFile(t testing.TB, rng *rand.Rand, n int) (string, Checksum) {
	t.Helper()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	path := filepath.Join(t.TempDir(), fmt.Sprintf("src-%d", rng.Uint64()))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, Checksum{Size: int64(n), CRC32C: crc32.Checksum(data, castagnoli)}
}

func TestRoundTrip(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(testseed.Seed(t), 0))
			st := open(t)
			ctx := t.Context()
			src, want := writeFile(t, rng, 100_000)
			got, err := st.Put(ctx, "chk-0000000001/state/op/0/000004.sst", src)
			if err != nil || got != want {
				t.Fatalf("Put = %v, %v; want %v", got, err, want)
			}
			empty, wantEmpty := writeFile(t, rng, 0)
			if got, err := st.Put(ctx, "chk-0000000001/operators/src.0", empty); err != nil || got != wantEmpty {
				t.Fatalf("Put empty = %v, %v; want %v", got, err, wantEmpty)
			}
			if _, err := st.PutBytes(ctx, "chk-0000000001/MANIFEST", []byte("manifest")); err != nil {
				t.Fatal(err)
			}
			if _, err := st.PutBytes(ctx, "chk-0000000010/MANIFEST", []byte("later")); err != nil {
				t.Fatal(err)
			}

			dst := filepath.Join(t.TempDir(), "restore", "state", "000004.sst")
			if err := st.Get(ctx, "chk-0000000001/state/op/0/000004.sst", dst, want); err != nil {
				t.Fatal(err)
			}
			srcData, _ := os.ReadFile(src)
			if dstData, _ := os.ReadFile(dst); !bytes.Equal(srcData, dstData) {
				t.Fatalf("Get wrote %d bytes that differ from the %d put", len(dstData), len(srcData))
			}
			if err := st.Get(ctx, "chk-0000000001/operators/src.0", dst+".empty", wantEmpty); err != nil {
				t.Fatal(err)
			}
			if data, err := st.GetBytes(ctx, "chk-0000000001/MANIFEST"); err != nil || string(data) != "manifest" {
				t.Fatalf("GetBytes = %q, %v", data, err)
			}
			if o, err := st.Stat(ctx, "chk-0000000001/MANIFEST"); err != nil || o.Size != int64(len("manifest")) || o.Modified.IsZero() {
				t.Fatalf("Stat = %+v, %v", o, err)
			}

			list, err := st.List(ctx, "chk-00000000")
			if err != nil {
				t.Fatal(err)
			}
			wantKeys := []string{"chk-0000000001/MANIFEST", "chk-0000000001/operators/src.0", "chk-0000000001/state/op/0/000004.sst",
				"chk-0000000010/MANIFEST"} // a prefix is a string prefix
			if k := keys(list); !slices.Equal(k, wantKeys) {
				t.Fatalf("List = %q; want %q", k, wantKeys)
			}
			if list[2].Size != want.Size {
				t.Fatalf("List size of %s = %d; want %d", list[2].Key, list[2].Size, want.Size)
			}
			if all, err := st.List(ctx, ""); err != nil || len(all) != 4 {
				t.Fatalf("List all = %q, %v", keys(all), err)
			}
			if none, err := st.List(ctx, "chk-9/"); err != nil || len(none) != 0 {
				t.Fatalf("List of nothing = %q, %v", keys(none), err)
			}

			if err := st.Delete(ctx, "chk-0000000001/MANIFEST", "chk-0000000001/state/op/0/000004.sst", "never/written"); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Stat(ctx, "chk-0000000001/MANIFEST"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Stat after Delete = %v; want ErrNotFound", err)
			}
			if err := st.Get(ctx, "chk-0000000001/MANIFEST", dst, want); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "chk-0000000001/MANIFEST") {
				t.Fatalf("Get after Delete = %v; want ErrNotFound naming the key", err)
			}
			if _, err := st.GetBytes(ctx, "chk-0000000001/MANIFEST"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("GetBytes after Delete = %v; want ErrNotFound", err)
			}
			if k, _ := st.List(ctx, ""); !slices.Equal(keys(k), []string{"chk-0000000001/operators/src.0", "chk-0000000010/MANIFEST"}) {
				t.Fatalf("List after Delete = %q", keys(k))
			}
			if _, err := st.PutBytes(ctx, "../escape", nil); !errors.Is(err, ErrBadKey) {
				t.Fatalf("PutBytes(../escape) = %v; want ErrBadKey", err)
			}
		})
	}
}

// TestGetRefusesUnexpected checks that a download that does not match what
// the caller's manifest says is refused, naming the object, and leaves
// nothing at the destination (not even a temporary file).
func TestGetRefusesUnexpected(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(testseed.Seed(t), 0))
			st := open(t)
			src, sum := writeFile(t, rng, 5000)
			if _, err := st.Put(t.Context(), "chk-1/f", src); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			for _, want := range []Checksum{{sum.Size, sum.CRC32C ^ 1}, {sum.Size + 1, sum.CRC32C}} {
				err := st.Get(t.Context(), "chk-1/f", filepath.Join(dir, "f"), want)
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chk-1/f") || !strings.Contains(err.Error(), st.Location()) {
					t.Fatalf("Get with want %v = %v; want ErrCorrupt naming the object and the store", want, err)
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Fatalf("a refused Get left %v behind", entries)
				}
			}
		})
	}
}

// TestCorruptObjectRefused damages an object behind the store's back: its
// bytes change but its stored checksum stays. Get and GetBytes must refuse
// it naming the object, even when the caller expects the damaged bytes.
func TestCorruptObjectRefused(t *testing.T) {
	srv := s3dev.StartTest(t, "")
	st := openDev(t, srv)
	ctx := t.Context()
	good := []byte("the state of operator count, subtask 0")
	if _, err := st.PutBytes(ctx, "chk-7/operators/count.0", good); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(good)
	bad[3] ^= 0x20
	// Replace the bytes, keep the metadata, as bit rot or a careless copy would.
	if _, err := st.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(testBucket), Key: aws.String(st.key("chk-7/operators/count.0")), Body: bytes.NewReader(bad),
		Metadata: map[string]string{crcMetaKey: crcHex(crc32.Checksum(good, castagnoli))},
	}); err != nil {
		t.Fatal(err)
	}
	_, err := st.GetBytes(ctx, "chk-7/operators/count.0")
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chk-7/operators/count.0") {
		t.Fatalf("GetBytes of a damaged object = %v; want ErrCorrupt naming it", err)
	}
	t.Log(err)
	badSum := Checksum{int64(len(bad)), crc32.Checksum(bad, castagnoli)}
	dst := filepath.Join(t.TempDir(), "count.0")
	err = st.Get(ctx, "chk-7/operators/count.0", dst, badSum)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "stored checksum") {
		t.Fatalf("Get of a damaged object = %v; want ErrCorrupt against its stored checksum", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused Get left %s: %v", dst, err)
	}
}

// TestCorruptObjectOnDiskRefused flips a byte of an object in the data
// directory of the development server.
func TestCorruptObjectOnDiskRefused(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 0))
	data := t.TempDir()
	st := openDev(t, s3dev.StartTest(t, data))
	src, sum := writeFile(t, rng, 4096)
	if _, err := st.Put(t.Context(), "chk-2/state/op/0/000001.sst", src); err != nil {
		t.Fatal(err)
	}
	var path string
	filepath.WalkDir(filepath.Join(data, "buckets"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "000001.sst" {
			path = p
		}
		return err
	})
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("object file not found under %s: %v", data, err)
	}
	raw[rng.IntN(len(raw))] ^= 1
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	err = st.Get(t.Context(), "chk-2/state/op/0/000001.sst", filepath.Join(t.TempDir(), "x"), sum)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chk-2/state/op/0/000001.sst") {
		t.Fatalf("Get of an object damaged on disk = %v; want ErrCorrupt naming it", err)
	}
}

// counter is a reverse proxy in front of a development server that counts
// the requests whose query has a given parameter.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) count(param string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[param]
}

// proxied opens the store through a counting proxy to srv.
func proxied(t *testing.T, srv *s3dev.Server) (*s3Store, *counter) {
	target, _ := url.Parse(srv.Endpoint())
	c := &counter{n: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		for p := range r.URL.Query() {
			c.n[p]++
		}
		c.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	srv.SetEnv(t)
	t.Setenv("AWS_ENDPOINT_URL", front.URL)
	st, err := Open(t.Context(), "s3://"+testBucket+"/jobs/one", Options{CreateBucket: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return st.(*s3Store), c
}

func TestListPaginates(t *testing.T) {
	st, c := proxied(t, s3dev.StartTest(t, ""))
	ctx := t.Context()
	// Beside the store's prefix, keys that must not show up.
	other := *st
	other.loc.Prefix = "jobs/one-other"
	if _, err := other.PutBytes(ctx, "chk-1/MANIFEST", nil); err != nil {
		t.Fatal(err)
	}
	const n, page = 1050, 100
	var want []string
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		key := fmt.Sprintf("chk-%010d/operators/op.%d", i/10, i%10)
		want = append(want, key)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := st.PutBytes(ctx, key, []byte(key))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(want)

	// The server's default page is 1000 keys, so 1050 keys take two pages.
	before := c.count("list-type")
	got, err := st.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys(got), want) {
		t.Fatalf("List returned %d keys; want %d (first %q)", len(got), len(want), keys(got)[:min(3, len(got))])
	}
	if pages := c.count("list-type") - before; pages != 2 {
		t.Fatalf("List of %d keys took %d requests; want 2 pages of at most 1000", n, pages)
	}
	st.listPageSize = page
	before = c.count("list-type")
	if got, err := st.List(ctx, "chk-00000000"); err != nil || !slices.Equal(keys(got), want[:1000]) {
		t.Fatalf("List with page size %d = %d keys, %v; want %d", page, len(got), err, 1000)
	}
	if pages := c.count("list-type") - before; pages != 1000/page+1 {
		t.Fatalf("List of 1000 keys in pages of %d took %d requests; want %d", page, pages, 1000/page+1)
	}
}

func TestMultipartPut(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.Seed(t), 0))
	st, c := proxied(t, s3dev.StartTest(t, t.TempDir()))
	st.partSize = 64 << 10
	src, want := writeFile(t, rng, 5*(64<<10)+123) // 6 parts, the last short
	got, err := st.Put(t.Context(), "chk-3/state/op/0/000009.sst", src)
	if err != nil || got != want {
		t.Fatalf("Put = %v, %v; want %v", got, err, want)
	}
	if parts := c.count("partNumber"); parts != 6 {
		t.Fatalf("Put of %d bytes in parts of %d sent %d parts; want 6", want.Size, st.partSize, parts)
	}
	dst := filepath.Join(t.TempDir(), "000009.sst")
	if err := st.Get(t.Context(), "chk-3/state/op/0/000009.sst", dst, want); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(src)
	if b, _ := os.ReadFile(dst); !bytes.Equal(a, b) {
		t.Fatal("the multipart object differs from its file")
	}
}

func TestCreateBucket(t *testing.T) {
	srv := s3dev.StartTest(t, "")
	srv.SetEnv(t)
	_, err := Open(t.Context(), "s3://fresh-bucket/x", Options{})
	if !errors.Is(err, ErrNoBucket) || !strings.Contains(err.Error(), "fresh-bucket") {
		t.Fatalf("Open of a missing bucket = %v; want ErrNoBucket naming it", err)
	}
	for range 2 { // the second Open finds the bucket
		st, err := Open(t.Context(), "s3://fresh-bucket/x", Options{CreateBucket: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.PutBytes(t.Context(), "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(t.Context(), "s3://fresh-bucket/x", Options{}); err != nil {
		t.Fatalf("Open of the created bucket = %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	srv := s3dev.StartTest(t, "")
	t.Run("no credentials", func(t *testing.T) {
		s3dev.IsolateEnv(t)
		t.Setenv("AWS_ENDPOINT_URL", srv.Endpoint())
		_, err := Open(t.Context(), "s3://"+testBucket, Options{CreateBucket: true})
		if !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") || !strings.Contains(err.Error(), "s3://"+testBucket) {
			t.Fatalf("Open without credentials = %v; want ErrNoCredentials naming the location and the variables", err)
		}
		t.Log(err)
	})
	t.Run("no region", func(t *testing.T) {
		s3dev.IsolateEnv(t)
		t.Setenv("AWS_ACCESS_KEY_ID", "k")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
		_, err := Open(t.Context(), "s3://"+testBucket, Options{})
		if !strings.Contains(err.Error(), "AWS_REGION") {
			t.Fatalf("Open without a region or endpoint = %v; want an error naming AWS_REGION", err)
		}
		t.Log(err)
	})
	t.Run("unreachable", func(t *testing.T) {
		srv.SetEnv(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		t.Setenv("AWS_ENDPOINT_URL", "http://"+addr)
		t.Setenv("AWS_MAX_ATTEMPTS", "1")
		_, err = Open(t.Context(), "s3://"+testBucket, Options{CreateBucket: true})
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "weir s3") {
			t.Fatalf("Open of a closed port = %v; want ErrUnreachable naming the endpoint", err)
		}
		t.Log(err)
	})
	t.Run("no answer", func(t *testing.T) {
		srv.SetEnv(t)
		hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
		defer hang.Close()
		defer hang.CloseClientConnections() // before Close, which waits for the handlers
		t.Setenv("AWS_ENDPOINT_URL", hang.URL)
		defer func(d time.Duration) { openTimeout = d }(openTimeout)
		openTimeout = 100 * time.Millisecond // the server never answers: any timeout expires
		_, err := Open(t.Context(), "s3://"+testBucket, Options{CreateBucket: true})
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), hang.URL) || !strings.Contains(err.Error(), "no answer") {
			t.Fatalf("Open of a server that never answers = %v; want ErrUnreachable naming the endpoint", err)
		}
		t.Log(err)
	})
	t.Run("access denied", func(t *testing.T) {
		srv.SetEnv(t)
		deny := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
		}))
		defer deny.Close()
		t.Setenv("AWS_ENDPOINT_URL", deny.URL)
		_, err := Open(t.Context(), "s3://"+testBucket+"/p", Options{CreateBucket: true})
		if !errors.Is(err, ErrAccessDenied) || !strings.Contains(err.Error(), testBucket) {
			t.Fatalf("Open with refused credentials = %v; want ErrAccessDenied naming the bucket", err)
		}
		t.Log(err)
	})
	t.Run("bad location", func(t *testing.T) {
		if _, err := Open(context.Background(), "s3://x", Options{}); !errors.Is(err, ErrBadLocation) {
			t.Fatalf("Open(s3://x) = %v; want ErrBadLocation", err)
		}
	})
}

// TestVerifyingReader checks the guard against a file that changes during
// its upload, including the SDK's rewinds for signing and retries.
func TestVerifyingReader(t *testing.T) {
	data := []byte("0123456789")
	sum := Checksum{int64(len(data)), crc32.Checksum(data, castagnoli)}
	read := func(v *verifyingReader) error {
		_, err := v.r.Seek(0, 0)
		if err == nil {
			_, err = v.Seek(0, 0)
		}
		buf := make([]byte, 3)
		for err == nil {
			_, err = v.Read(buf)
		}
		if err.Error() == "EOF" {
			return nil
		}
		return err
	}
	v := &verifyingReader{r: bytes.NewReader(data), want: sum}
	for i := range 3 { // read, rewind, read again
		if err := read(v); err != nil {
			t.Fatalf("pass %d: %v", i, err)
		}
	}
	changed := bytes.Clone(data)
	changed[9] = 'x'
	if err := read(&verifyingReader{r: bytes.NewReader(changed), want: sum}); !errors.Is(err, ErrChanged) {
		t.Fatalf("reading changed bytes = %v; want ErrChanged", err)
	}
	if err := read(&verifyingReader{r: bytes.NewReader(data[:9]), want: sum}); !errors.Is(err, ErrChanged) {
		t.Fatalf("reading a truncated file = %v; want ErrChanged", err)
	}
}

// TestLocalLeavesNoDebris checks that the local store deletes the
// directories a Delete empties and that List skips files being written.
func TestLocalLeavesNoDebris(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(t.Context(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutBytes(t.Context(), "chk-1/state/op/0/a", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "chk-1", tmpPrefix+"123"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if l, _ := st.List(t.Context(), ""); !slices.Equal(keys(l), []string{"chk-1/state/op/0/a"}) {
		t.Fatalf("List = %q; want only the published object", keys(l))
	}
	if err := st.Delete(t.Context(), "chk-1/state/op/0/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "chk-1", "state")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Delete left the emptied directories: %v", err)
	}
}

// TestLocalListWhileDeleting checks that List does not fail when another
// process deletes keys under the prefix during the walk, as an old task
// owner's retention does while a new owner lists the lineage: the vanished
// keys are left out and the others are all listed.
func TestLocalListWhileDeleting(t *testing.T) {
	st, err := Open(t.Context(), t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	const kept = "epoch-1/chk-9/_MANIFEST"
	if _, err := st.PutBytes(t.Context(), kept, nil); err != nil {
		t.Fatal(err)
	}
	var doomed []string
	for c := range 20 {
		for f := range 50 {
			key := fmt.Sprintf("epoch-1/chk-%d/state/%03d", c, f)
			if _, err := st.PutBytes(t.Context(), key, nil); err != nil {
				t.Fatal(err)
			}
			doomed = append(doomed, key)
		}
	}
	deleted := make(chan error, 1)
	go func() { deleted <- st.Delete(context.Background(), doomed...) }()
	for done := false; !done; {
		select {
		case err := <-deleted:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		default:
		}
		l, err := st.List(t.Context(), "epoch-1/chk-")
		if err != nil {
			t.Fatalf("List while keys are deleted: %v", err)
		}
		if !slices.Contains(keys(l), kept) {
			t.Fatalf("List lost %s, which nobody deleted: %q", kept, keys(l))
		}
	}
}

func keys(objs []Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Key
	}
	return out
}

// TestLocalReadOnly checks that a store opened only to be read creates
// nothing: a missing directory is refused, not made.
func TestLocalReadOnly(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none")
	if _, err := Open(t.Context(), missing, Options{ReadOnly: true}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Open of a missing directory read-only = %v, want ErrNotFound naming it", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open read-only created %s: %v", missing, err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), file, Options{ReadOnly: true}); !errors.Is(err, ErrBadLocation) {
		t.Fatalf("Open of a file read-only = %v, want ErrBadLocation", err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o755)
	if _, err := Open(t.Context(), dir, Options{ReadOnly: true}); err != nil {
		t.Fatalf("Open of a read-only directory read-only = %v", err)
	}
}

// TestStalledServerFails checks that a request to a server that accepts it
// and never answers fails after the stall timeout, retried as the SDK
// retries (AWS_MAX_ATTEMPTS), with an error naming the endpoint and the
// key, instead of hanging a checkpoint or a restore forever.
func TestStalledServerFails(t *testing.T) {
	s3dev.IsolateEnv(t)
	var mu sync.Mutex
	stalled := map[string]int{} // method → requests held
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead && strings.Trim(r.URL.Path, "/") == testBucket {
			return // HeadBucket in Open: the bucket exists
		}
		mu.Lock()
		stalled[r.Method]++
		mu.Unlock()
		// NB: the server notices a closed connection, and ends the
		// request's context, only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	defer hang.Close()
	defer hang.CloseClientConnections() // before Close, which waits for the handlers
	t.Setenv("AWS_ENDPOINT_URL", hang.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	t.Setenv("AWS_MAX_ATTEMPTS", "2")
	// The server never answers: any timeout expires. Long enough that the
	// answered HeadBucket is not cut short on a loaded machine.
	t.Setenv(StallTimeoutEnv, "500ms")
	st, err := Open(t.Context(), "s3://"+testBucket+"/p", Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	// NB: without a stall timeout the calls would wait for this deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, putErr := st.PutBytes(ctx, "chk-1/MANIFEST", []byte("m"))
	getErr := st.Get(ctx, "chk-1/a.sst", filepath.Join(t.TempDir(), "a.sst"), Checksum{})
	for _, c := range []struct {
		method, key string
		err         error
	}{{http.MethodPut, "chk-1/MANIFEST", putErr}, {http.MethodGet, "chk-1/a.sst", getErr}} {
		var stall *errStalled
		if !errors.Is(c.err, ErrUnreachable) || !errors.As(c.err, &stall) {
			t.Fatalf("%s of a server that never answers = %v; want ErrUnreachable after the stall timeout", c.method, c.err)
		}
		for _, want := range []string{hang.URL, c.key, StallTimeoutEnv} {
			if !strings.Contains(c.err.Error(), want) {
				t.Errorf("error %q does not name %q", c.err, want)
			}
		}
		mu.Lock()
		n := stalled[c.method]
		mu.Unlock()
		if n != 2 {
			t.Errorf("%s sent %d times, want 2 (AWS_MAX_ATTEMPTS)", c.method, n)
		}
		t.Log(c.err)
	}
}

func TestStallTimeoutEnv(t *testing.T) {
	t.Setenv(StallTimeoutEnv, "soon")
	_, err := Open(t.Context(), "s3://"+testBucket, Options{Logger: quiet})
	if !errors.Is(err, ErrBadLocation) || !strings.Contains(err.Error(), StallTimeoutEnv) {
		t.Fatalf("Open with %s=soon = %v; want ErrBadLocation naming the variable", StallTimeoutEnv, err)
	}
}

// TestCreateExclusive races Creates of one key: exactly one wins, the others
// fail with ErrExists, and the object holds the winner's bytes.
func TestCreateExclusive(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			const racers = 8
			errs := make([]error, racers)
			var wg sync.WaitGroup
			for i := range racers {
				wg.Go(func() { errs[i] = st.Create(t.Context(), "task-0/epoch-1/EPOCH", []byte{byte(i)}) })
			}
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Fatalf("racers %d and %d both created the object", winner, i)
				case err == nil:
					winner = i
				case !errors.Is(err, ErrExists):
					t.Fatalf("racer %d: %v, want ErrExists", i, err)
				}
			}
			if winner < 0 {
				t.Fatalf("no racer created the object: %v", errs)
			}
			data, err := st.GetBytes(t.Context(), "task-0/epoch-1/EPOCH")
			if err != nil || len(data) != 1 || int(data[0]) != winner {
				t.Fatalf("object holds %v (%v), want the winner's byte %d", data, err, winner)
			}
			objs, err := st.List(t.Context(), "task-0/")
			if err != nil || len(objs) != 1 {
				t.Fatalf("List = %v, %v; want the one object, no temporary files", keys(objs), err)
			}
		})
	}
}
