package engine

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
)

// Auth is runtime.MetricsAuth: the credentials the status server requires
// on all but /healthz and /readyz; the zero value lets every request
// through.
type Auth struct {
	BearerToken              string
	BasicUser, BasicPassword string
}

// IsZero reports whether no authentication is configured.
func (a Auth) IsZero() bool { return a == Auth{} }

// String says what is configured, without the secrets.
func (a Auth) String() string {
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

// GoString hides the secrets from %#v too.
func (a Auth) GoString() string { return "engine.Auth{" + a.String() + "}" }

// LogValue implements slog.LogValuer, without the secrets.
func (a Auth) LogValue() slog.Value { return slog.StringValue(a.String()) }

// allows reports whether r carries the configured credentials.
func (a Auth) allows(r *http.Request) bool {
	same := func(got, want string) bool {
		return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && same(tok, a.BearerToken) {
		return true
	}
	u, p, ok := r.BasicAuth()
	return ok && a.BasicUser != "" && same(u, a.BasicUser) && same(p, a.BasicPassword)
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
func guard(auth Auth, loopback bool, next http.Handler) http.Handler {
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
