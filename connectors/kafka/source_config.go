package kafka

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Record is a Kafka record as handed to a Deserializer. Key, Value and header
// values may alias the source's fetch buffers only for the duration of the
// Deserializer call; copy them if the decoded value keeps them.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Time      time.Time
}

// StartFrom says where a partition is read from when the source starts
// without restored state for it. The zero value is Earliest.
type StartFrom struct {
	kind startKind
	ts   time.Time
}

type startKind uint8

const (
	startEarliest startKind = iota
	startLatest
	startTimestamp
)

var (
	// Earliest starts at the first record still retained.
	Earliest = StartFrom{kind: startEarliest}
	// Latest starts after the last record present when the source opens
	// (the last stable offset under read_committed).
	Latest = StartFrom{kind: startLatest}
)

// Timestamp starts at the first record whose timestamp is at or after t, or at
// the end of the partition if there is none.
func Timestamp(t time.Time) StartFrom { return StartFrom{kind: startTimestamp, ts: t} }

// String implements fmt.Stringer.
func (s StartFrom) String() string {
	switch s.kind {
	case startLatest:
		return "latest"
	case startTimestamp:
		return "timestamp " + s.ts.UTC().Format(time.RFC3339Nano)
	default:
		return "earliest"
	}
}

// Isolation is the transactional isolation level of reads. The zero value is
// ReadCommitted.
type Isolation uint8

const (
	// ReadCommitted emits only records of committed transactions (and
	// non-transactional records), holding back open transactions.
	ReadCommitted Isolation = iota
	// ReadUncommitted emits every record, including those of open and
	// aborted transactions.
	ReadUncommitted
)

// DecodeErrorPolicy says what to do with a record the Deserializer rejects.
// The zero value is Fail.
type DecodeErrorPolicy uint8

const (
	// Fail makes Read return a *DecodeError naming the topic, partition and
	// offset of the record.
	Fail DecodeErrorPolicy = iota
	// Skip drops the record.
	Skip
	// DeadLetter writes the raw record to SourceConfig.DeadLetterTopic and counts
	// it. Writes are acknowledged by all in-sync replicas before Read
	// returns, so a checkpoint never covers a record that was neither
	// emitted nor dead-lettered. After a restore, records read after the
	// checkpoint may be dead-lettered again: the dead-letter topic is
	// at-least-once.
	DeadLetter
)

// SourceMode says whether the source ends.
type SourceMode uint8

const (
	// Unbounded reads forever; Read returns with nothing emitted when no
	// data arrives within about 100 ms.
	Unbounded SourceMode = iota
	// StopAtEnd captures, at the job's first start, the end of every
	// assigned partition (the last stable offset under read_committed, else
	// the high watermark), emits the records before it, then returns
	// runtime.ErrEndOfInput. The ends are kept in the snapshot, so a
	// restored source stops where an uninterrupted one would: records and
	// partitions added after the first start are not read.
	StopAtEnd
)

// SourceConfig configures a Kafka source.
type SourceConfig[T any] struct {
	// Brokers are the bootstrap brokers, host:port.
	Brokers []string
	// Security is the TLS and SASL configuration of the connections to
	// the brokers (the dead-letter writer's too). The zero value is
	// plaintext without authentication. The source needs Read and
	// Describe on Topics, and Write and Describe on DeadLetterTopic; it
	// uses no consumer group. See the README ("Kafka security").
	Security Security
	// Topics are read in full: every partition of every topic.
	Topics []string
	// StartFrom applies to the partitions found at the job's first start
	// (Open without restored state). Default Earliest. Every partition found
	// later (added to a topic while the job runs or since the checkpoint
	// being restored, or of a topic added to Topics) is read from its
	// earliest offset: everything in it is new to the job.
	StartFrom StartFrom
	// Isolation defaults to ReadCommitted.
	Isolation Isolation
	// Deserializer turns a record into a stream element. Required unless
	// DecodeValue is set.
	Deserializer func(Record) (T, error)
	// DecodeValue, instead of Deserializer, turns the value of a record
	// into a stream element, ignoring its key and headers. Its argument is
	// valid only during the call. The method value state.JSON[T]().Decode
	// is such a function.
	DecodeValue func(value []byte) (T, error)
	// OnDecodeError defaults to Fail.
	OnDecodeError DecodeErrorPolicy
	// DeadLetterTopic receives rejected records when OnDecodeError is
	// DeadLetter. The record keeps its key, value and headers and gains the
	// headers weir.source.topic, weir.source.partition, weir.source.offset
	// and weir.decode.error. It is created on first use if the broker
	// allows automatic topic creation.
	DeadLetterTopic string
	// Mode defaults to Unbounded.
	Mode SourceMode

	// MaxWait bounds how long a Read waits for data. Default 100 ms.
	MaxWait time.Duration
	// MaxBytesPerRead bounds the bytes one Read fetches from each broker,
	// and so the work between two barriers. Default 1 MiB; the broker
	// returns at least one record batch whatever the bound.
	MaxBytesPerRead int32
	// DialTimeout bounds connecting to a broker. Default 5 s.
	DialTimeout time.Duration
	// RetryTimeout is how long Read keeps retrying a broker that cannot be
	// reached or whose partitions have no leader before it returns an
	// error. Default 30 s.
	RetryTimeout time.Duration
	// PartitionDiscoveryInterval is how often an Unbounded source asks the
	// brokers for the partitions of Topics, so that it reads partitions
	// added while it runs; it reads them from their earliest offset, so the
	// interval delays their records but loses none. Default 10 s: one
	// metadata request for the configured topics per subtask, which costs
	// the brokers little. A StopAtEnd source does not discover: its input is
	// what existed when the job first started.
	PartitionDiscoveryInterval time.Duration
	// CommitGroup, if set, is a consumer group to which every subtask
	// commits, once a checkpoint is complete, the offsets of its partitions
	// that the checkpoint holds, so that lag tools (kafka-consumer-groups
	// --describe, kcat, Burrow, a lag exporter) show how far the job is.
	// The group only reports: weir keeps its offsets in its checkpoints and
	// restores from them, never from the group, so the group's offsets lag
	// behind the job by up to a checkpoint interval and a failed commit is
	// logged, not fatal. The source commits as a simple consumer (no
	// members, generation -1): use a group no consumer joins. Empty (the
	// default): no commits.
	CommitGroup string

	// byIndex makes subtask i read partition i of every topic whatever
	// TaskInfo.Group says: an exchange's source (Cluster.Exchange).
	byIndex bool
	// purge makes CheckpointComplete delete the records of the subtask's
	// partitions below the offsets the checkpoint holds (DeleteRecords):
	// an exchange's source, whose partitions no one else reads and whose
	// topic the broker never cleans up by time (repartitionConfigs).
	purge bool
}

