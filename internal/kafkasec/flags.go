package kafkasec

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// PasswordEnv is the environment variable that holds the SASL password when
// --kafka-sasl-password-file is not given.
const PasswordEnv = "WEIR_KAFKA_SASL_PASSWORD"

// Flags holds the standard Kafka security flags after RegisterFlags; call
// Config after parsing.
type Flags struct {
	tls                       TLS
	mechanism, user, password string // password: the file name
	getenv                    func(string) string
}

// RegisterFlags binds the standard Kafka security flags to fs: every job
// binary and tool that talks to Kafka registers them through here, so they
// are spelt and documented alike everywhere.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{getenv: os.Getenv}
	fs.BoolVar(&f.tls.Enabled, "kafka-tls", false, "connect to Kafka over TLS (implied by the other --kafka-tls-* flags); the system's roots verify the brokers unless --kafka-tls-ca")
	fs.StringVar(&f.tls.CAFile, "kafka-tls-ca", "", "PEM `file` of the certificate authorities of the brokers' certificates")
	fs.StringVar(&f.tls.CertFile, "kafka-tls-cert", "", "PEM `file` of a client certificate, for brokers that require one (with --kafka-tls-key)")
	fs.StringVar(&f.tls.KeyFile, "kafka-tls-key", "", "PEM `file` of the client certificate's private key")
	fs.StringVar(&f.tls.ServerName, "kafka-tls-server-name", "", "`name` the brokers' certificates must carry (default: the host of each broker address)")
	fs.StringVar(&f.mechanism, "kafka-sasl-mechanism", "", "SASL `mechanism`: plain, scram-sha-256 or scram-sha-512 (default: no SASL)")
	fs.StringVar(&f.user, "kafka-sasl-user", "", "SASL `user`")
	fs.StringVar(&f.password, "kafka-sasl-password-file", "", "`file` holding the SASL password (one line); default: the environment variable "+PasswordEnv)
	return f
}

// Config returns the parsed configuration, reading the password from
// --kafka-sasl-password-file or the environment, and validates it.
func (f *Flags) Config() (Config, error) {
	m, err := ParseMechanism(f.mechanism)
	if err != nil {
		return Config{}, fmt.Errorf("--kafka-sasl-mechanism: %w", err)
	}
	c := Config{TLS: f.tls, SASL: SASL{Mechanism: m, User: f.user}}
	env := f.getenv(PasswordEnv)
	switch {
	case f.password != "" && env != "":
		return Config{}, fmt.Errorf("kafkasec: both --kafka-sasl-password-file and %s are set: keep one", PasswordEnv)
	case f.password != "":
		b, err := os.ReadFile(f.password)
		if err != nil {
			return Config{}, fmt.Errorf("kafkasec: --kafka-sasl-password-file: %w", err)
		}
		// A file ends with a newline; a password does not.
		c.SASL.Password = Password(strings.TrimRight(string(b), "\r\n"))
		if c.SASL.Password == "" {
			return Config{}, fmt.Errorf("kafkasec: --kafka-sasl-password-file %s is empty", f.password)
		}
	case m != NoSASL:
		c.SASL.Password = Password(env)
	}
	if m == NoSASL && c.SASL.Password != "" {
		return Config{}, errors.New("kafkasec: a SASL password is given but no --kafka-sasl-mechanism")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}
