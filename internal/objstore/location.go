package objstore

import (
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// Location is a parsed location: a local directory (Path) or an S3 bucket
// and key prefix (Bucket, Prefix).
type Location struct {
	Path   string // a clean directory path; empty for S3
	Bucket string // the bucket of an s3:// location
	Prefix string // the key prefix in Bucket, without slashes at either end; may be empty
}

// IsS3 reports whether the location is an S3 bucket.
func (l Location) IsS3() bool { return l.Bucket != "" }

// String returns the location in the form ParseLocation accepts.
func (l Location) String() string {
	if !l.IsS3() {
		return l.Path
	}
	if l.Prefix == "" {
		return "s3://" + l.Bucket
	}
	return "s3://" + l.Bucket + "/" + l.Prefix
}

// bucketName is S3's rule for bucket names: 3 to 63 lowercase letters,
// digits, dots and hyphens, beginning and ending with a letter or digit.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// ParseLocation parses a directory path or s3://bucket/prefix. Anything else
// with a scheme, such as gs:// or s3:bucket, is refused rather than taken
// for a relative directory of that odd name.
func ParseLocation(s string) (Location, error) {
	bad := func(why string) (Location, error) {
		return Location{}, fmt.Errorf("%w %q: %s; want a directory path or s3://BUCKET/PREFIX", ErrBadLocation, s, why)
	}
	if strings.TrimSpace(s) == "" {
		return bad("empty")
	}
	scheme, rest, hasScheme := strings.Cut(s, "://")
	if !hasScheme {
		if before, _, ok := strings.Cut(s, ":"); ok && strings.EqualFold(before, "s3") {
			return bad("an S3 location begins with s3:// (two slashes)")
		}
		return Location{Path: filepath.Clean(s)}, nil
	}
	if !strings.EqualFold(scheme, "s3") {
		return bad(fmt.Sprintf("scheme %q is not supported (only s3:// and local paths are)", scheme))
	}
	u, err := url.Parse("s3://" + rest)
	if err != nil {
		return bad(err.Error())
	}
	switch {
	case u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(rest, "?#"):
		return bad("a location has no query or fragment")
	case u.User != nil || u.Port() != "":
		return bad("the endpoint is not part of the location: set AWS_ENDPOINT_URL")
	case u.Host == "":
		return bad("no bucket")
	case !bucketName.MatchString(u.Host) || strings.Contains(u.Host, ".."):
		return bad(fmt.Sprintf("bucket %q is not a valid S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)", u.Host))
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" && (path.Clean(prefix) != prefix || strings.HasPrefix(prefix, "..") || prefix == ".") {
		return bad(fmt.Sprintf("prefix %q is not a clean path (no //, . or .. segments)", prefix))
	}
	return Location{Bucket: u.Host, Prefix: prefix}, nil
}
