package runtime

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/weirstream/weir/internal/engine"
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
func (a MetricsAuth) String() string { return engine.Auth(a).String() }

// GoString implements fmt.GoStringer, so that %#v hides the secrets too.
func (a MetricsAuth) GoString() string { return "runtime.MetricsAuth{" + a.String() + "}" }

// LogValue implements slog.LogValuer.
func (a MetricsAuth) LogValue() slog.Value { return slog.StringValue(a.String()) }

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
