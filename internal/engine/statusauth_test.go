package engine_test

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirstream/weir/connectors/discard"
	"github.com/weirstream/weir/internal/testcert"
	"github.com/weirstream/weir/runtime"
)

// get requests url with the given Authorization header (none if empty) and
// returns the status code.
func get(t *testing.T, c *http.Client, method, url, authorization string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestStatusServerAuth checks that with a bearer token or basic auth, every
// endpoint but the probes refuses a request without the credentials, over
// HTTPS with --metrics-tls-cert.
func TestStatusServerAuth(t *testing.T) {
	dir := t.TempDir()
	cert := testcert.Write(t, dir)
	pem, err := os.ReadFile(cert.Cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}

	auth := runtime.MetricsAuth{BearerToken: "tok-3c9a", BasicUser: "ops", BasicPassword: "pw-77e1"}
	var dropped discard.Counter
	var logs syncBuffer
	cfg := runtime.Config{CheckpointDir: t.TempDir(), MetricsAddr: "127.0.0.1:0", MetricsAuth: auth,
		MetricsTLSCertFile: cert.Cert, MetricsTLSKeyFile: cert.Key,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	j := startJob(t, observedPipeline("auth", 1000, must(discard.NewSink(discard.SinkConfig[string]{Counter: &dropped}))), cfg)
	base := "https://" + j.MetricsAddr()
	basic := "Basic " + basicValue("ops", "pw-77e1")
	for _, c := range []struct {
		path, authorization string
		want                int
	}{
		{"/healthz", "", http.StatusOK},
		{"/api/status", "", http.StatusUnauthorized},
		{"/", "", http.StatusUnauthorized},
		{"/metrics", "", http.StatusUnauthorized},
		{"/api/status", "Bearer wrong", http.StatusUnauthorized},
		{"/api/status", "Basic " + basicValue("ops", "wrong"), http.StatusUnauthorized},
		{"/api/status", "Bearer tok-3c9a", http.StatusOK},
		{"/api/status", basic, http.StatusOK},
		{"/", basic, http.StatusOK},
		{"/metrics", "Bearer tok-3c9a", http.StatusOK},
	} {
		if got := get(t, client, http.MethodGet, base+c.path, c.authorization); got != c.want {
			t.Errorf("GET %s with %q: %d, want %d", c.path, c.authorization, got, c.want)
		}
	}
	// /readyz answers without credentials (200 or 503, never 401).
	if got := get(t, client, http.MethodGet, base+"/readyz", ""); got == http.StatusUnauthorized {
		t.Errorf("/readyz asks for credentials")
	}
	for _, secret := range []string{"tok-3c9a", "pw-77e1"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the logs show a secret of the status server:\n%s", logs.String())
		}
		if s := fmt.Sprintf("%v %+v %#v %s", auth, auth, auth, auth); strings.Contains(s, secret) {
			t.Errorf("MetricsAuth prints a secret: %s", s)
		}
	}
}

func basicValue(user, password string) string {
	r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	r.SetBasicAuth(user, password)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// TestStatusServerOffLoopback checks that a status server bound beyond
// loopback without auth warns at start and refuses requests that could
// change state, and that with auth those need the credentials.
func TestStatusServerOffLoopback(t *testing.T) {
	for _, withAuth := range []bool{false, true} {
		t.Run(fmt.Sprintf("auth=%v", withAuth), func(t *testing.T) {
			var logs syncBuffer
			cfg := runtime.Config{CheckpointDir: t.TempDir(), MetricsAddr: "0.0.0.0:0",
				Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			if withAuth {
				cfg.MetricsAuth.BearerToken = "tok-51aa"
			}
			var dropped discard.Counter
			j := startJob(t, observedPipeline("wide", 1000, must(discard.NewSink(discard.SinkConfig[string]{Counter: &dropped}))), cfg)
			_, port, _ := strings.Cut(j.MetricsAddr(), "]:")
			if port == "" {
				_, port, _ = strings.Cut(j.MetricsAddr(), ":")
			}
			url := "http://127.0.0.1:" + port + "/api/status"
			warned := strings.Contains(logs.String(), "bound to an address other than loopback without authentication")
			if warned == withAuth {
				t.Errorf("warning logged: %v, want %v:\n%s", warned, !withAuth, logs.String())
			}
			want := http.StatusForbidden
			if withAuth {
				want = http.StatusUnauthorized
			}
			if got := get(t, http.DefaultClient, http.MethodPost, url, ""); got != want {
				t.Errorf("POST /api/status without credentials: %d, want %d", got, want)
			}
			if withAuth {
				if got := get(t, http.DefaultClient, http.MethodGet, url, "Bearer tok-51aa"); got != http.StatusOK {
					t.Errorf("GET /api/status with the token: %d", got)
				}
			} else if got := get(t, http.DefaultClient, http.MethodGet, url, ""); got != http.StatusOK {
				t.Errorf("GET /api/status without auth configured: %d", got)
			}
		})
	}
}

// TestStatusServerAuthFlags checks that the credentials come from files,
// never from a flag value.
func TestStatusServerAuthFlags(t *testing.T) {
	dir := t.TempDir()
	tok, basic := filepath.Join(dir, "token"), filepath.Join(dir, "basic")
	os.WriteFile(tok, []byte("tok-9\n"), 0o600)
	os.WriteFile(basic, []byte("ops:pw-9\n"), 0o600)
	fs := flag.NewFlagSet("job", flag.ContinueOnError)
	f := runtime.RegisterFlags(fs, runtime.Config{CheckpointDir: dir})
	if err := fs.Parse([]string{"--metrics-bearer-token-file", tok, "--metrics-basic-auth-file", basic}); err != nil {
		t.Fatal(err)
	}
	cfg := f.Config()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if want := (runtime.MetricsAuth{BearerToken: "tok-9", BasicUser: "ops", BasicPassword: "pw-9"}); cfg.MetricsAuth != want {
		t.Errorf("auth from files: %v", cfg.MetricsAuth)
	}
	os.WriteFile(basic, []byte("no-colon-secret\n"), 0o600)
	cfg = f.Config()
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "USER:PASSWORD") || strings.Contains(err.Error(), "no-colon-secret") {
		t.Errorf("a malformed basic-auth file: %v", err)
	}
}
