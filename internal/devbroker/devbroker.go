// Package devbroker runs a single-node, in-process Kafka-protocol broker for
// development and tests. It is a thin layer over franz-go's kfake: any Kafka
// client (kafka-go, franz-go, the Java client) can produce to and consume from
// it, including idempotent and transactional producers and read_committed
// consumers.
//
// It is not a production broker: there is one node, no replication, and with
// DataDir set, records are written through the OS page cache and flushed on
// segment roll and on Close (kfake's default, like Kafka's), so a crash of the
// process can lose the most recent writes. A clean Close keeps everything.
package devbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// ErrClosed is returned by methods called after Close.
var ErrClosed = errors.New("devbroker: closed")

const (
	// DefaultTransactionalIDExpiration is Kafka's default
	// transactional.id.expiration.ms.
	DefaultTransactionalIDExpiration = 7 * 24 * time.Hour
	// MinTransactionalIDExpiration and MaxTransactionalIDExpiration bound
	// Config.TransactionalIDExpiration: the broker keeps it in 32-bit
	// milliseconds.
	MinTransactionalIDExpiration = time.Millisecond
	MaxTransactionalIDExpiration = math.MaxInt32 * time.Millisecond
)

// Config configures a Broker. The zero value is valid after EnsureDefaults.
type Config struct {
	// Addr is the host:port to listen on. The default is 127.0.0.1:9092;
	// use port 0 ("127.0.0.1:0") to pick a free port, then ask Broker.Addr.
	// The host is also what the broker advertises to clients in metadata, so
	// it must be an address clients can dial (not 0.0.0.0).
	Addr string
	// Partitions is the partition count of topics created automatically on
	// first use (by a producer's or consumer's metadata request). Default 3.
	Partitions int
	// TransactionalIDExpiration is how long the broker remembers a
	// transactional id that no producer uses (Kafka's
	// transactional.id.expiration.ms). Default 7 days, as Kafka's; set it
	// short to rehearse a job restarted after a long outage.
	TransactionalIDExpiration time.Duration
	// DataDir, if set, makes the broker keep its topics, records, committed
	// offsets and transaction state in this directory and reload them on the
	// next Start with the same DataDir. Empty means in memory only.
	DataDir string
	// Logger receives the broker's logs. kfake's per-request logs are emitted
	// at Debug level. Default slog.Default().
	Logger *slog.Logger
}

// EnsureDefaults fills in zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:9092"
	}
	if c.Partitions == 0 {
		c.Partitions = 3
	}
	if c.TransactionalIDExpiration == 0 {
		c.TransactionalIDExpiration = DefaultTransactionalIDExpiration
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports whether the configuration is usable.
func (c *Config) Validate() error {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("devbroker: addr %q: %w", c.Addr, err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("devbroker: addr %q: the broker advertises its listen host to clients, so it must be dialable; use a concrete address such as 127.0.0.1", c.Addr)
	}
	if c.Partitions < 1 {
		return fmt.Errorf("devbroker: partitions must be at least 1, got %d", c.Partitions)
	}
	if c.TransactionalIDExpiration < MinTransactionalIDExpiration || c.TransactionalIDExpiration > MaxTransactionalIDExpiration {
		return fmt.Errorf("devbroker: transactional id expiration %v out of range: want %v to %v",
			c.TransactionalIDExpiration, MinTransactionalIDExpiration, MaxTransactionalIDExpiration)
	}
	return nil
}

// Broker is a running development broker.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
	log     *slog.Logger

	mu     sync.Mutex
	closed bool
}

// Start starts a broker listening on cfg.Addr. With cfg.DataDir set, it
// reloads the state a previous broker left in that directory.
func Start(cfg Config) (*Broker, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.BrokerConfigs(map[string]string{
			"transactional.id.expiration.ms": strconv.FormatInt(cfg.TransactionalIDExpiration.Milliseconds(), 10),
		}),
		kfake.WithLogger(slogLogger{cfg.Logger}),
		// NB: kfake always listens on 127.0.0.1:<port>; we replace the
		// listen function so that the configured host is honored too.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, cfg.Addr)
		}),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("devbroker: start on %s: %w", cfg.Addr, err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) != 1 {
		c.Close()
		return nil, fmt.Errorf("devbroker: expected one listener, got %v", addrs)
	}
	b := &Broker{cluster: c, addr: addrs[0], log: cfg.Logger}
	b.log.Info("devbroker started", "addr", b.addr, "partitions", cfg.Partitions, "data_dir", cfg.DataDir,
		"transactional_id_expiration", cfg.TransactionalIDExpiration)
	return b, nil
}

// Addr returns the host:port the broker listens on.
func (b *Broker) Addr() string { return b.addr }

// CreateTopic creates a topic with the given number of partitions (the
// configured default if partitions <= 0).
func (b *Broker) CreateTopic(name string, partitions int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if err := b.cluster.CreateTopic(name, int32(partitions), nil); err != nil {
		return fmt.Errorf("devbroker: create topic %q: %w", name, err)
	}
	return nil
}

// Close stops the broker and, with a DataDir, writes its state to disk. It is
// safe to call more than once.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.cluster.Close()
	b.log.Info("devbroker stopped", "addr", b.addr)
	return nil
}

// slogLogger adapts slog to kfake's Logger. kfake logs every request at
// Info; those go to Debug so that a dev broker is quiet by default.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var sl slog.Level
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	case kfake.LogLevelNone:
		return
	default:
		sl = slog.LevelDebug
	}
	ctx := context.Background()
	if !s.l.Enabled(ctx, sl) {
		return
	}
	s.l.Log(ctx, sl, "kfake: "+fmt.Sprintf(format, args...))
}
