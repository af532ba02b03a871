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

// TestSecuredSourceACLs checks that the source reads over TLS and
// SCRAM-SHA-256 with Read on its topic (and Write on its dead-letter topic),
// and that without them Open fails with an unrecoverable error naming the
// operation and the topic, before anything is read.
func TestSecuredSourceACLs(t *testing.T) {
	for _, c := range []struct {
		name string
		acls []string
		want string // "" succeeds
	}{
		{"all granted", []string{"app:Read:Topic:in", "app:Write:Topic:dead"}, ""},
		{"no ACL on the topic", []string{"app:Write:Topic:dead"}, `not authorized to Read Topic "in"`},
		{"Describe but not Read", []string{"app:Describe:Topic:in", "app:Write:Topic:dead"}, `not authorized to Read Topic "in"`},
		{"no Write on the dead-letter topic", []string{"app:Read:Topic:in", "app:Describe:Topic:dead"}, `not authorized to Write Topic "dead"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			cert := testcert.Write(t, t.TempDir())
			cfg := devbroker.Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
				TLSCertFile: cert.Cert, TLSKeyFile: cert.Key,
				Users: []devbroker.User{{Mechanism: kafka.ScramSHA256, Name: "app", Password: "app-pw"}}}
			for _, rule := range c.acls {
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
			defer b.Close()
			for _, topic := range []string{"in", "dead"} {
				if err := b.CreateTopic(topic, 1); err != nil {
					t.Fatal(err)
				}
			}
			newSource, err := kafka.NewSource(kafka.SourceConfig[kafka.Record]{Brokers: []string{b.Addr()}, Topics: []string{"in"},
				Security: kafka.Security{TLS: kafka.TLS{CAFile: cert.Cert},
					SASL: kafka.SASL{Mechanism: kafka.ScramSHA256, User: "app", Password: "app-pw"}},
				Deserializer:  func(r kafka.Record) (kafka.Record, error) { return r, nil },
				OnDecodeError: kafka.DeadLetter, DeadLetterTopic: "dead", Mode: kafka.StopAtEnd})
			if err != nil {
				t.Fatal(err)
			}
			src, err := newSource()
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			err = src.Open(t.Context(), runtime.TaskInfo{Job: "job", Operator: "in", Parallelism: 1, Logger: slog.New(slog.DiscardHandler)}, nil)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, runtime.ErrUnrecoverable) {
				t.Errorf("Open: %v, want an unrecoverable error with %q", err, c.want)
			}
		})
	}
}
