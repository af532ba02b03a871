// Package objstore stores checkpoint files as immutable objects, in a local
// directory or in an S3-compatible bucket, behind one small interface: Store.
//
// A location is either a directory path or s3://bucket/prefix; Open parses
// it, checks up front that the store is usable (the directory is writable;
// the endpoint answers, the credentials are accepted and the bucket exists,
// or is created when Options.CreateBucket is set), and fails otherwise with
// an error that names the location and says what to do, wrapping one of the
// sentinels below. A job fails at start rather than at its first checkpoint.
//
// # The contract the checkpoint store builds on
//
//   - Keys are relative, '/'-separated paths ("chk-0000000042/MANIFEST").
//   - Put and PutBytes publish an object atomically: a reader sees the whole
//     object or none (a temporary file renamed into place locally; a single
//     PUT or a completed multipart upload in S3). An object is written once
//     and never changed: a checkpoint writes every file under a new key and
//     its manifest last, so a checkpoint exists exactly when its manifest
//     object does.
//   - Put streams a local file and returns its size and CRC-32C (the checksum
//     the checkpoint manifest already records). In S3 the checksum also goes
//     with the object, as the x-amz-checksum-crc32c header that S3 and most
//     compatible servers verify on arrival, and as user metadata
//     (x-amz-meta-crc32c) that Get verifies on every server. The bytes sent
//     are checksummed again while they are uploaded, so a file that changes
//     during its upload fails the Put instead of leaving an object that does
//     not match its checksum.
//   - Get downloads an object into a local file, atomically, and verifies its
//     size and CRC-32C against what the caller expects (from its manifest)
//     and against the checksum stored with the object; a mismatch is refused
//     with ErrCorrupt naming the object and both checksums, and nothing is
//     left at the destination.
//   - Create publishes an object only if its key is free: of concurrent
//     Creates one wins, the others fail with ErrExists (link(2) of a
//     temporary file locally, a PUT with If-None-Match: * in S3). It is how
//     a task's new owner claims its next checkpoint epoch (package
//     tasklineage).
//   - List returns every key under a prefix (S3 pages are followed to the
//     end); Delete removes keys, and a missing key is not an error, so that
//     retention can be retried after a crash.
//
// Incremental checkpoints need nothing more: a checkpoint uploads only the
// files that are new since the previous one and its manifest names, for each
// shared file, the key it was first uploaded under. Retention deletes an
// object once no retained manifest references it.
//
// # Why aws-sdk-go-v2
//
// The S3 client is the AWS SDK for Go v2 (service/s3), not minio-go, because
// it reads the whole standard AWS configuration the way every other AWS tool
// does: AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_S3), AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_PROFILE with
// ~/.aws/config and ~/.aws/credentials, SSO, web identity (EKS IRSA), the
// ECS task role and the EC2 instance role. Users configure weir as they
// configure the aws CLI. It is AWS's maintained client and speaks to S3
// compatible servers (MinIO, Ceph, R2, GCS interop, the development server of
// package s3dev) through a custom endpoint. With a custom endpoint the store
// uses path-style addressing (http://host/bucket/key), which every
// S3-compatible server accepts and which needs no wildcard DNS; without one,
// virtual-hosted addressing, as AWS requires for new buckets. A custom
// endpoint without a region gets us-east-1, which such servers ignore.
//
// # A server that stops answering
//
// Every S3 connection fails once no byte has moved in either direction for
// the stall timeout, 30 s unless WEIR_S3_REQUEST_TIMEOUT (a Go duration)
// says otherwise, and the SDK retries the request (AWS_MAX_ATTEMPTS, 3 by
// default). A hung endpoint thus fails a checkpoint or a restore in about
// two minutes with ErrUnreachable naming the endpoint and the key, instead
// of hanging it forever; a slow transfer that keeps moving bytes is never
// cut short, whatever its size. The SDK's own read timeout is off for S3,
// and would not do: it restarts only on reads, so a long upload, whose
// response is read only at its end, would trip it.
package objstore
