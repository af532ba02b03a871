package kafkatxn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"syscall"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/weirstream/weir/internal/kafkasec"
)

var (
	// ErrFenced reports that a newer producer with the same transactional id
	// (a higher epoch) exists, or that the coordinator no longer knows the
	// producer id. The Producer is unusable; its open transaction is, or will
	// be, aborted.
	ErrFenced = errors.New("kafkatxn: producer fenced")
	// ErrAborted is returned by ResumeCommit when the coordinator reports
	// that the producer's current epoch has no committable transaction: it
	// was aborted, or never began.
	ErrAborted = errors.New("kafkatxn: transaction aborted or never begun")
	// ErrClosed is returned by the methods of a closed Producer.
	ErrClosed = errors.New("kafkatxn: producer closed")
)

// Producer is a transactional producer for one transactional id. Its methods
// are safe for concurrent use, but transactions are sequential: one
// Produce … Commit/Abort cycle at a time.
type Producer struct {
	cfg    Config
	client *kafka.Client
	owned  bool // close client's transport on Close
	log    *slog.Logger

	mu     sync.Mutex
	pid    int64
	epoch  int16
	added  map[topicPartition]bool  // partitions in the current transaction
	seq    map[topicPartition]int32 // next base sequence per partition
	failed error                    // sticky failure of the current transaction
	fenced bool
	closed bool
	// started is when the current transaction began: just before its first
	// AddPartitionsToTxn, which starts the coordinator's timeout clock.
	// Zero between transactions.
	started time.Time
}

type topicPartition struct {
	topic     string
	partition int32
}

// New returns a Producer for cfg.TransactionalID after finding its
// transaction coordinator and calling InitProducerID, which fences any older
// producer with the same id and aborts the transaction it left open.
func New(ctx context.Context, cfg Config) (*Producer, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client, owned, err := cfg.client()
	if err != nil {
		return nil, err
	}
	p := &Producer{
		cfg:    cfg,
		client: client,
		owned:  owned,
		log:    cfg.Logger.With("transactional_id", cfg.TransactionalID),
	}
	if err := findCoordinator(ctx, &p.cfg, client, p.log); err != nil {
		p.closeClient()
		return nil, fmt.Errorf("kafkatxn: transactional id %q: %w", cfg.TransactionalID, err)
	}
	if err := p.initProducerID(ctx); err != nil {
		p.closeClient()
		return nil, err
	}
	return p, nil
}

func findCoordinator(ctx context.Context, cfg *Config, client *kafka.Client, log *slog.Logger) error {
	// NB: FindCoordinator needs Describe on the transactional id; name
	// Write, which implies it and which every later request needs.
	return cfg.authError(findCoordinatorOnce(ctx, cfg, client, log), kafkasec.Write, "")
}

func findCoordinatorOnce(ctx context.Context, cfg *Config, client *kafka.Client, log *slog.Logger) error {
	return retry(ctx, cfg, log, "find coordinator", func(ctx context.Context) error {
		res, err := client.FindCoordinator(ctx, &kafka.FindCoordinatorRequest{
			Key:     cfg.TransactionalID,
			KeyType: kafka.CoordinatorKeyTypeTransaction,
		})
		if err != nil {
			return err
		}
		if res.Error != nil {
			return res.Error
		}
		log.Debug("kafkatxn: found transaction coordinator",
			"node", res.Coordinator.NodeID, "host", res.Coordinator.Host, "port", res.Coordinator.Port)
		return nil
	})
}

// initProducerID obtains a new epoch (and maybe producer id) for the
// transactional id, resetting the sequence numbers. Callers hold p.mu or own
// p exclusively.
func (p *Producer) initProducerID(ctx context.Context) error {
	// -1/-1: not a KIP-360 epoch bump of a known producer, but a
	// (re)initialization of the transactional id.
	var err error
	p.pid, p.epoch, err = initProducerID(ctx, p.client, &p.cfg, p.log, &kafka.InitProducerIDRequest{
		TransactionalID:      p.cfg.TransactionalID,
		TransactionTimeoutMs: int(p.cfg.TransactionTimeout.Milliseconds()),
		ProducerID:           -1,
		ProducerEpoch:        -1,
	})
	if err != nil {
		return fmt.Errorf("kafkatxn: init producer id for transactional id %q: %w", p.cfg.TransactionalID, err)
	}
	p.added = make(map[topicPartition]bool)
	p.seq = make(map[topicPartition]int32)
	p.started = time.Time{}
	p.failed = nil
	p.log.Debug("kafkatxn: producer initialized", "producer_id", p.pid, "epoch", p.epoch)
	return nil
}

