package runtime_test

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/weirstream/weir/runtime"
)

// --state-cache takes a size with a unit; a bad one fails the parse or the
// validation, naming the flag.
func TestFlagStateCache(t *testing.T) {
	for _, c := range []struct {
		arg       string
		want      int64
		wantError string // of the parse or of Validate
	}{
		{"", runtime.DefaultStateCache, ""},
		{"256MiB", 256 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"1.5 GiB", 3 << 29, ""},
		{"500MB", 500e6, ""},
		{"64k", 64 << 10, ""},
		{"4096", 4096, ""},
		{"2048b", 2048, ""},
		{"lots", 0, `"lots" is not a size`},
		{"-1MiB", 0, `"-1MiB" is not a size`},
		{"12XB", 0, `"12XB" is not a size`},
		{"0", 0, "--state-cache 0B: must be positive"},
		{"100", 0, "--state-cache 100B: must be at least 1KiB"},
	} {
		fs := flag.NewFlagSet("job", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f := runtime.RegisterFlags(fs, runtime.Config{CheckpointDir: t.TempDir()})
		var args []string
		if c.arg != "" {
			args = []string{"--state-cache", c.arg}
		}
		err := fs.Parse(args)
		var cfg runtime.Config
		if err == nil {
			cfg = f.Config()
			err = cfg.Validate()
		}
		switch {
		case c.wantError == "" && err != nil:
			t.Errorf("--state-cache %q: %v, want no error", c.arg, err)
		case c.wantError != "" && (err == nil || !strings.Contains(err.Error(), c.wantError)):
			t.Errorf("--state-cache %q: %v, want an error containing %q", c.arg, err, c.wantError)
		case c.wantError == "" && cfg.StateCacheBytes != c.want:
			t.Errorf("--state-cache %q: StateCacheBytes = %d, want %d", c.arg, cfg.StateCacheBytes, c.want)
		}
	}
}

// The flag's help shows the default with its unit.
func TestFlagStateCacheDefault(t *testing.T) {
	fs := flag.NewFlagSet("job", flag.ContinueOnError)
	runtime.RegisterFlags(fs, runtime.Config{CheckpointDir: t.TempDir()})
	if got := fs.Lookup("state-cache").DefValue; got != "256MiB" {
		t.Errorf("--state-cache default shows as %q, want 256MiB", got)
	}
}
