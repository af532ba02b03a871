package objstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

const (
	// crcMetaKey is the user metadata (x-amz-meta-crc32c) that carries an
	// object's CRC-32C in hex, on every S3-compatible server.
	crcMetaKey = "crc32c"
	// defaultPartSize is the part size of multipart uploads; files up to it
	// go in one PUT. Pebble's largest sstables (L6, 128 MiB by default) go
	// in two or three parts uploaded in parallel.
	defaultPartSize = 64 << 20
	// minPartSize is S3's smallest part but the last.
	minPartSize = 5 << 20
	maxParts    = 10000
	// partConcurrency bounds the parts of one file in flight.
	partConcurrency = 4
	// deleteBatch is the most keys S3 deletes in one request.
	deleteBatch = 1000
	// defaultRegion is given to a custom endpoint without a region:
	// S3-compatible servers accept any, but the request signature needs one.
	defaultRegion = "us-east-1"
)

// openTimeout bounds the checks of Open: the credentials, the bucket and,
// through them, the endpoint. A variable for tests.
var openTimeout = 30 * time.Second

// s3Store is a Store in an S3 bucket, under a key prefix.
type s3Store struct {
	loc      Location
	client   *s3.Client
	endpoint string // the custom endpoint, or empty for AWS
	logger   *slog.Logger
	// partSize and listPageSize are fixed at open; tests lower them.
	partSize     int64
	listPageSize int32
}

func openS3(ctx context.Context, loc Location, opts Options) (*s3Store, error) {
	where := loc.String()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("objstore: %s: load the AWS configuration (AWS_PROFILE, ~/.aws/config): %w", where, err)
	}
	stall, err := stallTimeout()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		// NB: Get and GetBytes verify the CRC-32C themselves, against the
		// caller's manifest and the stored checksum, and name the object
		// when it fails; the SDK's own check would only add a second pass.
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.HTTPClient = withStallTimeout(o.HTTPClient, stall)
		if o.BaseEndpoint != nil {
			o.UsePathStyle = true
			if o.Region == "" {
				o.Region = defaultRegion
			}
		}
	})
	s := &s3Store{loc: loc, client: client, logger: opts.Logger, partSize: defaultPartSize}
	if ep := client.Options().BaseEndpoint; ep != nil {
		s.endpoint = *ep
	}
	if client.Options().Region == "" {
		return nil, fmt.Errorf("%w: %s: no AWS region: set AWS_REGION (or region in the AWS_PROFILE), or AWS_ENDPOINT_URL for an S3-compatible server",
			ErrBadLocation, where)
	}
	// NB: a server that accepts connections and never answers would hang
	// the job's start: the checks get openTimeout.
	probe, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	if _, err := cfg.Credentials.Retrieve(probe); err != nil {
		return nil, fmt.Errorf("%w for %s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (for a development server started with 'weir s3', any values do): %w",
			ErrNoCredentials, where, err)
	}
	if err := s.ensureBucket(probe, opts.CreateBucket); err != nil {
		if probe.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("%w: %s: no answer from %s within %v; check AWS_ENDPOINT_URL and that the server runs: %w",
				ErrUnreachable, where, s.endpointName(), openTimeout, err)
		}
		return nil, err
	}
	opts.Logger.Debug("opened object store", "location", where, "endpoint", s.endpoint, "region", client.Options().Region)
	return s, nil
}

// ensureBucket checks that the bucket exists and the credentials reach it,
// creating it if create is set.
func (s *s3Store) ensureBucket(ctx context.Context, create bool) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.loc.Bucket})
	err = s.wrap("open", "", err)
	if !errors.Is(err, ErrNoBucket) || !create {
		return err
	}
	in := &s3.CreateBucketInput{Bucket: &s.loc.Bucket}
	if r := s.client.Options().Region; r != defaultRegion && s.endpoint == "" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(r)}
	}
	_, err = s.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return s.wrap("create bucket", "", err)
	}
	s.logger.Info("created bucket", "bucket", s.loc.Bucket, "endpoint", s.endpoint)
	return nil
}

func (s *s3Store) Location() string { return s.loc.String() }

// key returns the S3 key of a store key.
func (s *s3Store) key(k string) string {
	if s.loc.Prefix == "" {
		return k
	}
	return s.loc.Prefix + "/" + k
}

