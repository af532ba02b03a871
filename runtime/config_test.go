package runtime_test

import (
	"flag"
	"strings"
	"testing"

	"github.com/weirstream/weir/runtime"
)

// A zero number on the command line is an error (the defaults would hide
// it); a zero that is a name is not.
func TestFlagsExplicitZeros(t *testing.T) {
	for _, c := range []struct {
		args      []string
		wantError string // "" for valid
	}{
		{[]string{"--parallelism", "0"}, "--parallelism 0: must be positive"},
		{[]string{"--checkpoint-interval", "0s"}, "--checkpoint-interval 0s: must be positive"},
		{[]string{"--ready-checkpoint-factor", "0"}, "--ready-checkpoint-factor 0: must be positive"},
		{[]string{"--checkpoint-dir", "0"}, ""},
		{[]string{"--parallelism", "2", "--checkpoint-interval", "250ms"}, ""},
	} {
		fs := flag.NewFlagSet("job", flag.ContinueOnError)
		f := runtime.RegisterFlags(fs, runtime.Config{CheckpointDir: t.TempDir()})
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		cfg := f.Config()
		err := cfg.Validate()
		switch {
		case c.wantError == "" && err != nil:
			t.Errorf("%v: Validate = %v, want nil", c.args, err)
		case c.wantError != "" && (err == nil || !strings.Contains(err.Error(), c.wantError)):
			t.Errorf("%v: Validate = %v, want an error containing %q", c.args, err, c.wantError)
		}
	}
}