// ProducerID returns the producer id and epoch of the current transaction.
// Together with the transactional id they are what ResumeCommit needs.
func (p *Producer) ProducerID() (id int64, epoch int16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid, p.epoch
}

// TransactionalID returns the producer's transactional id.
func (p *Producer) TransactionalID() string { return p.cfg.TransactionalID }

// TransactionStarted returns when the current transaction began (the zero
// time if none has): the moment its first Produce asked the coordinator to
// add a partition, which is when the coordinator starts counting the
// transaction timeout. It is read before the request is sent, so the
// coordinator's count starts no earlier.
func (p *Producer) TransactionStarted() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started
}

// InTransaction reports whether the current transaction has added any
// partition, that is whether Commit has anything to commit.
func (p *Producer) InTransaction() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.added) > 0
}

func (p *Producer) usable() error {
	switch {
	case p.closed:
		return ErrClosed
	case p.fenced:
		return fmt.Errorf("kafkatxn: transactional id %q (producer %d, epoch %d): %w: %w",
			p.cfg.TransactionalID, p.pid, p.epoch, ErrFenced, p.failed)
	case p.failed != nil:
		return fmt.Errorf("kafkatxn: transactional id %q: transaction failed earlier, abort it: %w",
			p.cfg.TransactionalID, p.failed)
	}
	return nil
}

// Produce appends recs to topic/partition within the current transaction and
// returns once the broker has acknowledged them from all in-sync replicas
// (acks=all). The first Produce to a partition in a transaction adds the
// partition to it. After an error the transaction can only be aborted.
func (p *Producer) Produce(ctx context.Context, topic string, partition int, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.usable(); err != nil {
		return err
	}
	if err := p.addPartitions(ctx, topic, []int32{int32(partition)}); err != nil {
		return err
	}
	tp := topicPartition{topic, int32(partition)}
	var err error
	p.seq[tp], err = p.sendChunks(ctx, tp, p.seq[tp], recs)
	if err != nil {
		return p.wrap("produce to", fmt.Sprintf("%s/%d", topic, partition), err)
	}
	return nil
}

// ProducePartitions appends batches[i] to partition i of topic within the
// current transaction, as Produce does for each partition with records,
// and returns once every batch is acknowledged. The partitions the
// transaction lacks are added in one AddPartitionsToTxn, and the
// partitions' batches are sent concurrently (each partition's in order).
// After an error the transaction can only be aborted.
//
// NB: a sink's pre-commit flushes every partition; one after the other,
// each new partition cost two round trips, and a task's synchronous part of
// a checkpoint after a takeover waited for them (issue 12: 0.2–0.6 s with
// 8 partitions at load 10).
func (p *Producer) ProducePartitions(ctx context.Context, topic string, batches [][]Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.usable(); err != nil {
		return err
	}
	var parts []int32
	for i, recs := range batches {
		if len(recs) > 0 {
			parts = append(parts, int32(i))
		}
	}
	if err := p.addPartitions(ctx, topic, parts); err != nil {
		return err
	}
	seqs, errs := make([]int32, len(parts)), make([]error, len(parts))
	var wg sync.WaitGroup
	for k, i := range parts {
		tp := topicPartition{topic, i}
		base := p.seq[tp]
		// NB: the goroutines read p's fields under the caller's p.mu and
		// write only seqs[k] and errs[k].
		wg.Go(func() { seqs[k], errs[k] = p.sendChunks(ctx, tp, base, batches[i]) })
	}
	wg.Wait()
	var first error
	for k, i := range parts {
		p.seq[topicPartition{topic, i}] = seqs[k]
		if errs[k] != nil && first == nil {
			first = p.wrap("produce to", fmt.Sprintf("%s/%d", topic, i), errs[k])
		}
	}
	return first
}