// wrap classifies an SDK error into the package's sentinels, with a hint of
// what to do; key is empty for errors about the bucket.
func (s *s3Store) wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	where := s.loc.String()
	if key != "" {
		where = key + " in " + where
	}
	var apiErr smithy.APIError
	var respErr *awshttp.ResponseError
	var sendErr *smithyhttp.RequestSendError
	var stalled *errStalled
	code, status := "", 0
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	if errors.As(err, &respErr) {
		status = respErr.HTTPStatusCode()
	}
	switch {
	case errors.Is(err, ErrChanged), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("objstore: %s %s: %w", op, where, err)
	case code == "NoSuchBucket" || (status == 404 && key == ""):
		return fmt.Errorf("%w: %s %s: bucket %q does not exist; create it, or let weir create it: %w",
			ErrNoBucket, op, where, s.loc.Bucket, err)
	case code == "NoSuchKey" || (status == 404 && key != ""):
		return fmt.Errorf("%w: %s in %s", ErrNotFound, key, s.loc.String())
	case status == 401 || status == 403 || code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch":
		return fmt.Errorf("%w: %s %s: check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and that they may list, read, write and delete objects in bucket %q: %w",
			ErrAccessDenied, op, where, s.loc.Bucket, err)
	case errors.As(err, &stalled):
		return fmt.Errorf("%w: %s %s: %s stopped answering: %w",
			ErrUnreachable, op, where, s.endpointName(), err)
	case errors.As(err, &sendErr):
		return fmt.Errorf("%w: %s %s: cannot reach %s; check AWS_ENDPOINT_URL and that the server runs (a development one: 'weir s3'): %w",
			ErrUnreachable, op, where, s.endpointName(), err)
	}
	return fmt.Errorf("objstore: %s %s: %w", op, where, err)
}

func (s *s3Store) endpointName() string {
	if s.endpoint != "" {
		return s.endpoint
	}
	return "AWS S3 in region " + s.client.Options().Region
}

func (s *s3Store) Put(ctx context.Context, key, src string) (Checksum, error) {
	if err := checkKey(s.Location(), key); err != nil {
		return Checksum{}, err
	}
	f, err := os.Open(src)
	if err != nil {
		return Checksum{}, fmt.Errorf("objstore: put %s in %s: %w", key, s.Location(), err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return Checksum{}, fmt.Errorf("objstore: put %s in %s: %w", key, s.Location(), err)
	}
	partSize := max(s.partSize, (info.Size()+maxParts-1)/maxParts)
	// NB: the checksum must be known before the upload starts, to travel in
	// its headers; the upload checks the bytes it sends against it. The
	// first pass costs little: the file was just written, so it is in the
	// page cache, and CRC-32C runs in hardware (21 GB/s on the 2-core dev
	// machine, 50 µs a MiB).
	sum, parts, err := checksumFile(f, info.Size(), partSize)
	if err != nil {
		return Checksum{}, fmt.Errorf("objstore: put %s in %s: read %s: %w", key, s.Location(), src, err)
	}
	if len(parts) <= 1 {
		err = s.putSingle(ctx, key, io.NewSectionReader(f, 0, sum.Size), sum)
	} else {
		err = s.putMultipart(ctx, key, f, sum, parts, partSize)
	}
	if err != nil {
		return Checksum{}, s.wrap("put", key, err)
	}
	return sum, nil
}

func (s *s3Store) PutBytes(ctx context.Context, key string, data []byte) (Checksum, error) {
	if err := checkKey(s.Location(), key); err != nil {
		return Checksum{}, err
	}
	sum := Checksum{Size: int64(len(data)), CRC32C: crc32.Checksum(data, castagnoli)}
	return sum, s.wrap("put", key, s.putSingle(ctx, key, bytes.NewReader(data), sum))
}

func (s *s3Store) Create(ctx context.Context, key string, data []byte) error {
	if err := checkKey(s.Location(), key); err != nil {
		return err
	}
	sum := Checksum{Size: int64(len(data)), CRC32C: crc32.Checksum(data, castagnoli)}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         &s.loc.Bucket,
		Key:            aws.String(s.key(key)),
		Body:           bytes.NewReader(data),
		ContentLength:  aws.Int64(sum.Size),
		ChecksumCRC32C: aws.String(crcBase64(sum.CRC32C)),
		Metadata:       map[string]string{crcMetaKey: crcHex(sum.CRC32C)},
		IfNoneMatch:    aws.String("*"),
	})
	var apiErr smithy.APIError
	var respErr *awshttp.ResponseError
	if (errors.As(err, &apiErr) && apiErr.ErrorCode() == "PreconditionFailed") || (errors.As(err, &respErr) && respErr.HTTPStatusCode() == 412) {
		return fmt.Errorf("%w: %s in %s", ErrExists, key, s.loc.String())
	}
	return s.wrap("create", key, err)
}

