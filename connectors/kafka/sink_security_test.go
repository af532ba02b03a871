package kafka_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/internal/devbroker"
	"github.com/weirstream/weir/internal/testcert"
	"github.com/weirstream/weir/runtime"
)

// securedBroker starts a broker with TLS and the SCRAM-SHA-512 user app
// under acls, and the topic out.
func securedBroker(t *testing.T, acls ...string) (*devbroker.Broker, kafka.Security) {
	t.Helper()
	cert := testcert.Write(t, t.TempDir())
	cfg := devbroker.Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
		TLSCertFile: cert.Cert, TLSKeyFile: cert.Key,
		Users: []devbroker.User{{Mechanism: kafka.ScramSHA512, Name: "app", Password: "app-pw"}}}
	for _, rule := range acls {
		a, err := devbroker.ParseACL(rule)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ACLs = append(cfg.ACLs, a)
	}
	b, err := devbroker.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.CreateTopic("out", 2); err != nil {
		t.Fatal(err)
	}
	return b, kafka.Security{TLS: kafka.TLS{CAFile: cert.Cert},
		SASL: kafka.SASL{Mechanism: kafka.ScramSHA512, User: "app", Password: "app-pw"}}
}

// TestSecuredSinkACLs checks that the sink writes over TLS and SCRAM with
// exactly the ACLs the README lists, and that without one of them Open
// fails with an unrecoverable error naming the operation and the resource.
func TestSecuredSinkACLs(t *testing.T) {
	write := "app:Write:Topic:out"
	txn := "app:Write:TransactionalId:sec-txn*"
	for _, c := range []struct {
		name string
		mode kafka.SinkMode
		acls []string
		want string // "" succeeds
	}{
		{"exactly-once", kafka.ExactlyOnce, []string{write, txn}, ""},
		{"exactly-once without Write on the topic", kafka.ExactlyOnce, []string{"app:Describe:Topic:out", txn}, `not authorized to Write Topic "out"`},
		{"exactly-once without the transactional ids", kafka.ExactlyOnce, []string{write}, `not authorized to Write TransactionalId "sec-txn-0-0"`},
		{"at-least-once", kafka.AtLeastOnce, []string{write}, ""},
		{"at-least-once without Write on the topic", kafka.AtLeastOnce, []string{"app:Describe:Topic:out"}, `not authorized to Write Topic "out"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, sec := securedBroker(t, c.acls...)
			newSink, err := kafka.NewSink(kafka.SinkConfig[kafka.Message]{Brokers: []string{b.Addr()}, Security: sec, Topic: "out",
				Mode: c.mode, TransactionalIDPrefix: "sec-txn", Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			s, err := newSink()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.Open(t.Context(), runtime.TaskInfo{Job: "job", Operator: "out", Parallelism: 1}, nil)
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, runtime.ErrUnrecoverable) ||
					!errors.Is(err, kafka.ErrAuthorization) {
					t.Fatalf("Open: %v, want an unrecoverable authorization error with %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Write(t.Context(), kafka.Message{Value: []byte("v")}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.PreCommit(t.Context(), 1); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(t.Context(), 1); err != nil {
				t.Fatal(err)
			}
		})
	}
}