// addPartitions adds to the current transaction the partitions of topic it
// lacks, in one AddPartitionsToTxn. It fails the transaction on an error.
func (p *Producer) addPartitions(ctx context.Context, topic string, partitions []int32) error {
	var add []int32
	for _, i := range partitions {
		if !p.added[topicPartition{topic, i}] {
			add = append(add, i)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if len(p.added) == 0 && p.started.IsZero() {
		p.started = time.Now()
	}
	if err := p.sendAddPartitions(ctx, topic, add); err != nil {
		return p.wrap("add partitions to transaction", fmt.Sprintf("%s/%v", topic, add), err)
	}
	for _, i := range add {
		p.added[topicPartition{topic, i}] = true
	}
	return nil
}

// sendChunks produces recs to tp in batches of at most MaxBatchBytes, the
// first with sequence number base, and returns the sequence number after
// the last batch the broker acknowledged.
func (p *Producer) sendChunks(ctx context.Context, tp topicPartition, base int32, recs []Record) (int32, error) {
	for len(recs) > 0 {
		n := chunkLen(recs, p.cfg.MaxBatchBytes)
		h := batchHeader{ProducerID: p.pid, ProducerEpoch: p.epoch, BaseSequence: base, Attributes: attrTransactional}
		if err := sendBatch(ctx, &p.cfg, p.client, p.log, tp, h, recs[:n]); err != nil {
			return base, err
		}
		base = nextSequence(base, n)
		recs = recs[n:]
	}
	return base, nil
}

// wrap fails the current transaction with err, from op on where (a topic
// and its partitions), and returns it described.
func (p *Producer) wrap(op, where string, err error) error {
	p.fail(err)
	if isFenced(err) {
		return fmt.Errorf("kafkatxn: %s %s (transactional id %q, producer %d, epoch %d): %w: %w",
			op, where, p.cfg.TransactionalID, p.pid, p.epoch, ErrFenced, err)
	}
	return fmt.Errorf("kafkatxn: %s %s (transactional id %q): %w", op, where, p.cfg.TransactionalID, err)
}

// chunkLen returns how many leading records of recs fit in maxBytes (at
// least one).
func chunkLen(recs []Record, maxBytes int) int {
	size := 0
	for i := range recs {
		size += estimateSize(recs[i : i+1])
		if size > maxBytes && i > 0 {
			return i
		}
	}
	return len(recs)
}

func (p *Producer) fail(err error) {
	if p.failed == nil {
		p.failed = err
	}
	if isFenced(err) {
		p.fenced = true
	}
}

// operationNotAttempted is Kafka's OPERATION_NOT_ATTEMPTED, which kafka-go
// does not name.
const operationNotAttempted = kafka.Error(55)

// sendAddPartitions asks the transaction coordinator to add partitions of
// topic to the current transaction, in one request.
func (p *Producer) sendAddPartitions(ctx context.Context, topic string, partitions []int32) error {
	req := make([]kafka.AddPartitionToTxn, len(partitions))
	for i, part := range partitions {
		req[i].Partition = int(part)
	}
	err := retry(ctx, &p.cfg, p.log, "add partitions to transaction", func(ctx context.Context) error {
		res, err := p.client.AddPartitionsToTxn(ctx, &kafka.AddPartitionsToTxnRequest{
			TransactionalID: p.cfg.TransactionalID,
			ProducerID:      int(p.pid),
			ProducerEpoch:   int(p.epoch),
			Topics:          map[string][]kafka.AddPartitionToTxn{topic: req},
		})
		if err != nil {
			return err
		}
		// NB: a request that failed for one partition is retried whole:
		// adding a partition again is a no-op. The broker answers the
		// others OPERATION_NOT_ATTEMPTED: the error of the one decides.
		got := map[int]error{}
		for _, r := range res.Topics[topic] {
			got[r.Partition] = r.Error
		}
		var notAttempted error
		for _, part := range partitions {
			err, ok := got[int(part)]
			switch {
			case !ok:
				return fmt.Errorf("AddPartitionsToTxn response lacks partition %d", part)
			case errors.Is(err, operationNotAttempted):
				notAttempted = err
			case err != nil:
				return err
			}
		}
		return notAttempted
	})
	return p.cfg.authError(err, kafkasec.Write, topic)
}

// sendBatch produces recs to tp as one record batch with header h and
// acks=all (within cfg.TransactionalID's transaction, if set), retrying
// retriable errors with the same batch: the broker deduplicates it by its
// producer id and sequence.
func sendBatch(ctx context.Context, cfg *Config, client *kafka.Client, log *slog.Logger, tp topicPartition, h batchHeader, recs []Record) error {
	raw := encodeRecordSet(h, recs, time.Now())
	err := retry(ctx, cfg, log, "produce", func(ctx context.Context) error {
		res, err := client.RawProduce(ctx, &kafka.RawProduceRequest{
			Topic:           tp.topic,
			Partition:       int(tp.partition),
			RequiredAcks:    kafka.RequireAll,
			TransactionalID: cfg.TransactionalID,
			RawRecords:      protocol.RawRecordSet{Reader: bytes.NewReader(raw)},
		})
		if err != nil {
			return err
		}
		if res.Error != nil {
			// A retry of a batch the broker already has (the
			// acknowledgement was lost): it is written.
			if errors.Is(res.Error, kafka.DuplicateSequenceNumber) {
				return nil
			}
			return res.Error
		}
		if len(res.RecordErrors) > 0 {
			return fmt.Errorf("broker rejected records (by index in batch): %v", res.RecordErrors)
		}
		return nil
	})
	return cfg.authError(err, kafkasec.Write, tp.topic)
}

// nextSequence adds n to a producer sequence number, wrapping to 0 after
// math.MaxInt32 as the broker does.
func nextSequence(seq int32, n int) int32 {
	return int32((int64(seq) + int64(n)) % (math.MaxInt32 + 1))
}

// Commit commits the current transaction. Committing a transaction that
// added no partition is a no-op.
func (p *Producer) Commit(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.usable(); err != nil {
		return err
	}
	if len(p.added) == 0 {
		return nil
	}
	if err := endTxn(ctx, &p.cfg, p.client, p.log, p.pid, p.epoch, true); err != nil {
		p.fail(err)
		return p.endErr("commit", err)
	}
	p.endTransaction()
	return nil
}

// Abort aborts the current transaction. After a failed Produce, whose batch
// may or may not have been written, Abort re-initializes the producer id
// (bumping the epoch and restarting sequence numbers) instead of sending
// EndTxn, so that the next transaction cannot be mistaken for a retry.
// A fenced producer cannot abort; Abort then returns an error wrapping
// ErrFenced (the coordinator aborted the transaction already).
func (p *Producer) Abort(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return ErrClosed
	case p.fenced:
		return fmt.Errorf("kafkatxn: abort transactional id %q (producer %d, epoch %d): %w: %w",
			p.cfg.TransactionalID, p.pid, p.epoch, ErrFenced, p.failed)
	case p.failed != nil:
		return p.initProducerID(ctx)
	case len(p.added) == 0:
		return nil
	}
	if err := endTxn(ctx, &p.cfg, p.client, p.log, p.pid, p.epoch, false); err != nil {
		p.fail(err)
		return p.endErr("abort", err)
	}
	p.endTransaction()
	return nil
}

// endTransaction forgets the transaction that Commit or Abort ended.
func (p *Producer) endTransaction() {
	clear(p.added)
	p.started = time.Time{}
}

func (p *Producer) endErr(op string, err error) error {
	if isFenced(err) {
		return fmt.Errorf("kafkatxn: %s transactional id %q (producer %d, epoch %d): %w: %w",
			op, p.cfg.TransactionalID, p.pid, p.epoch, ErrFenced, err)
	}
	return fmt.Errorf("kafkatxn: %s transactional id %q (producer %d, epoch %d): %w",
		op, p.cfg.TransactionalID, p.pid, p.epoch, err)
}

// Close releases the producer's connections (unless Config.Client was set).
// It does not end the open transaction: the coordinator aborts it when it
// times out or when the transactional id is initialized again.
func (p *Producer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		p.closeClient()
	}
	return nil
}

