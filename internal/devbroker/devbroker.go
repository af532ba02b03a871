// Package devbroker runs a single-node, in-process Kafka-protocol broker for
// development and tests. It is a thin layer over franz-go's kfake: any Kafka
// client (kafka-go, franz-go, the Java client) can produce to and consume from
// it, including idempotent and transactional producers and read_committed
// consumers.
//
// With Users it requires SASL authentication (PLAIN, SCRAM-SHA-256 or
// SCRAM-SHA-512), with TLSCertFile and TLSKeyFile it listens with TLS, and
// with ACLs it authorizes every request of a user who is not a superuser by
// Kafka's rules, so that a least-privilege setup can be rehearsed locally.
//
// It is not a production broker: there is one node, no replication, and with
// DataDir set, records are written through the OS page cache and flushed on
// segment roll and on Close (kfake's default, like Kafka's), so a crash of the
// process can lose the most recent writes. A clean Close keeps everything.
package devbroker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/weirstream/weir/internal/kafkasec"
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
	// DefaultGroupMinSessionTimeout is Kafka's default
	// group.min.session.timeout.ms, and the largest Config accepts.
	DefaultGroupMinSessionTimeout = 6 * time.Second
	// MinGroupMinSessionTimeout bounds Config.GroupMinSessionTimeout from
	// below: a member heartbeats at a third of its session timeout, and
	// shorter than this expels members that are merely busy.
	MinGroupMinSessionTimeout = 100 * time.Millisecond
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
	// GroupMinSessionTimeout is the shortest session timeout a consumer
	// group member may ask for (Kafka's group.min.session.timeout.ms).
	// Default 6s, as Kafka's; set it lower to rehearse a fast failover of a
	// group job (--group-session-timeout below 6s).
	GroupMinSessionTimeout time.Duration
	// Logger receives the broker's logs. kfake's per-request logs are emitted
	// at Debug level. Default slog.Default().
	Logger *slog.Logger

	// Users, if any, are the SASL users: the broker then requires every
	// client to authenticate as one of them.
	Users []User
	// TLSCertFile and TLSKeyFile, if set, are the PEM certificate and key
	// the broker listens with: clients must then connect with TLS.
	TLSCertFile, TLSKeyFile string
	// ACLs, if any, are enforced: a user who is not a superuser may do
	// only what an ACL allows. Without ACLs every authenticated user may do
	// everything.
	//
	// NB: with DataDir, the broker keeps the users' credentials and the
	// ACLs of the start that created the directory, and a later start
	// reloads those instead (kfake's persistence); Start warns.
	ACLs []ACL
}

// User is a SASL user of the broker.
type User struct {
	Mechanism kafkasec.Mechanism // not NoSASL
	Name      string
	Password  kafkasec.Password
	// Superuser bypasses the ACLs.
	Superuser bool
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
	if c.GroupMinSessionTimeout == 0 {
		c.GroupMinSessionTimeout = DefaultGroupMinSessionTimeout
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
	if c.GroupMinSessionTimeout < MinGroupMinSessionTimeout || c.GroupMinSessionTimeout > DefaultGroupMinSessionTimeout {
		return fmt.Errorf("devbroker: group minimum session timeout %v out of range: want %v to %v",
			c.GroupMinSessionTimeout, MinGroupMinSessionTimeout, DefaultGroupMinSessionTimeout)
	}
	return c.validateSecurity()
}

func (c *Config) validateSecurity() error {
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("devbroker: TLS needs both a certificate file and a key file")
	}
	users := map[string]bool{}
	for _, u := range c.Users {
		if u.Mechanism == kafkasec.NoSASL {
			return fmt.Errorf("devbroker: user %q has no SASL mechanism", u.Name)
		}
		if _, err := kafkasec.ParseMechanism(string(u.Mechanism)); err != nil {
			return fmt.Errorf("devbroker: user %q: %w", u.Name, err)
		}
		if u.Name == "" || u.Password == "" {
			return fmt.Errorf("devbroker: a SASL user needs a name and a password (user %q)", u.Name)
		}
		users[u.Name] = true
	}
	for _, a := range c.ACLs {
		if !users[a.User] {
			return fmt.Errorf("devbroker: ACL %s names user %q, who is not a SASL user of the broker", a, a.User)
		}
	}
	return nil
}

// warnPersistedSecurity warns when DataDir holds credentials or ACLs that
// replace the configured ones.
func (c *Config) warnPersistedSecurity() {
	if c.DataDir == "" || (len(c.Users) == 0 && len(c.ACLs) == 0) {
		return
	}
	for _, f := range []string{"sasl.json", "acls.json"} {
		if _, err := os.Stat(filepath.Join(c.DataDir, f)); err == nil {
			c.Logger.Warn("devbroker: the data directory keeps the SASL users and ACLs of its first start, which replace the ones given now; "+
				"start with an empty data directory to change them", "data_dir", c.DataDir)
			return
		}
	}
}

// kfakeSecurity returns the kfake options for the users, ACLs and TLS.
func (c *Config) kfakeSecurity() ([]kfake.Opt, error) {
	var opts []kfake.Opt
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("devbroker: TLS certificate %s, key %s: %w", c.TLSCertFile, c.TLSKeyFile, err)
		}
		opts = append(opts, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	}
	if len(c.Users) > 0 {
		opts = append(opts, kfake.EnableSASL())
	}
	if len(c.ACLs) > 0 {
		opts = append(opts, kfake.EnableACLs())
	}
	for _, u := range c.Users {
		mech, pass := u.Mechanism.ProtocolName(), string(u.Password)
		if u.Superuser || len(c.ACLs) == 0 {
			opts = append(opts, kfake.Superuser(mech, u.Name, pass))
			continue
		}
		var acls []kfake.ACL
		for _, a := range c.ACLs {
			if a.User == u.Name {
				acls = append(acls, a.kfake())
			}
		}
		opts = append(opts, kfake.User(mech, u.Name, pass, acls...))
	}
	return opts, nil
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
		kfake.GroupMinSessionTimeout(cfg.GroupMinSessionTimeout),
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
	sec, err := cfg.kfakeSecurity()
	if err != nil {
		return nil, err
	}
	opts = append(opts, sec...)
	cfg.warnPersistedSecurity()
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("devbroker: start on %s: %w", cfg.Addr, err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) != 1 {
		c.Close()
		return nil, fmt.Errorf("devbroker: expected one listener, got %v", addrs)
	}
	if len(cfg.Users) > 0 {
		if err := listSASLHandshakeV0(c, cfg.TLSCertFile != ""); err != nil {
			c.Close()
			return nil, err
		}
	}
	b := &Broker{cluster: c, addr: addrs[0], log: cfg.Logger}
	b.log.Info("devbroker started", "addr", b.addr, "partitions", cfg.Partitions, "data_dir", cfg.DataDir,
		"transactional_id_expiration", cfg.TransactionalIDExpiration,
		"tls", cfg.TLSCertFile != "", "sasl_users", len(cfg.Users), "acls", len(cfg.ACLs))
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