func (s *s3Store) putSingle(ctx context.Context, key string, body io.ReadSeeker, sum Checksum) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         &s.loc.Bucket,
		Key:            aws.String(s.key(key)),
		Body:           &verifyingReader{r: body, want: sum},
		ContentLength:  aws.Int64(sum.Size),
		ChecksumCRC32C: aws.String(crcBase64(sum.CRC32C)),
		Metadata:       map[string]string{crcMetaKey: crcHex(sum.CRC32C)},
	})
	return err
}

// putMultipart uploads f in parts, partConcurrency at a time, each sent with
// its own CRC-32C; any failure aborts the upload so no parts linger.
func (s *s3Store) putMultipart(ctx context.Context, key string, f *os.File, sum Checksum, parts []uint32, partSize int64) error {
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            &s.loc.Bucket,
		Key:               aws.String(s.key(key)),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
		Metadata:          map[string]string{crcMetaKey: crcHex(sum.CRC32C)},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	completed := make([]types.CompletedPart, len(parts))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, partConcurrency)
	for i, crc := range parts {
		off := int64(i) * partSize
		size := min(partSize, sum.Size-off)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket:         &s.loc.Bucket,
				Key:            aws.String(s.key(key)),
				UploadId:       created.UploadId,
				PartNumber:     aws.Int32(int32(i + 1)),
				Body:           &verifyingReader{r: io.NewSectionReader(f, off, size), want: Checksum{size, crc}},
				ContentLength:  aws.Int64(size),
				ChecksumCRC32C: aws.String(crcBase64(crc)),
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("part %d of %d: %w", i+1, len(parts), err)
				cancel()
			}
			if err == nil {
				completed[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1)), ChecksumCRC32C: aws.String(crcBase64(crc))}
			}
		})
		if ctx.Err() != nil {
			break
		}
	}
	wg.Wait()
	if firstErr == nil {
		_, firstErr = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket: &s.loc.Bucket, Key: aws.String(s.key(key)), UploadId: created.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
		})
	}
	if firstErr != nil {
		abortCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer stop()
		if _, err := s.client.AbortMultipartUpload(abortCtx, &s3.AbortMultipartUploadInput{
			Bucket: &s.loc.Bucket, Key: aws.String(s.key(key)), UploadId: created.UploadId,
		}); err != nil {
			s.logger.Warn("could not abort multipart upload; a bucket lifecycle rule should expire it",
				"location", s.Location(), "key", key, "upload_id", aws.ToString(created.UploadId), "err", err)
		}
	}
	return firstErr
}

func (s *s3Store) Get(ctx context.Context, key, dst string, want Checksum) error {
	if err := checkKey(s.Location(), key); err != nil {
		return err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.loc.Bucket, Key: aws.String(s.key(key))})
	if err != nil {
		return s.wrap("get", key, err)
	}
	defer out.Body.Close()
	stored, hasStored := storedCRC(out.Metadata)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("objstore: get %s from %s: %w", key, s.Location(), err)
	}
	_, err = writeAtomic(dst, out.Body, func(got Checksum) error {
		if got != want {
			return corrupt(s.Location(), key, got, want, "its manifest")
		}
		if hasStored && got.CRC32C != stored {
			return corrupt(s.Location(), key, got, Checksum{got.Size, stored}, "its stored checksum")
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return s.wrap("get", key, fmt.Errorf("into %s: %w", dst, err))
	}
	return err
}

func (s *s3Store) GetBytes(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(s.Location(), key); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.loc.Bucket, Key: aws.String(s.key(key))})
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	got := Checksum{Size: int64(len(data)), CRC32C: crc32.Checksum(data, castagnoli)}
	if stored, ok := storedCRC(out.Metadata); ok && stored != got.CRC32C {
		return nil, corrupt(s.Location(), key, got, Checksum{got.Size, stored}, "its stored checksum")
	}
	return data, nil
}

