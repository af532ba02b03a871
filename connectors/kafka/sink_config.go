package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/internal/kafkatxn"
)

// SinkMode selects the delivery guarantee of the sink.
type SinkMode int

const (
	// ExactlyOnce writes each epoch in a Kafka transaction committed when
	// its checkpoint completes. It is the default.
	ExactlyOnce SinkMode = iota
	// AtLeastOnce writes with acks=all, asynchronously, and waits at each
	// checkpoint until everything written is acknowledged; records written
	// after the last completed checkpoint are written again after a
	// failure.
	AtLeastOnce
)

func (m SinkMode) String() string {
	switch m {
	case ExactlyOnce:
		return "exactly-once"
	case AtLeastOnce:
		return "at-least-once"
	}
	return fmt.Sprintf("SinkMode(%d)", int(m))
}

// Header is a Kafka record header, of the records the source reads and the
// sink writes.
type Header = kafkatxn.Header

// Message is what the sink writes for one stream record.
type Message struct {
	Key     []byte // nil: no key, partitioned round robin
	Value   []byte
	Headers []Header
	Time    time.Time // zero: the time of writing
}

// Partitioner returns the partition, in [0, numPartitions), of a message
// with the given key. A Partitioner set in a Config shared by all subtasks
// must be safe for concurrent use.
type Partitioner func(key []byte, numPartitions int) int

var (
	// ErrFenced wraps the errors that report a producer or a promised
	// transaction fenced by a newer producer epoch (see the package
	// documentation, "The sink: recovery").
	ErrFenced = kafkatxn.ErrFenced
	// ErrAborted wraps the errors that report a promised transaction the
	// broker aborted.
	ErrAborted = kafkatxn.ErrAborted
	// ErrTooManyPending is returned by Write when too many transactions of
	// failed checkpoints are still pending to start a new one. The record
	// is not written and the sink fails from then on: the job must restore
	// from its latest checkpoint.
	ErrTooManyPending = errors.New("kafka sink: too many pre-committed transactions awaiting their checkpoint")
)

// Defaults applied by SinkConfig.EnsureDefaults.
const (
	DefaultTransactionTimeout  = 15 * time.Minute
	DefaultExpectedRestartTime = 60 * time.Second
	DefaultPoolSize            = 6
	DefaultBatchSize           = 1000
	DefaultRequestTimeout      = 30 * time.Second
	DefaultMaxInFlightBytes    = 16 << 20
	minPoolSize                = 4
)

