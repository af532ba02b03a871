package kafkasec_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weirstream/weir/internal/devbroker"
	"github.com/weirstream/weir/internal/kafkasec"
	"github.com/weirstream/weir/internal/testcert"
	"github.com/weirstream/weir/runtime"
)

const secret = "s3cret-c0ffee"

// TestPasswordRedacted checks that no usual way of printing a Config shows
// its password.
func TestPasswordRedacted(t *testing.T) {
	c := kafkasec.Config{SASL: kafkasec.SASL{Mechanism: kafkasec.ScramSHA512, User: "app", Password: secret}}
	var logs strings.Builder
	slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "security", c, "password", c.SASL.Password)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "security", c, "sasl", c.SASL)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		fmt.Sprint(c), fmt.Sprintf("%+v %#v %s %q %x %d", c, c, c.SASL.Password, c.SASL.Password, c.SASL.Password, c.SASL.Password),
		string(js), logs.String(),
	} {
		if strings.Contains(s, secret) || strings.Contains(s, fmt.Sprintf("%x", secret)) {
			t.Errorf("the password shows: %s", s)
		}
	}
	if !strings.Contains(logs.String(), "[REDACTED]") {
		t.Errorf("logs without the redaction mark: %s", logs.String())
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  kafkasec.Config
		want string // "" valid
	}{
		{kafkasec.Config{}, ""},
		{kafkasec.Config{TLS: kafkasec.TLS{Enabled: true}}, ""},
		{kafkasec.Config{TLS: kafkasec.TLS{CertFile: "c.pem"}}, "both a certificate file and a key file"},
		{kafkasec.Config{SASL: kafkasec.SASL{Mechanism: "gssapi", User: "u", Password: "p"}}, `unknown SASL mechanism "gssapi"`},
		{kafkasec.Config{SASL: kafkasec.SASL{Mechanism: kafkasec.Plain, Password: "p"}}, "needs a user"},
		{kafkasec.Config{SASL: kafkasec.SASL{Mechanism: kafkasec.Plain, User: "u"}}, kafkasec.PasswordEnv},
		{kafkasec.Config{SASL: kafkasec.SASL{User: "u", Password: "p"}}, "no mechanism"},
	} {
		err := c.cfg.Validate()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

// TestFlags checks that the password comes from the file or the
// environment, and never from a flag value.
func TestFlags(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	parse := func(args ...string) (kafkasec.Config, error) {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		f := kafkasec.RegisterFlags(fs)
		if fs.Lookup("kafka-sasl-password") != nil {
			t.Fatal("a flag takes the password on the command line")
		}
		if err := fs.Parse(args); err != nil {
			return kafkasec.Config{}, err
		}
		return f.Config()
	}
	c, err := parse("--kafka-tls-ca", "ca.pem", "--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-sasl-user", "app", "--kafka-sasl-password-file", pw)
	if err != nil {
		t.Fatal(err)
	}
	want := kafkasec.Config{TLS: kafkasec.TLS{CAFile: "ca.pem"}, SASL: kafkasec.SASL{Mechanism: kafkasec.ScramSHA256, User: "app", Password: secret}}
	if c != want || !c.TLS.On() {
		t.Errorf("config %+v, want %+v", c, want)
	}
	t.Setenv(kafkasec.PasswordEnv, secret+"-env")
	if c, err = parse("--kafka-sasl-mechanism", "plain", "--kafka-sasl-user", "app"); err != nil || c.SASL.Password != secret+"-env" {
		t.Errorf("password from %s: %v", kafkasec.PasswordEnv, err)
	}
	if _, err = parse("--kafka-sasl-mechanism", "plain", "--kafka-sasl-user", "app", "--kafka-sasl-password-file", pw); err == nil {
		t.Error("both a password file and the environment variable were accepted")
	}
	t.Setenv(kafkasec.PasswordEnv, "")
	if _, err = parse("--kafka-sasl-mechanism", "plain", "--kafka-sasl-user", "app"); err == nil || !strings.Contains(err.Error(), "needs a password") {
		t.Errorf("no password: %v", err)
	}
	if c, err = parse(); err != nil || !c.IsZero() {
		t.Errorf("no flags: %+v, %v", c, err)
	}
}

// TestErrorsAreUnrecoverable checks that the broker's refusals wrap the
// sentinels and runtime.ErrUnrecoverable, and that authorization errors
// name the resource and the operation.
func TestErrorsAreUnrecoverable(t *testing.T) {
	brokers := []string{"b:9092"}
	authz := kafkasec.Authorization(fmt.Errorf("produce: %w", kafkago.TopicAuthorizationFailed), brokers, kafkasec.Topic, "out", kafkasec.Write)
	if !errors.Is(authz, kafkasec.ErrAuthorization) || !errors.Is(authz, runtime.ErrUnrecoverable) || !errors.Is(authz, kafkago.TopicAuthorizationFailed) {
		t.Errorf("authorization error %v does not wrap the sentinels and its cause", authz)
	}
	if msg := authz.Error(); !strings.Contains(msg, `not authorized to Write Topic "out"`) {
		t.Errorf("message %q does not name the operation and the resource", msg)
	}
	authn := kafkasec.Classify(fmt.Errorf("dial: %w", kerr.SaslAuthenticationFailed), brokers)
	if !errors.Is(authn, kafkasec.ErrAuthentication) || !errors.Is(authn, runtime.ErrUnrecoverable) {
		t.Errorf("authentication error %v does not wrap the sentinels", authn)
	}
	other := errors.New("connection refused")
	if got := kafkasec.Authorization(other, brokers, kafkasec.Topic, "out", kafkasec.Write); got != other {
		t.Errorf("a network error was classified: %v", got)
	}
	if err := kafkasec.CheckTopicOperations("in", 1<<8, kafkasec.Read); err == nil || !strings.Contains(err.Error(), `Read Topic "in"`) {
		t.Errorf("Describe without Read: %v", err)
	}
	if err := kafkasec.CheckTopicOperations("in", 1<<8|1<<3, kafkasec.Read); err != nil {
		t.Errorf("Read allowed: %v", err)
	}
	if err := kafkasec.CheckTopicOperations("in", -2147483648, kafkasec.Read); err != nil {
		t.Errorf("no answer (an old broker) is not a refusal: %v", err)
	}
}

// TestAuthenticate checks the probe against a broker with TLS and a SCRAM
// user: the right password passes, a wrong one fails at once with an
// authentication error that does not show the password, and a client
// without the CA fails the TLS handshake.
func TestAuthenticate(t *testing.T) {
	cert := testcert.Write(t, t.TempDir())
	b, err := devbroker.Start(devbroker.Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
		TLSCertFile: cert.Cert, TLSKeyFile: cert.Key,
		Users: []devbroker.User{{Mechanism: kafkasec.ScramSHA512, Name: "app", Password: secret}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	brokers := []string{b.Addr()}
	good := kafkasec.Config{TLS: kafkasec.TLS{CAFile: cert.Cert}, SASL: kafkasec.SASL{Mechanism: kafkasec.ScramSHA512, User: "app", Password: secret}}
	ctx := context.Background()
	if err := good.Authenticate(ctx, brokers, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	bad := good
	bad.SASL.Password = "wrong-" + secret
	noCA := good
	noCA.TLS = kafkasec.TLS{Enabled: true} // the system roots do not know the test CA
	for name, c := range map[string]kafkasec.Config{"wrong password": bad, "unknown CA": noCA} {
		err := c.Authenticate(ctx, brokers, 10*time.Second)
		if !errors.Is(err, kafkasec.ErrAuthentication) || !errors.Is(err, runtime.ErrUnrecoverable) {
			t.Errorf("%s: %v, want an authentication error", name, err)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows the password: %v", name, err)
		}
	}
}