func (p *Producer) closeClient() {
	if p.owned {
		CloseClient(p.client)
	}
}

func endTxn(ctx context.Context, cfg *Config, client *kafka.Client, log *slog.Logger, pid int64, epoch int16, commit bool) error {
	err := retry(ctx, cfg, log, "end transaction", func(ctx context.Context) error {
		res, err := client.EndTxn(ctx, &kafka.EndTxnRequest{
			TransactionalID: cfg.TransactionalID,
			ProducerID:      int(pid),
			ProducerEpoch:   int(epoch),
			Committed:       commit,
		})
		if err != nil {
			return err
		}
		return res.Error
	})
	return cfg.authError(err, kafkasec.Write, "")
}

// ResumeCommit commits, after a restart, the transaction that the producer
// with the given id and epoch left open for cfg.TransactionalID. It sends
// EndTxn(commit) without InitProducerID (which would abort it).
//
// It is idempotent: if the transaction is already committed, the coordinator
// still has the same epoch and answers success. If a newer epoch has been
// issued for the transactional id (by a new producer, or by the coordinator
// aborting the transaction on timeout), or the coordinator no longer knows
// the producer id, it returns an error wrapping ErrFenced; if the epoch's
// transaction was aborted, one wrapping ErrAborted. In both cases the
// transaction's data will never be visible.
func ResumeCommit(ctx context.Context, cfg Config, producerID int64, epoch int16) error {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	client, owned, err := cfg.client()
	if err != nil {
		return err
	}
	if owned {
		defer CloseClient(client)
	}
	log := cfg.Logger.With("transactional_id", cfg.TransactionalID, "producer_id", producerID, "epoch", epoch)
	err = endTxn(ctx, &cfg, client, log, producerID, epoch, true)
	if err == nil {
		log.Debug("kafkatxn: resumed commit")
		return nil
	}
	prefix := fmt.Sprintf("kafkatxn: resume commit of transactional id %q (producer %d, epoch %d)",
		cfg.TransactionalID, producerID, epoch)
	switch {
	case errors.Is(err, kafka.InvalidProducerIDMapping):
		return fmt.Errorf("%s: the coordinator does not know the transactional id (it forgets one idle for "+
			"transactional.id.expiration.ms, 7 days by default), so whether the transaction was committed is unknown: %w: %w",
			prefix, ErrFenced, err)
	case isFenced(err):
		return fmt.Errorf("%s: the transaction can no longer be committed: %w: %w", prefix, ErrFenced, err)
	case errors.Is(err, kafka.InvalidTransactionState):
		return fmt.Errorf("%s: %w: %w", prefix, ErrAborted, err)
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

func isFenced(err error) bool {
	return errors.Is(err, ErrFenced) ||
		errors.Is(err, kafka.ProducerFenced) ||
		errors.Is(err, kafka.InvalidProducerEpoch)
}

// retriable reports whether an operation that failed with err may succeed if
// repeated unchanged. Repeating is safe for every operation of this package:
// InitProducerID and AddPartitionsToTxn are idempotent in effect, EndTxn
// succeeds when repeated after it succeeded, and the broker deduplicates a
// repeated produce batch by its sequence number.
func retriable(err error) bool {
	if kafkasec.IsAuthentication(err) {
		return false // a TLS failure can look like a network error
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		switch kerr {
		case kafka.GroupCoordinatorNotAvailable, // COORDINATOR_NOT_AVAILABLE
			kafka.NotCoordinatorForGroup, // NOT_COORDINATOR
			kafka.GroupLoadInProgress,    // COORDINATOR_LOAD_IN_PROGRESS
			kafka.ConcurrentTransactions,
			kafka.UnknownTopicOrPartition,
			kafka.LeaderNotAvailable,
			kafka.NotLeaderForPartition,
			kafka.RequestTimedOut,
			kafka.NetworkException,
			kafka.NotEnoughReplicas,
			kafka.NotEnoughReplicasAfterAppend,
			kafka.KafkaStorageError,
			kafka.FencedLeaderEpoch,
			kafka.UnknownLeaderEpoch,
			kafka.ThrottlingQuotaExceeded:
			return true
		}
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var nerr net.Error
	return errors.As(err, &nerr) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, protocol.ErrNoTopic) ||
		errors.Is(err, protocol.ErrNoPartition) ||
		errors.Is(err, protocol.ErrNoLeader)
}

// retry calls fn until it succeeds, fails with an error that is not
// retriable, ctx ends or cfg.RetryTimeout has passed, backing off
// exponentially from 20ms to 1s between attempts.
func retry(ctx context.Context, cfg *Config, log *slog.Logger, op string, fn func(context.Context) error) error {
	deadline := time.Now().Add(cfg.RetryTimeout)
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || !retriable(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		}
		if time.Now().Add(backoff).After(deadline) {
			return fmt.Errorf("%s: giving up after %d attempts: %w", op, attempt, err)
		}
		log.Debug("kafkatxn: retrying", "op", op, "attempt", attempt, "backoff", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		}
		backoff = min(2*backoff, time.Second)
	}
}

// initProducerID sends req, with retries, and returns the producer id and
// epoch the broker assigned.
func initProducerID(ctx context.Context, client *kafka.Client, cfg *Config, log *slog.Logger, req *kafka.InitProducerIDRequest) (pid int64, epoch int16, err error) {
	err = retry(ctx, cfg, log, "init producer id", func(ctx context.Context) error {
		res, err := client.InitProducerID(ctx, req)
		if err != nil {
			return err
		}
		if res.Error != nil {
			return res.Error
		}
		pid, epoch = int64(res.Producer.ProducerID), int16(res.Producer.ProducerEpoch)
		return nil
	})
	return pid, epoch, cfg.authError(err, kafkasec.Write, "")
}
