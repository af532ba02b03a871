package kafkatxn

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/weirstream/weir/internal/kafkasec"
)

// Defaults applied by Config.EnsureDefaults.
const (
	DefaultTransactionTimeout = 60 * time.Second
	DefaultRequestTimeout     = 30 * time.Second
	DefaultRetryTimeout       = 30 * time.Second
	DefaultMaxBatchBytes      = 512 << 10
)

// Config configures a Producer (and ResumeCommit).
type Config struct {
	// Brokers are the bootstrap broker addresses (host:port). Required unless
	// Client is set.
	Brokers []string
	// Client, when set, is used instead of a client built from Brokers. It
	// lets many producers share one kafka.Transport (connections and
	// metadata). It must have Addr set. The Producer does not close it.
	Client *kafka.Client
	// Security is the TLS and SASL configuration of the client built from
	// Brokers (unused with Client, which carries its own).
	Security kafkasec.Config

	// TransactionalID identifies the producer across restarts. Required by
	// New and ResumeCommit; NewIdempotent requires it empty.
	TransactionalID string
	// TransactionTimeout is how long the coordinator lets a transaction stay
	// open before aborting it on its own. Default 60s. The broker rejects
	// values above its transaction.max.timeout.ms (15 minutes by default).
	TransactionTimeout time.Duration

	// RequestTimeout bounds each request to a broker. Default 30s.
	RequestTimeout time.Duration
	// RetryTimeout bounds the time spent retrying retriable errors
	// (coordinator moving or loading, concurrent transactions, leader
	// changes, network errors) of one operation. Default 30s. The context
	// passed to an operation bounds it as well.
	RetryTimeout time.Duration
	// MaxBatchBytes is a soft limit on the encoded size of one produce
	// request; Produce splits larger record slices. Default 512 KiB.
	MaxBatchBytes int

	// Logger receives debug and warning messages. Default slog.Default().
	Logger *slog.Logger
}

// EnsureDefaults fills in the zero fields that have defaults and returns cfg.
func (cfg *Config) EnsureDefaults() *Config {
	if cfg.TransactionTimeout == 0 {
		cfg.TransactionTimeout = DefaultTransactionTimeout
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.RetryTimeout == 0 {
		cfg.RetryTimeout = DefaultRetryTimeout
	}
	if cfg.MaxBatchBytes == 0 {
		cfg.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

// Validate reports the invalid fields of a Config for a transactional
// Producer or ResumeCommit, on which EnsureDefaults has run.
func (cfg *Config) Validate() error { return cfg.validate(true) }

// validate reports the invalid fields of a Config for a transactional or an
// idempotent producer.
func (cfg *Config) validate(transactional bool) error {
	var errs []error
	switch {
	case transactional && cfg.TransactionalID == "":
		errs = append(errs, errors.New("TransactionalID is required"))
	case !transactional && cfg.TransactionalID != "":
		errs = append(errs, fmt.Errorf("TransactionalID %q must be empty for an idempotent producer", cfg.TransactionalID))
	}
	if cfg.Client == nil && len(cfg.Brokers) == 0 {
		errs = append(errs, errors.New("Brokers is required when Client is nil"))
	}
	if cfg.Client != nil && cfg.Client.Addr == nil {
		errs = append(errs, errors.New("Client.Addr is required"))
	}
	if err := cfg.Security.Validate(); err != nil {
		errs = append(errs, err)
	}
	if cfg.TransactionTimeout < time.Millisecond || cfg.TransactionTimeout.Milliseconds() > 1<<31-1 {
		errs = append(errs, fmt.Errorf("TransactionTimeout %v out of range", cfg.TransactionTimeout))
	}
	if cfg.RequestTimeout < 0 || cfg.RetryTimeout < 0 {
		errs = append(errs, errors.New("RequestTimeout and RetryTimeout must not be negative"))
	}
	if cfg.MaxBatchBytes < 0 {
		errs = append(errs, errors.New("MaxBatchBytes must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kafkatxn: invalid config: %w", err)
	}
	return nil
}

// client returns the configured client or a new one with its own transport;
// owned reports whether the caller must close the transport.
func (cfg *Config) client() (c *kafka.Client, owned bool, err error) {
	if cfg.Client != nil {
		return cfg.Client, false, nil
	}
	c, err = NewClient(cfg.Brokers, cfg.RequestTimeout, cfg.Security)
	return c, true, err
}

// NewClient returns a kafka.Client with its own transport, secured by sec,
// suitable for Config.Client. Close its transport with CloseClient.
func NewClient(brokers []string, requestTimeout time.Duration, sec kafkasec.Config) (*kafka.Client, error) {
	t := &kafka.Transport{ClientID: "weir-kafkatxn"}
	if err := sec.Transport(t); err != nil {
		return nil, fmt.Errorf("kafkatxn: %w", err)
	}
	return &kafka.Client{
		Addr:      kafka.TCP(brokers...),
		Timeout:   requestTimeout,
		Transport: t,
	}, nil
}

// authError turns a refusal of the broker into a kafkasec error naming the
// missing ACL (see kafkasec.AuthorizationError): txnOp is the operation on
// the transactional id the request needs, topic the topic it writes, if
// any. Other errors are returned as kafkasec.Classify does.
func (cfg *Config) authError(err error, txnOp, topic string) error {
	brokers := cfg.Brokers
	if cfg.Client != nil && cfg.Client.Addr != nil {
		brokers = []string{cfg.Client.Addr.String()}
	}
	switch {
	case errors.Is(err, kafka.TransactionalIDAuthorizationFailed):
		return kafkasec.Authorization(err, brokers, kafkasec.TransactionalID, cfg.TransactionalID, txnOp)
	case errors.Is(err, kafka.TopicAuthorizationFailed):
		return kafkasec.Authorization(err, brokers, kafkasec.Topic, topic, kafkasec.Write)
	case errors.Is(err, kafka.ClusterAuthorizationFailed):
		// InitProducerID without a transactional id: Kafka needs
		// IdempotentWrite on the cluster (or, since 3.0, Write on any
		// topic).
		return kafkasec.Authorization(err, brokers, kafkasec.Cluster, "kafka-cluster", kafkasec.IdempotentWrite)
	}
	return kafkasec.Classify(err, brokers)
}

// CloseClient closes the idle connections of a client made by NewClient.
func CloseClient(c *kafka.Client) {
	if t, ok := c.Transport.(*kafka.Transport); ok {
		t.CloseIdleConnections()
	}
}
