package devbroker

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/weirstream/weir/internal/kafkasec"
	"github.com/weirstream/weir/internal/testcert"
)

func TestParseACL(t *testing.T) {
	for _, c := range []struct {
		in   string
		want ACL
		err  string
	}{
		{in: "app:Read:Topic:orders", want: ACL{User: "app", Operation: kmsg.ACLOperationRead, ResourceType: kmsg.ACLResourceTypeTopic, Name: "orders"}},
		{in: "app:write:transactional-id:weir-orders*", want: ACL{User: "app", Operation: kmsg.ACLOperationWrite, ResourceType: kmsg.ACLResourceTypeTransactionalId, Name: "weir-orders", Prefixed: true}},
		{in: "app:IdempotentWrite:Cluster", want: ACL{User: "app", Operation: kmsg.ACLOperationIdempotentWrite, ResourceType: kmsg.ACLResourceTypeCluster}},
		{in: "app:Read:Topic:*", want: ACL{User: "app", Operation: kmsg.ACLOperationRead, ResourceType: kmsg.ACLResourceTypeTopic, Name: "*"}},
		{in: "app:Read:Topic", err: "no resource name"},
		{in: "app:Fly:Topic:x", err: `unknown operation "Fly"`},
		{in: "app:Read:Broker:x", err: `unknown resource type "Broker"`},
		{in: ":Read:Topic:x", err: "no user"},
	} {
		got, err := ParseACL(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want an error with %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	path := filepath.Join(t.TempDir(), "acls")
	os.WriteFile(path, []byte("# the orders job\napp:Read:Topic:orders\n\napp:Write:Topic:out\n"), 0o600)
	acls, err := ReadACLFile(path)
	if err != nil || len(acls) != 2 || acls[1].Name != "out" {
		t.Errorf("ACL file: %+v, %v", acls, err)
	}
}

// TestSecurity checks a broker with TLS, a SCRAM user under an ACL and a
// superuser: the user may do what the ACL allows and nothing else, the
// superuser everything.
func TestSecurity(t *testing.T) {
	cert := testcert.Write(t, t.TempDir())
	acl, _ := ParseACL("app:Describe:Topic:allowed")
	b, err := Start(Config{Addr: "127.0.0.1:0", Logger: quietLogger(),
		TLSCertFile: cert.Cert, TLSKeyFile: cert.Key, ACLs: []ACL{acl},
		Users: []User{
			{Mechanism: kafkasec.ScramSHA256, Name: "app", Password: "app-pw"},
			{Mechanism: kafkasec.ScramSHA256, Name: "admin", Password: "admin-pw", Superuser: true},
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, topic := range []string{"allowed", "denied"} {
		if err := b.CreateTopic(topic, 1); err != nil {
			t.Fatal(err)
		}
	}
	describe := func(user, pass string) map[string]error {
		sec := kafkasec.Config{TLS: kafkasec.TLS{CAFile: cert.Cert}}
		tc, err := sec.TLSConfig()
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DialTLSConfig(tc),
			kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		req := kmsg.NewPtrMetadataRequest()
		for _, topic := range []string{"allowed", "denied"} {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(topic)
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(context.Background(), cl)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]error{}
		for _, rt := range resp.Topics {
			out[*rt.Topic] = kerr.ErrorForCode(rt.ErrorCode)
		}
		return out
	}
	got := describe("app", "app-pw")
	if got["allowed"] != nil || !errors.Is(got["denied"], kerr.TopicAuthorizationFailed) {
		t.Errorf("app: %v, want allowed described and denied refused", got)
	}
	if got := describe("admin", "admin-pw"); got["allowed"] != nil || got["denied"] != nil {
		t.Errorf("superuser: %v", got)
	}
}

func TestSecurityConfigErrors(t *testing.T) {
	acl, _ := ParseACL("ghost:Read:Topic:x")
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{TLSCertFile: "c.pem"}, "both a certificate file and a key file"},
		{Config{Users: []User{{Name: "u", Password: "p"}}}, "no SASL mechanism"},
		{Config{Users: []User{{Mechanism: kafkasec.Plain, Name: "u", Password: "p"}}, ACLs: []ACL{acl}}, `names user "ghost"`},
	} {
		c.cfg.EnsureDefaults()
		if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

// TestPersistedSecurityWarns checks that a broker restarted on a data
// directory says that the directory's users and ACLs replace the given ones.
func TestPersistedSecurityWarns(t *testing.T) {
	dir := t.TempDir()
	var logs strings.Builder
	for i := range 2 {
		logs.Reset()
		b, err := Start(Config{Addr: "127.0.0.1:0", DataDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Users: []User{{Mechanism: kafkasec.ScramSHA256, Name: "app", Password: "pw"}}})
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		if warned := strings.Contains(logs.String(), "keeps the SASL users and ACLs of its first start"); warned != (i == 1) {
			t.Errorf("start %d: warned %v:\n%s", i+1, warned, logs.String())
		}
	}
}
