// Package kafkatest runs an in-process Kafka broker for examples, demos and
// tests, as net/http/httptest runs an HTTP server: a job under test reads
// from and writes to it through the ordinary kafka source and sink, with
// transactions and read_committed consumers, and nothing needs installing.
//
//	b, err := kafkatest.Start(kafkatest.Config{})
//	if err != nil { … }
//	defer b.Close()
//	err = b.Produce(ctx, "orders", kafka.Message{Key: []byte("o-1"), Value: []byte(`{"amount":3}`)})
//	// kafka.SourceConfig{Brokers: b.Brokers(), Topics: []string{"orders"}, …}
//
// The broker is franz-go's kfake behind weir's development broker (the one
// `weir broker` runs): a single node, no replication, records in memory. It
// is not a production broker.
package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/internal/devbroker"
)

// ErrClosed is returned by CreateTopic after Close.
var ErrClosed = errors.New("kafkatest: broker closed")

// Config configures a Broker. The zero value is a broker on a free port of
// 127.0.0.1 whose topics have 3 partitions.
type Config struct {
	// Addr is the host:port to listen on; default "127.0.0.1:0", a free
	// port (ask Broker.Addr). The host is advertised to clients, so it
	// must be dialable (not 0.0.0.0).
	Addr string
	// Partitions is the partition count of topics created on first use
	// (by a producer's or consumer's metadata request); default 3.
	Partitions int
	// Logger receives the broker's warnings and errors; default
	// slog.Default(). Per-request logs are at Debug level.
	Logger *slog.Logger
}

// Broker is a running in-process broker.
type Broker struct {
	b *devbroker.Broker
}

// Start starts a broker.
func Start(cfg Config) (*Broker, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	b, err := devbroker.Start(devbroker.Config{Addr: cfg.Addr, Partitions: cfg.Partitions, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("kafkatest: %w", err)
	}
	return &Broker{b: b}, nil
}

// Addr returns the host:port the broker listens on.
func (b *Broker) Addr() string { return b.b.Addr() }

// Brokers returns the bootstrap addresses for a kafka.SourceConfig or
// kafka.SinkConfig: the broker's address alone.
func (b *Broker) Brokers() []string { return []string{b.b.Addr()} }

// CreateTopic creates a topic with the given number of partitions (the
// configured default if partitions <= 0).
func (b *Broker) CreateTopic(name string, partitions int) error {
	switch err := b.b.CreateTopic(name, partitions); {
	case errors.Is(err, devbroker.ErrClosed):
		return fmt.Errorf("create topic %q: %w", name, ErrClosed)
	case err != nil:
		return fmt.Errorf("kafkatest: %w", err)
	}
	return nil
}

// Produce writes msgs to topic, creating it if it is missing, and returns
// when the broker has acknowledged them all. A message with a key goes to
// the partition of its key's hash (kafka-go's Hash balancer), so equal keys
// share a partition; one without a key to any partition.
func (b *Broker) Produce(ctx context.Context, topic string, msgs ...kafka.Message) error {
	w := &kafkago.Writer{
		Addr:                   kafkago.TCP(b.Addr()),
		Topic:                  topic,
		Balancer:               &kafkago.Hash{},
		RequiredAcks:           kafkago.RequireAll,
		AllowAutoTopicCreation: true,
		BatchSize:              1000,
		BatchTimeout:           time.Millisecond,
	}
	out := make([]kafkago.Message, len(msgs))
	for i, m := range msgs {
		out[i] = kafkago.Message{Key: m.Key, Value: m.Value, Time: m.Time}
		for _, h := range m.Headers {
			out[i].Headers = append(out[i].Headers, kafkago.Header{Key: h.Key, Value: h.Value})
		}
	}
	err := w.WriteMessages(ctx, out...)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("kafkatest: produce to topic %q: %w", topic, err)
	}
	return nil
}

// Close stops the broker. It is safe to call more than once.
func (b *Broker) Close() error {
	return b.b.Close()
}
