package kafka

import (
	"flag"
	"log/slog"

	"github.com/weirstream/weir/internal/kafkasec"
)

// Security is the TLS and SASL configuration of a Kafka client: the
// connections of the source (its reader and its dead-letter writer) and of
// the sink. The zero value is plaintext without authentication. A job that
// reads and writes the same cluster fills one Security and gives it to both
// SourceConfig and SinkConfig.
type Security struct {
	TLS  TLS
	SASL SASL
}

// TLS configures transport encryption. It is on when Enabled is set or any
// file is given.
type TLS = kafkasec.TLS

// SASL configures authentication with a user name and password.
type SASL = kafkasec.SASL

// Mechanism is a SASL mechanism. The zero value is no SASL.
type Mechanism = kafkasec.Mechanism

// Password is a secret. It prints as [REDACTED] through fmt (every verb),
// slog and encoding/json, so that a Security can be logged or served safely.
type Password = kafkasec.Password

// The supported SASL mechanisms, spelt as the --kafka-sasl-mechanism flag
// takes them.
const (
	NoSASL      = kafkasec.NoSASL
	Plain       = kafkasec.Plain
	ScramSHA256 = kafkasec.ScramSHA256
	ScramSHA512 = kafkasec.ScramSHA512
)

// PasswordEnv is the environment variable that holds the SASL password when
// --kafka-sasl-password-file is not given.
const PasswordEnv = kafkasec.PasswordEnv

// ParseMechanism parses a mechanism name, in either case ("PLAIN" or
// "plain"); the empty string is NoSASL.
func ParseMechanism(s string) (Mechanism, error) { return kafkasec.ParseMechanism(s) }

var (
	// ErrAuthentication is wrapped by the errors of a failed
	// authentication: a rejected user or password, an unsupported SASL
	// mechanism, a failed TLS handshake. Such errors wrap
	// runtime.ErrUnrecoverable too: no restart makes a password right.
	ErrAuthentication = kafkasec.ErrAuthentication
	// ErrAuthorization is wrapped by the errors of a request the broker
	// refused for lack of an ACL (see AuthorizationError). Such errors wrap
	// runtime.ErrUnrecoverable too.
	ErrAuthorization = kafkasec.ErrAuthorization
)

// AuthenticationError is a failed authentication. It wraps
// ErrAuthentication and runtime.ErrUnrecoverable.
type AuthenticationError = kafkasec.AuthenticationError

// AuthorizationError is a request the broker refused for lack of an ACL; it
// names the resource and the operation the job's principal lacks. It wraps
// ErrAuthorization and runtime.ErrUnrecoverable.
type AuthorizationError = kafkasec.AuthorizationError

// config is s as the internal clients take it.
func (s Security) config() kafkasec.Config { return kafkasec.Config(s) }

// Validate reports a configuration that cannot work: a mechanism without a
// user or password, a certificate without its key, unreadable files.
func (s Security) Validate() error { return s.config().Validate() }

// IsZero reports whether s is plaintext without authentication.
func (s Security) IsZero() bool { return s.config().IsZero() }

// LogValue implements slog.LogValuer: what is configured, without the
// password.
func (s Security) LogValue() slog.Value { return s.config().LogValue() }

// SecurityFlags holds the standard Kafka security flags after
// RegisterSecurityFlags; call Security after parsing.
type SecurityFlags struct{ f *kafkasec.Flags }

// RegisterSecurityFlags binds the standard Kafka security flags to fs
// (--kafka-tls, --kafka-tls-ca, --kafka-tls-cert, --kafka-tls-key,
// --kafka-tls-server-name, --kafka-sasl-mechanism, --kafka-sasl-user,
// --kafka-sasl-password-file): every job binary and tool that talks to Kafka
// registers them through here, so they are spelt and documented alike
// everywhere. The password is never a flag value, so it never shows in a
// process list: it comes from the file or from PasswordEnv.
func RegisterSecurityFlags(fs *flag.FlagSet) *SecurityFlags {
	return &SecurityFlags{f: kafkasec.RegisterFlags(fs)}
}

// Security returns the parsed configuration, reading the password from
// --kafka-sasl-password-file or the environment, and validates it.
func (f *SecurityFlags) Security() (Security, error) {
	c, err := f.f.Config()
	return Security(c), err
}
