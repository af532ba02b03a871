package runtime

import (
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
)

// MetricsAuth protects the status server's endpoints, all but /healthz and
// /readyz (which probes need): a request must carry the bearer token or the
// basic-auth user and password. Either or both may be set; the zero value
// lets every request through. It never prints its secrets.
type MetricsAuth struct {
	BearerToken              string
	BasicUser, BasicPassword string
}

// IsZero reports whether no authentication is configured.
func (a MetricsAuth) IsZero() bool { return a == MetricsAuth{} }

// String says what is configured, without the secrets.
func (a MetricsAuth) String() string {
	var parts []string
	if a.BearerToken != "" {
		parts = append(parts, "bearer token")
	}
	if a.BasicUser != "" {
		parts = append(parts, fmt.Sprintf("basic auth as %q", a.BasicUser))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " or ")
}

// GoString implements fmt.GoStringer, so that %#v hides the secrets too.
func (a MetricsAuth) GoString() string { return "runtime.MetricsAuth{" + a.String() + "}" }

// LogValue implements slog.LogValuer.
func (a MetricsAuth) LogValue() slog.Value { return slog.StringValue(a.String()) }

// allows reports whether r carries the configured credentials.
func (a MetricsAuth) allows(r *http.Request) bool {
	same := func(got, want string) bool {
		return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && same(tok, a.BearerToken) {
		return true
	}
	u, p, ok := r.BasicAuth()
	return ok && a.BasicUser != "" && same(u, a.BasicUser) && same(p, a.BasicPassword)
}

func (a MetricsAuth) validate() error {
	if (a.BasicUser == "") != (a.BasicPassword == "") {
		return errors.New("--metrics-basic-auth-file: want one line USER:PASSWORD")
	}
	return nil
}

// metricsTokenEnv holds the status server's bearer token when
// --metrics-bearer-token-file is not given.
const metricsTokenEnv = "WEIR_METRICS_BEARER_TOKEN"

// readMetricsAuth reads the status server's credentials from the files
// named by the flags (and the environment).
func readMetricsAuth(tokenFile, basicFile string) (MetricsAuth, error) {
	var a MetricsAuth
	read := func(flag, path string) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("--%s: %w", flag, err)
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			return "", fmt.Errorf("--%s %s is empty", flag, path)
		}
		return s, nil
	}
	var err error
	switch {
	case tokenFile != "":
		if a.BearerToken, err = read("metrics-bearer-token-file", tokenFile); err != nil {
			return a, err
		}
	default:
		a.BearerToken = os.Getenv(metricsTokenEnv)
	}
	if basicFile != "" {
		line, err := read("metrics-basic-auth-file", basicFile)
		if err != nil {
			return a, err
		}
		var ok bool
		if a.BasicUser, a.BasicPassword, ok = strings.Cut(line, ":"); !ok || a.BasicUser == "" || a.BasicPassword == "" {
			// NB: the line holds a password: do not echo it.
			return a, fmt.Errorf("--metrics-basic-auth-file %s: want one line USER:PASSWORD", basicFile)
		}
	}
	return a, nil
}

// metricsTLS returns the status server's TLS configuration, or nil.
func (c *Config) metricsTLS() (*tls.Config, error) {
	if c.MetricsTLSCertFile == "" && c.MetricsTLSKeyFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.MetricsTLSCertFile, c.MetricsTLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--metrics-tls-cert %q, --metrics-tls-key %q: %w", c.MetricsTLSCertFile, c.MetricsTLSKeyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// isLoopback reports whether a listener's address is on the loopback
// interface only.
func isLoopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// guard enforces auth on every endpoint but the probes', and refuses
// requests that may change state (anything but GET and HEAD) from off the
// loopback interface when no auth is configured.
func guard(auth MetricsAuth, loopback bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz" || r.URL.Path == "/readyz":
		case !auth.IsZero():
			if !auth.allows(r) {
				if auth.BasicUser != "" {
					w.Header().Set("WWW-Authenticate", `Basic realm="weir"`)
				} else {
					w.Header().Set("WWW-Authenticate", `Bearer realm="weir"`)
				}
				http.Error(w, "unauthorized: this endpoint needs the status server's credentials", http.StatusUnauthorized)
				return
			}
		case !loopback && r.Method != http.MethodGet && r.Method != http.MethodHead:
			http.Error(w, "forbidden: a request that changes state needs --metrics-bearer-token-file or --metrics-basic-auth-file "+
				"when the status server is not bound to loopback", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
