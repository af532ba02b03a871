package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/internal/testcert"
)

// readyWriter collects a command's stderr and sends the broker's address
// once it logs that it is ready.
type readyWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan<- string
	sent  bool
}

var readyLine = regexp.MustCompile(`weir broker ready.* addr=(\S+)`)

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if m := readyLine.FindSubmatch(w.buf.Bytes()); m != nil && !w.sent {
		w.ready <- string(m[1])
		w.sent = true
	}
	return len(p), nil
}

func (w *readyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestSecuredTools runs 'weir broker' with TLS, SCRAM users and an ACL, and
// 'weir produce-orders' and 'weir verify' against it with the --kafka-*
// flags and the password in the environment: the superuser writes, the
// user reads what its ACL allows, is refused by name elsewhere, and a
// wrong password is an authentication error. No password shows.
func TestSecuredTools(t *testing.T) {
	const appPW, adminPW = "app-pw-5e1d", "admin-pw-0b7c"
	cert := testcert.Write(t, t.TempDir())
	ctx, stop := context.WithCancel(t.Context())
	ready := make(chan string, 1)
	brokerErr := &readyWriter{ready: ready}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"broker", "--addr", "127.0.0.1:0", "--tls-cert", cert.Cert, "--tls-key", cert.Key,
			"--sasl-mechanism", "scram-sha-512", "--sasl-user", "app:" + appPW, "--sasl-superuser", "admin:" + adminPW,
			"--acl", "app:Read:Topic:orders"}, &bytes.Buffer{}, brokerErr)
	}()
	defer func() {
		stop()
		if code := <-done; code != 0 {
			t.Errorf("weir broker exited %d:\n%s", code, brokerErr)
		}
	}()
	var addr string
	select {
	case addr = <-ready:
	case code := <-done:
		t.Fatalf("weir broker exited %d:\n%s", code, brokerErr)
	}
	as := func(user, password string, args ...string) (int, string) {
		t.Setenv(kafka.PasswordEnv, password)
		var stdout, stderr bytes.Buffer
		args = append(args, "--brokers", addr, "--kafka-tls-ca", cert.Cert,
			"--kafka-sasl-mechanism", "scram-sha-512", "--kafka-sasl-user", user, "--dial-timeout", "5s")
		code := run(t.Context(), args, &stdout, &stderr)
		out := stdout.String() + stderr.String()
		for _, pw := range []string{appPW, adminPW} {
			if strings.Contains(out, pw) {
				t.Errorf("weir %s shows a password:\n%s", args[0], out)
			}
		}
		return code, out
	}
	if code, out := as("admin", adminPW, "produce-orders", "--topic", "orders", "--count", "50", "--duplicate-rate", "0"); code != 0 {
		t.Fatalf("produce-orders as admin: exit %d\n%s", code, out)
	}
	verify := []string{"verify", "--key", "order_id", "--seq", "customer", "--expect", "50"}
	if code, out := as("app", appPW, append(verify, "--topic", "orders")...); code != 0 {
		t.Errorf("verify orders as app: exit %d\n%s", code, out)
	}
	if code, out := as("admin", adminPW, "produce-orders", "--topic", "other", "--count", "1"); code != 0 {
		t.Fatalf("produce-orders as admin: exit %d\n%s", code, out)
	}
	code, out := as("app", appPW, append(verify, "--topic", "other")...)
	if code != 1 || !strings.Contains(out, `not authorized to Read Topic "other"`) {
		t.Errorf("verify other as app, which no ACL allows: exit %d\n%s", code, out)
	}
	start := time.Now()
	code, out = as("app", "wrong-"+appPW, append(verify, "--topic", "orders")...)
	if code != 1 || !strings.Contains(out, "rejected the credentials") {
		t.Errorf("verify with a wrong password: exit %d\n%s", code, out)
	}
	t.Logf("a wrong password failed after %v", time.Since(start))
}
