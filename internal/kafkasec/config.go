package kafkasec

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kgo"
	kgoplain "github.com/twmb/franz-go/pkg/sasl/plain"
	kgoscram "github.com/twmb/franz-go/pkg/sasl/scram"
)

// Mechanism is a SASL mechanism. The zero value is no SASL.
type Mechanism string

// The supported mechanisms, spelt as the --kafka-sasl-mechanism flag takes
// them.
const (
	NoSASL      Mechanism = ""
	Plain       Mechanism = "plain"
	ScramSHA256 Mechanism = "scram-sha-256"
	ScramSHA512 Mechanism = "scram-sha-512"
)

// ParseMechanism parses a mechanism name, in either case ("PLAIN" or
// "plain"); the empty string is NoSASL.
func ParseMechanism(s string) (Mechanism, error) {
	m := Mechanism(strings.ToLower(strings.TrimSpace(s)))
	switch m {
	case NoSASL, Plain, ScramSHA256, ScramSHA512:
		return m, nil
	}
	return "", fmt.Errorf("kafkasec: unknown SASL mechanism %q: want plain, scram-sha-256 or scram-sha-512", s)
}

// ProtocolName returns the mechanism's name in the Kafka protocol
// ("SCRAM-SHA-256"), as brokers and kfake spell it.
func (m Mechanism) ProtocolName() string { return strings.ToUpper(string(m)) }

// redacted is what a Password prints as.
const redacted = "[REDACTED]"

// Password is a secret. It prints as [REDACTED] through fmt (every verb),
// slog and encoding/json, so that a Config can be logged or served safely;
// convert it to a string only to hand it to the client library.
type Password string

// String implements fmt.Stringer.
func (Password) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (Password) GoString() string { return redacted }

// Format implements fmt.Formatter, so that no verb prints the secret.
func (Password) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue implements slog.LogValuer.
func (Password) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler (and so JSON).
func (Password) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// TLS configures transport encryption. It is on when Enabled is set or any
// file is given.
type TLS struct {
	Enabled bool
	// CAFile is a PEM file of the certificate authorities that sign the
	// brokers' certificates; empty: the system's roots.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and its key, for
	// brokers that authenticate clients by certificate (mutual TLS). Both
	// or neither.
	CertFile, KeyFile string
	// ServerName is the name the brokers' certificates must carry; empty:
	// the host of each broker address dialed.
	ServerName string
}

// On reports whether TLS is used.
func (t TLS) On() bool { return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// SASL configures authentication with a user name and password.
type SASL struct {
	Mechanism Mechanism
	User      string
	Password  Password
}

// Config is the security of a Kafka client. The zero value is plaintext
// without authentication.
type Config struct {
	TLS  TLS
	SASL SASL
}

// IsZero reports whether c is plaintext without authentication.
func (c Config) IsZero() bool { return !c.TLS.On() && c.SASL == SASL{} }

// LogValue implements slog.LogValuer: what is configured, without the
// password.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("tls", c.TLS.On()),
		slog.String("tls_ca", c.TLS.CAFile),
		slog.String("tls_cert", c.TLS.CertFile),
		slog.String("sasl_mechanism", string(c.SASL.Mechanism)),
		slog.String("sasl_user", c.SASL.User))
}

// Validate reports incomplete or contradictory settings. It does not read
// the files; TLSConfig does.
func (c Config) Validate() error {
	var errs []error
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("a client certificate needs both a certificate file and a key file (--kafka-tls-cert and --kafka-tls-key)"))
	}
	if _, err := ParseMechanism(string(c.SASL.Mechanism)); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.SASL.Mechanism == NoSASL && (c.SASL.User != "" || c.SASL.Password != ""):
		errs = append(errs, errors.New("a SASL user or password is set but no mechanism (--kafka-sasl-mechanism plain, scram-sha-256 or scram-sha-512)"))
	case c.SASL.Mechanism != NoSASL && c.SASL.User == "":
		errs = append(errs, fmt.Errorf("SASL %s needs a user (--kafka-sasl-user)", c.SASL.Mechanism))
	case c.SASL.Mechanism != NoSASL && c.SASL.Password == "":
		errs = append(errs, fmt.Errorf("SASL %s needs a password (--kafka-sasl-password-file FILE or the environment variable %s)", c.SASL.Mechanism, PasswordEnv))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kafkasec: invalid config: %w", err)
	}
	return nil
}

// TLSConfig returns the TLS client configuration, or nil when TLS is off.
// It reads the CA and certificate files.
func (c Config) TLSConfig() (*tls.Config, error) {
	if !c.TLS.On() {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLS.ServerName}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafkasec: TLS CA file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafkasec: TLS CA file %s holds no PEM certificate", c.TLS.CAFile)
		}
	}
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafkasec: TLS client certificate %s, key %s: %w", c.TLS.CertFile, c.TLS.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// kafkaGoMechanism returns kafka-go's SASL mechanism, or nil without SASL.
func (c Config) kafkaGoMechanism() (sasl.Mechanism, error) {
	s := c.SASL
	switch s.Mechanism {
	case Plain:
		return plain.Mechanism{Username: s.User, Password: string(s.Password)}, nil
	case ScramSHA256, ScramSHA512:
		algo := scram.SHA256
		if s.Mechanism == ScramSHA512 {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, s.User, string(s.Password))
		if err != nil {
			return nil, fmt.Errorf("kafkasec: SASL %s: %w", s.Mechanism, err)
		}
		return m, nil
	}
	return nil, nil
}

// Transport sets the TLS and SASL settings of a kafka-go Transport (for
// kafka.Client and kafka.Writer).
func (c Config) Transport(t *kafkago.Transport) error {
	if err := c.Validate(); err != nil {
		return err
	}
	tc, err := c.TLSConfig()
	if err != nil {
		return err
	}
	m, err := c.kafkaGoMechanism()
	if err != nil {
		return err
	}
	t.TLS, t.SASL = tc, m
	return nil
}

// KgoOpts returns the franz-go client options for TLS and SASL.
func (c Config) KgoOpts() ([]kgo.Opt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var opts []kgo.Opt
	tc, err := c.TLSConfig()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	s := c.SASL
	switch s.Mechanism {
	case Plain:
		opts = append(opts, kgo.SASL(kgoplain.Auth{User: s.User, Pass: string(s.Password)}.AsMechanism()))
	case ScramSHA256:
		opts = append(opts, kgo.SASL(kgoscram.Auth{User: s.User, Pass: string(s.Password)}.AsSha256Mechanism()))
	case ScramSHA512:
		opts = append(opts, kgo.SASL(kgoscram.Auth{User: s.User, Pass: string(s.Password)}.AsSha512Mechanism()))
	}
	return opts, nil
}