func (s *s3Store) Stat(ctx context.Context, key string) (Object, error) {
	if err := checkKey(s.Location(), key); err != nil {
		return Object{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.loc.Bucket, Key: aws.String(s.key(key))})
	if err != nil {
		return Object{}, s.wrap("stat", key, err)
	}
	return Object{Key: key, Size: aws.ToInt64(out.ContentLength), Modified: aws.ToTime(out.LastModified)}, nil
}

func (s *s3Store) List(ctx context.Context, prefix string) ([]Object, error) {
	in := &s3.ListObjectsV2Input{Bucket: &s.loc.Bucket, Prefix: aws.String(s.key(prefix))}
	if s.listPageSize > 0 {
		in.MaxKeys = aws.Int32(s.listPageSize)
	}
	strip := len(s.key(""))
	var out []Object
	for p := s3.NewListObjectsV2Paginator(s.client, in); p.HasMorePages(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.wrap("list", prefix+"*", err)
		}
		for _, o := range page.Contents {
			out = append(out, Object{Key: aws.ToString(o.Key)[strip:], Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)})
		}
	}
	return out, nil
}

func (s *s3Store) Delete(ctx context.Context, keys ...string) error {
	for len(keys) > 0 {
		batch := keys[:min(len(keys), deleteBatch)]
		keys = keys[len(batch):]
		ids := make([]types.ObjectIdentifier, len(batch))
		for i, k := range batch {
			if err := checkKey(s.Location(), k); err != nil {
				return err
			}
			ids[i] = types.ObjectIdentifier{Key: aws.String(s.key(k))}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &s.loc.Bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return s.wrap("delete", batch[0], err)
		}
		for _, e := range out.Errors {
			if aws.ToString(e.Code) == "NoSuchKey" {
				continue
			}
			return s.wrap("delete", strings.TrimPrefix(aws.ToString(e.Key), s.key("")),
				fmt.Errorf("%s: %s", aws.ToString(e.Code), aws.ToString(e.Message)))
		}
	}
	return nil
}

// checksumFile reads f's first size bytes and returns their checksum and the
// CRC-32C of each partSize part.
func checksumFile(f io.ReaderAt, size, partSize int64) (Checksum, []uint32, error) {
	whole := crc32.New(castagnoli)
	var parts []uint32
	for off := int64(0); off < size || off == 0; off += partSize {
		part := crc32.New(castagnoli)
		n, err := io.Copy(io.MultiWriter(whole, part), io.NewSectionReader(f, off, min(partSize, size-off)))
		if err != nil {
			return Checksum{}, nil, err
		}
		if n != min(partSize, size-off) {
			return Checksum{}, nil, fmt.Errorf("%w: shorter than its %d bytes", ErrChanged, size)
		}
		parts = append(parts, part.Sum32())
		if size == 0 {
			break
		}
	}
	return Checksum{Size: size, CRC32C: whole.Sum32()}, parts, nil
}

// verifyingReader checks, as the SDK reads a request body, that the bytes
// have the checksum computed before the upload. The SDK may read the body
// more than once (payload signing, retries), seeking back to the start each
// time; a read from anywhere else is not checked.
type verifyingReader struct {
	r       io.ReadSeeker
	want    Checksum
	h       hash.Hash32
	n       int64
	unknown bool // read from a position other than the start
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.h == nil {
		v.h = crc32.New(castagnoli)
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF && !v.unknown {
		if got := (Checksum{v.n, v.h.Sum32()}); got != v.want {
			return n, fmt.Errorf("%w: read %v, expected %v", ErrChanged, got, v.want)
		}
	}
	return n, err
}

func (v *verifyingReader) Seek(offset int64, whence int) (int64, error) {
	pos, err := v.r.Seek(offset, whence)
	if err == nil && pos != v.n {
		v.h, v.n, v.unknown = nil, pos, pos != 0
	}
	return pos, err
}

func crcBase64(c uint32) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, c))
}

func crcHex(c uint32) string { return fmt.Sprintf("%08x", c) }

// storedCRC returns the checksum in an object's user metadata, if any.
func storedCRC(meta map[string]string) (uint32, bool) {
	for k, v := range meta {
		if strings.EqualFold(k, crcMetaKey) {
			c, err := strconv.ParseUint(v, 16, 32)
			return uint32(c), err == nil
		}
	}
	return 0, false
}