// EnsureDefaults fills zero tuning fields with their defaults.
func (c *SourceConfig[T]) EnsureDefaults() {
	if c.MaxWait == 0 {
		c.MaxWait = 100 * time.Millisecond
	}
	if c.MaxBytesPerRead == 0 {
		c.MaxBytesPerRead = 1 << 20
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.RetryTimeout == 0 {
		c.RetryTimeout = 30 * time.Second
	}
	if c.PartitionDiscoveryInterval == 0 {
		c.PartitionDiscoveryInterval = 10 * time.Second
	}
}

// topicErrors reports a missing, empty or repeated topic name; none is
// reported as none.
func topicErrors(topics []string, none string) []error {
	if len(topics) == 0 {
		return []error{errors.New(none)}
	}
	var errs []error
	seen := map[string]bool{}
	for _, t := range topics {
		if t == "" {
			errs = append(errs, errors.New("empty topic name"))
		} else if seen[t] {
			errs = append(errs, fmt.Errorf("topic %q listed twice", t))
		}
		seen[t] = true
	}
	return errs
}

// Validate reports configuration errors.
func (c *SourceConfig[T]) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	errs = append(errs, topicErrors(c.Topics, "no topics")...)
	if c.Deserializer == nil && c.DecodeValue == nil {
		errs = append(errs, errors.New("no Deserializer or DecodeValue"))
	}
	if c.Deserializer != nil && c.DecodeValue != nil {
		errs = append(errs, errors.New("set Deserializer or DecodeValue, not both"))
	}
	if c.StartFrom.kind > startTimestamp {
		errs = append(errs, errors.New("invalid start position"))
	}
	if c.Isolation > ReadUncommitted {
		errs = append(errs, fmt.Errorf("invalid isolation %d", c.Isolation))
	}
	switch c.OnDecodeError {
	case Fail, Skip:
		if c.DeadLetterTopic != "" {
			errs = append(errs, errors.New("dead-letter topic set but OnDecodeError is not DeadLetter"))
		}
	case DeadLetter:
		if c.DeadLetterTopic == "" {
			errs = append(errs, errors.New("OnDecodeError is DeadLetter but no dead-letter topic"))
		}
		if slices.Contains(c.Topics, c.DeadLetterTopic) {
			errs = append(errs, fmt.Errorf("dead-letter topic %q is also a source topic", c.DeadLetterTopic))
		}
	default:
		errs = append(errs, fmt.Errorf("invalid decode error policy %d", c.OnDecodeError))
	}
	if err := c.Security.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Mode > StopAtEnd {
		errs = append(errs, fmt.Errorf("invalid mode %d", c.Mode))
	}
	if c.MaxWait < 0 || c.MaxBytesPerRead < 0 || c.DialTimeout < 0 || c.RetryTimeout < 0 || c.PartitionDiscoveryInterval < 0 {
		errs = append(errs, errors.New("negative timeout or size"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kafka source: invalid config: %w", err)
	}
	return nil
}

// DecodeError is returned by Read under the Fail policy.
type DecodeError struct {
	Topic     string
	Partition int32
	Offset    int64
	Err       error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("kafka source: decode record %s/%d at offset %d: %v", e.Topic, e.Partition, e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }
