package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/weirstream/weir/runtime"
)

// Run logs one line at start with every setting of Config after defaults,
// and never the status server's secrets. The field list is taken from the
// Config type, so a setting added later without being logged fails here.
func TestRunLogsEffectiveConfig(t *testing.T) {
	var buf bytes.Buffer
	const token, password = "s3cr3t-token", "s3cr3t-password"
	p := runtime.NewPipeline("configlog")
	s := runtime.From(p, "src", func() (runtime.Source[string], error) { return &endlessSource{}, nil })
	runtime.To(s, "sink", func() (runtime.Sink[string], error) { return nil, context.Canceled })
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the line is logged before the job starts; it need not run
	runtime.Run(ctx, p, runtime.Config{
		CheckpointDir: t.TempDir(),
		Logger:        slog.New(slog.NewJSONHandler(&buf, nil)),
		MetricsAuth:   runtime.MetricsAuth{BearerToken: token, BasicUser: "ops", BasicPassword: password},
		Restart:       runtime.RestartStrategy{Attempts: 2},
	})
	var line map[string]any
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, "effective configuration") {
			if line != nil {
				t.Fatalf("two configuration lines:\n%s", buf.String())
			}
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line == nil {
		t.Fatalf("no configuration line in the log:\n%s", buf.String())
	}
	if strings.Contains(buf.String(), token) || strings.Contains(buf.String(), password) {
		t.Errorf("the log shows a secret:\n%s", buf.String())
	}
	cfg, _ := line["config"].(map[string]any)
	hooks := map[string]bool{"Logger": true, "Events": true}
	ct := reflect.TypeFor[runtime.Config]()
	for i := range ct.NumField() {
		f := ct.Field(i)
		if !f.IsExported() || hooks[f.Name] {
			continue
		}
		key := snake(f.Name)
		if f.Name == "Stop" {
			key = "stop_channel"
		}
		v, ok := cfg[key]
		if !ok {
			t.Errorf("Config.%s is not logged as config.%s: %s", f.Name, key, buf.String())
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[runtime.MetricsAuth]() {
			group, _ := v.(map[string]any)
			for j := range f.Type.NumField() {
				if sub := f.Type.Field(j); sub.IsExported() {
					if _, ok := group[snake(sub.Name)]; !ok {
						t.Errorf("Config.%s.%s is not logged as config.%s.%s", f.Name, sub.Name, key, snake(sub.Name))
					}
				}
			}
		}
	}
	// Defaults are applied before logging.
	if got, want := cfg["checkpoint_interval"], float64(time.Second); got != want {
		t.Errorf("checkpoint_interval = %v, want the default %v", got, want)
	}
	if got := cfg["restart"].(map[string]any)["backoff"]; got != float64(time.Second) {
		t.Errorf("restart.backoff = %v, want the default 1s", got)
	}
	if got := cfg["metrics_auth"]; got != `bearer token or basic auth as "ops"` {
		t.Errorf("metrics_auth = %v", got)
	}
}

// snake turns a Go field name into the key logConfig uses:
// MetricsTLSCertFile → metrics_tls_cert_file.
func snake(name string) string {
	r := []rune(name)
	var b strings.Builder
	for i, c := range r {
		if i > 0 && unicode.IsUpper(c) && (unicode.IsLower(r[i-1]) || i+1 < len(r) && unicode.IsLower(r[i+1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}
