package runtime_test

import (
	"flag"
	"strings"
	"testing"
	"time"

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
		{[]string{"--restart-attempts", "0"}, ""}, // never restart
		{[]string{"--restart-backoff", "0s"}, "--restart-backoff 0s: must be positive"},
		{[]string{"--restart-attempts", "-1"}, "--restart-attempts -1: must be 0 (never restart) or more"},
		{[]string{"--restart-backoff", "1m"}, "--restart-max-backoff 30s is less than --restart-backoff 1m0s"},
		{[]string{"--savepoint-dir", "s3:/bucket"}, "--savepoint-dir: "},
		{[]string{"--from-savepoint", "gs://bucket/sp"}, "--from-savepoint: "},
		{[]string{"--savepoint-dir", "s3://backups/sp", "--from-savepoint", "sp/savepoint-1", "--allow-non-restored-state"}, ""},
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

// The job binary restarts by default; Config's zero value does not.
func TestFlagsRestartDefaults(t *testing.T) {
	fs := flag.NewFlagSet("job", flag.ContinueOnError)
	f := runtime.RegisterFlags(fs, runtime.Config{CheckpointDir: t.TempDir()})
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	want := runtime.RestartStrategy{Attempts: 10, Backoff: time.Second, MaxBackoff: 30 * time.Second, ResetAfter: 10 * time.Minute}
	if got := f.Config().Restart; got != want {
		t.Errorf("flag defaults: Restart = %+v, want %+v", got, want)
	}
	// The backoffs of the default attempts outlast a broker restart of a minute.
	var total, d time.Duration
	for d = want.Backoff; want.Attempts > 0; want.Attempts-- {
		total += d
		d = min(2*d, want.MaxBackoff)
	}
	if total < 2*time.Minute {
		t.Errorf("default restarts wait %v in all, want more than 2m", total)
	}
	cfg := runtime.Config{CheckpointDir: t.TempDir()}
	cfg.EnsureDefaults()
	if cfg.Restart != (runtime.RestartStrategy{}) {
		t.Errorf("Config's default Restart = %+v, want none", cfg.Restart)
	}
}