// SinkConfig configures a sink of records of type T.
type SinkConfig[T any] struct {
	// Brokers are the bootstrap broker addresses (host:port). Required.
	Brokers []string
	// Security is the TLS and SASL configuration of the connections to
	// the brokers. The zero value is plaintext without authentication.
	// See the README ("Kafka security") for the ACLs the sink needs: Write
	// and Describe on Topic, and in exactly-once mode Write and Describe on
	// the transactional ids (prefix TransactionalIDPrefix); in
	// at-least-once mode IdempotentWrite on the cluster unless the broker
	// (Kafka 3.0+) accepts Write on the topic for it.
	Security Security
	// Topic is the topic written to. Required. If it does not exist, the
	// sink asks the broker to create it, which brokers with
	// auto.create.topics.enable (and the development broker) do.
	Topic string
	// Mode is ExactlyOnce (the default) or AtLeastOnce.
	Mode SinkMode

	// Encode turns a record into a Message. Required unless T is Message
	// or EncodeValue is set.
	Encode func(T) (Message, error)
	// EncodeValue, instead of Encode, turns a record into the value of a
	// message without key or headers (partitioned round robin): it appends
	// the value to dst and returns the extended slice, or an error. The
	// sink passes the free end of its own buffers as dst, which saves an
	// allocation or more per record. The method value
	// state.JSON[T]().Encode is such a function.
	EncodeValue func(dst []byte, rec T) ([]byte, error)
	// Partitioner picks the partition of each message. Default: murmur2 of
	// the key, as Kafka's Java client does, or round robin for a nil key.
	Partitioner Partitioner

	// TransactionalIDPrefix prefixes the transactional ids of the sink; it
	// must be unique to the sink and stable across restarts of the job.
	// Required in ExactlyOnce mode.
	TransactionalIDPrefix string
	// TransactionTimeout is how long the broker keeps a transaction open
	// before aborting it. Default 15 minutes, the broker's default maximum.
	// It must exceed ExpectedRestartTime.
	TransactionTimeout time.Duration
	// ExpectedRestartTime is the time the job takes to restart after a
	// failure (default 60s). Open warns when TransactionTimeout is less
	// than three times the sum of the job's checkpoint interval (from
	// runtime.TaskInfo) and ExpectedRestartTime. A checkpoint is declined
	// (see the package documentation) when less than ExpectedRestartTime
	// would be left to commit its transactions before TransactionTimeout
	// aborts them.
	ExpectedRestartTime time.Duration
	// PoolSize is the number of transactional ids per subtask, at least 4.
	// At least PoolSize-4 checkpoints in a row may fail before Write
	// reports ErrTooManyPending. Default 6. Do not shrink it across a
	// restore.
	PoolSize int

	// BatchSize is the number of records buffered per partition before they
	// are sent. Default 1000.
	BatchSize int
	// MaxInFlightBytes bounds, in AtLeastOnce mode, the records a subtask
	// has written and the broker not yet acknowledged, buffered or sent, by
	// their encoded size: Write blocks while it is reached. The sink's
	// memory for them is a small multiple of it. Default 16 MiB.
	// (ExactlyOnce mode sends synchronously and holds at most BatchSize
	// records per partition.)
	MaxInFlightBytes int
	// RequestTimeout bounds each request to a broker. Default 30s.
	RequestTimeout time.Duration
	// Logger overrides the logger given by the runtime in TaskInfo.
	Logger *slog.Logger

	// The fields of an exchange's sink (Cluster.Exchange).
	// newEncoder, if set, makes each sink's encoder (with buffers of its
	// own) in place of Encode.
	newEncoder func() func(T) (Message, error)
	// route, if set, picks each record's partition in place of the
	// Partitioner: the receiving task.
	route func(T) int
	// groupNamed says TransactionalIDPrefix names the group already, so
	// group mode does not add it to the transactional ids.
	groupNamed bool
}

