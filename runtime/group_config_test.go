package runtime_test

import (
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/runtime"
)

// stubCluster satisfies runtime.Cluster for validation; it is never joined.
type stubCluster struct{}

func (stubCluster) Join(context.Context, runtime.JoinRequest) (runtime.Membership, error) {
	return nil, errors.New("not joined in this test")
}
func (stubCluster) Exchange(context.Context, string, int) (runtime.SinkFactory[runtime.ExchangeRecord], runtime.SourceFactory[runtime.ExchangeRecord], error) {
	return nil, nil, errors.New("no exchanges in this test")
}

// The group flags: their defaults, and the settings a job spread over
// processes refuses, each naming what to do.
func TestGroupFlags(t *testing.T) {
	for _, c := range []struct {
		args      []string
		cluster   bool
		wantError string // "" for valid
	}{
		{[]string{"--group", "orders"}, true, ""},
		{[]string{"--group", "orders", "--instance-id", "orders-0", "--group-session-timeout", "10s"}, true, ""},
		{[]string{"--group", "orders"}, false, "needs Config.Cluster"},
		{[]string{"--group", "orders", "--parallelism", "4"}, true, "--parallelism 4 cannot be set with --group"},
		{[]string{"--group", "orders", "--parallelism", "1"}, true, "--parallelism 1 cannot be set with --group"},
		{[]string{"--group", "orders", "--from-savepoint", "sp/group-savepoint-1"}, true, ""},
		{[]string{"--group", "orders", "--savepoint-dir", "sp"}, true, "--savepoint-dir cannot be used with --group \"orders\": each task checkpoints on its own; stop every member, then write a savepoint of the whole group with 'weir checkpoints savepoint"},
		{[]string{"--group", "orders/eu"}, true, `--group "orders/eu": use 1 to 200 letters`},
		{[]string{"--group", "orders", "--group-session-timeout", "0s"}, true, "--group-session-timeout 0s: must be positive"},
		{[]string{"--instance-id", "orders-0"}, true, `--instance-id "orders-0" needs --group`},
		{[]string{"--parallelism", "4"}, true, ""}, // a Cluster without --group is unused
	} {
		fs := flag.NewFlagSet("job", flag.ContinueOnError)
		base := runtime.Config{CheckpointDir: t.TempDir()}
		if c.cluster {
			base.Cluster = stubCluster{}
		}
		f := runtime.RegisterFlags(fs, base)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		cfg := f.Config()
		cfg.EnsureDefaults()
		err := cfg.Validate()
		switch {
		case c.wantError == "" && err != nil:
			t.Errorf("%v: Validate = %v, want nil", c.args, err)
		case c.wantError != "" && (err == nil || !strings.Contains(err.Error(), c.wantError)):
			t.Errorf("%v: Validate = %v, want an error containing %q", c.args, err, c.wantError)
		}
	}
	fs := flag.NewFlagSet("job", flag.ContinueOnError)
	f := runtime.RegisterFlags(fs, runtime.Config{CheckpointDir: t.TempDir()})
	if err := fs.Parse([]string{"--group", "orders"}); err != nil {
		t.Fatal(err)
	}
	if got := f.Config().GroupSessionTimeout; got != 45*time.Second {
		t.Errorf("--group-session-timeout defaults to %v, want Kafka's 45s", got)
	}
	// Set in code rather than by flag, a parallelism is refused too.
	cfg := runtime.Config{CheckpointDir: t.TempDir(), Group: "orders", Cluster: stubCluster{}, Parallelism: 4}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--parallelism 4 cannot be set with --group") {
		t.Errorf("Config.Parallelism 4 with Group: Validate = %v", err)
	}
}
