package objstore

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLocation(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Location
		err  string // a substring of the error; empty for success
	}{
		{in: "/var/lib/weir/chk", want: Location{Path: "/var/lib/weir/chk"}},
		{in: "chk/", want: Location{Path: "chk"}},
		{in: "s3://weir-ckpt", want: Location{Bucket: "weir-ckpt"}},
		{in: "s3://weir-ckpt/", want: Location{Bucket: "weir-ckpt"}},
		{in: "s3://weir-ckpt/jobs/orders/", want: Location{Bucket: "weir-ckpt", Prefix: "jobs/orders"}},
		{in: "S3://weir.ckpt/a", want: Location{Bucket: "weir.ckpt", Prefix: "a"}},
		{in: "", err: "empty"},
		{in: "s3:weir/x", err: "two slashes"},
		{in: "gs://bucket/x", err: `scheme "gs"`},
		{in: "s3://", err: "no bucket"},
		{in: "s3:///prefix", err: "no bucket"},
		{in: "s3://Weir_Ckpt/x", err: "not a valid S3 bucket name"},
		{in: "s3://ab/x", err: "not a valid S3 bucket name"},
		{in: "s3://bucket/a//b", err: "not a clean path"},
		{in: "s3://bucket/a/../b", err: "not a clean path"},
		{in: "s3://bucket/x?region=eu", err: "no query"},
		{in: "s3://127.0.0.1:9000/bucket", err: "AWS_ENDPOINT_URL"},
	} {
		got, err := ParseLocation(tc.in)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParseLocation(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			if got.IsS3() && got.String() != strings.TrimSuffix(strings.Replace(tc.in, "S3://", "s3://", 1), "/") {
				t.Errorf("ParseLocation(%q).String() = %q", tc.in, got.String())
			}
			continue
		}
		if !errors.Is(err, ErrBadLocation) || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), tc.in) {
			t.Errorf("ParseLocation(%q) error = %v; want ErrBadLocation naming the location and saying %q", tc.in, err, tc.err)
		}
	}
}

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"MANIFEST", "chk-0000000001/state/op/0/000004.sst", ".hidden"} {
		if err := checkKey("loc", k); err != nil {
			t.Errorf("checkKey(%q) = %v", k, err)
		}
	}
	for _, k := range []string{"", "/abs", "a//b", "a/", "../x", "a/./b", `a\b`} {
		if err := checkKey("loc", k); !errors.Is(err, ErrBadKey) {
			t.Errorf("checkKey(%q) = %v; want ErrBadKey", k, err)
		}
	}
}