// EnsureDefaults fills in the zero fields that have defaults and returns cfg.
func (cfg *SinkConfig[T]) EnsureDefaults() *SinkConfig[T] {
	if cfg.TransactionTimeout == 0 {
		cfg.TransactionTimeout = DefaultTransactionTimeout
	}
	if cfg.ExpectedRestartTime == 0 {
		cfg.ExpectedRestartTime = DefaultExpectedRestartTime
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = DefaultPoolSize
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxInFlightBytes == 0 {
		cfg.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	return cfg
}

// Validate reports the invalid fields of a Config on which EnsureDefaults
// has run.
func (cfg *SinkConfig[T]) Validate() error {
	var errs []error
	if len(cfg.Brokers) == 0 {
		errs = append(errs, errors.New("Brokers is required"))
	}
	if cfg.Topic == "" {
		errs = append(errs, errors.New("Topic is required"))
	}
	if cfg.Encode != nil && cfg.EncodeValue != nil {
		errs = append(errs, errors.New("set Encode or EncodeValue, not both"))
	}
	if cfg.Encode == nil && cfg.EncodeValue == nil && cfg.newEncoder == nil {
		var zero T
		if _, ok := any(zero).(Message); !ok {
			errs = append(errs, fmt.Errorf("Encode or EncodeValue is required for records of type %T", zero))
		}
	}
	switch cfg.Mode {
	case ExactlyOnce:
		if cfg.TransactionalIDPrefix == "" {
			errs = append(errs, errors.New("TransactionalIDPrefix is required in exactly-once mode"))
		}
		if cfg.PoolSize < minPoolSize {
			errs = append(errs, fmt.Errorf("PoolSize %d is below %d", cfg.PoolSize, minPoolSize))
		}
		if cfg.TransactionTimeout < time.Second || cfg.TransactionTimeout.Milliseconds() > 1<<31-1 {
			errs = append(errs, fmt.Errorf("TransactionTimeout %v out of range", cfg.TransactionTimeout))
		}
		if cfg.TransactionTimeout <= cfg.ExpectedRestartTime {
			errs = append(errs, fmt.Errorf("TransactionTimeout %v must exceed ExpectedRestartTime %v, the time kept to commit a checkpoint's transactions after a restart",
				cfg.TransactionTimeout, cfg.ExpectedRestartTime))
		}
	case AtLeastOnce:
	default:
		errs = append(errs, fmt.Errorf("unknown %v", cfg.Mode))
	}
	if cfg.BatchSize < 1 {
		errs = append(errs, errors.New("BatchSize must be positive"))
	}
	if cfg.MaxInFlightBytes < 1 {
		errs = append(errs, fmt.Errorf("MaxInFlightBytes %d must be positive", cfg.MaxInFlightBytes))
	}
	if cfg.ExpectedRestartTime < 0 || cfg.RequestTimeout < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if err := cfg.Security.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kafka sink: invalid config: %w", err)
	}
	return nil
}

// encoder returns cfg.Encode, cfg.EncodeValue made into an encoder, or the
// identity when T is Message. NB: it is called once per sink instance, and
// the encoder of EncodeValue owns a buffer: it is not safe for concurrent use.
func (cfg *SinkConfig[T]) encoder() func(T) (Message, error) {
	if cfg.Encode != nil {
		return cfg.Encode
	}
	if cfg.EncodeValue != nil {
		return valueEncoder(cfg.EncodeValue)
	}
	if cfg.newEncoder != nil {
		return cfg.newEncoder()
	}
	return func(rec T) (Message, error) { return any(rec).(Message), nil }
}

// HashPartitioner returns the default partitioner: murmur2 of the key modulo
// the number of partitions (the partition Kafka's Java client picks), and
// round robin, starting at start, for nil keys. It is safe for concurrent
// use.
func HashPartitioner(start int) Partitioner {
	var next atomic.Uint64
	next.Store(uint64(max(start, 0)))
	return func(key []byte, n int) int {
		if key == nil {
			return int((next.Add(1) - 1) % uint64(n))
		}
		return int((murmur2(key) & 0x7fffffff) % uint32(n))
	}
}

// murmur2 is the hash of Kafka's Java partitioner.
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := binary.LittleEndian.Uint32(data[i:])
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// Values encoded by EncodeValue are appended to buffers of valueBuffer
// bytes, a new one when less than minValueRoom is left. A value is never
// overwritten, so it lives as long as the message that refers to it, and a
// buffer is garbage once all its messages are sent. NB: a value allocated
// apart costs several allocations a record (append grows it from nil); in
// benchmarks/cmd/kafka's JSON mode the buffers took the CPU time of a
// record from 2.38 to 2.06 µs.
const (
	valueBuffer  = 64 << 10
	minValueRoom = 1 << 10
)

// valueArena hands out the free ends of buffers of valueBuffer bytes, a new
// one when less than minValueRoom is left; what keep returns is never
// overwritten.
type valueArena struct{ free []byte }

// room returns an empty slice to append a value to.
func (a *valueArena) room() []byte {
	if cap(a.free) < minValueRoom {
		a.free = make([]byte, 0, valueBuffer)
	}
	return a.free[:0]
}

// keep keeps v, appended to what room returned, out of later rooms.
func (a *valueArena) keep(v []byte) []byte {
	a.free = v[len(v):]
	return v[:len(v):len(v)]
}

// valueEncoder returns an encoder of messages whose values encode appends
// to its buffers.
func valueEncoder[T any](encode func(dst []byte, rec T) ([]byte, error)) func(T) (Message, error) {
	var a valueArena
	return func(rec T) (Message, error) {
		v, err := encode(a.room(), rec)
		if err != nil {
			return Message{}, err
		}
		return Message{Value: a.keep(v)}, nil
	}
}
