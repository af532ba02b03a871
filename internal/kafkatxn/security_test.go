package kafkatxn_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/devbroker"
	"github.com/weirstream/weir/internal/kafkasec"
	"github.com/weirstream/weir/internal/kafkatxn"
	"github.com/weirstream/weir/runtime"
)

// TestAuthorizationErrors checks that the producers' refused requests fail
// at once with errors naming the missing ACL, which no restart can fix.
func TestAuthorizationErrors(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	acl, err := devbroker.ParseACL("app:Describe:Topic:out")
	if err != nil {
		t.Fatal(err)
	}
	b, err := devbroker.Start(devbroker.Config{Addr: "127.0.0.1:0", Logger: quiet, ACLs: []devbroker.ACL{acl},
		Users: []devbroker.User{{Mechanism: kafkasec.Plain, Name: "app", Password: "app-pw"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sec := kafkasec.Config{SASL: kafkasec.SASL{Mechanism: kafkasec.Plain, User: "app", Password: "app-pw"}}
	cfg := kafkatxn.Config{Brokers: []string{b.Addr()}, Security: sec, Logger: quiet}
	_, err = kafkatxn.NewIdempotent(t.Context(), cfg)
	check := func(err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, runtime.ErrUnrecoverable) || !errors.Is(err, kafkasec.ErrAuthorization) {
			t.Errorf("%v, want an unrecoverable authorization error with %q", err, want)
		}
	}
	check(err, `not authorized to IdempotentWrite Cluster "kafka-cluster"`)
	cfg.TransactionalID = "txn-1"
	_, err = kafkatxn.New(t.Context(), cfg)
	check(err, `not authorized to Write TransactionalId "txn-1"`)
}
