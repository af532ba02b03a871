package kafkatxn

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"

	kafka "github.com/segmentio/kafka-go"
)

// IdempotentProducer produces records without transactions, as Kafka's
// idempotent producer does: NewIdempotent obtains a producer id from
// InitProducerID without a transactional id, and every batch carries it and
// a per-partition sequence number, so the broker writes a batch once however
// often Produce resends it after a lost acknowledgement or connection.
//
// Produce calls for different partitions may run concurrently, each on its
// own connection; calls for one partition run one at a time, and the caller
// orders them. After a failed Produce the producer is unusable: whether the
// failed batch was written is unknown, so no later batch may take its
// sequence numbers.
type IdempotentProducer struct {
	cfg    Config
	client *kafka.Client
	owned  bool // close client's transport on Close
	log    *slog.Logger
	pid    int64
	epoch  int16

	mu     sync.Mutex
	seqs   map[topicPartition]*partitionSeq
	failed error // the first failed Produce
	closed bool
}

// partitionSeq is the next base sequence of a partition; its lock keeps one
// Produce at a time in the partition.
type partitionSeq struct {
	mu  sync.Mutex
	seq int32
}

// NewIdempotent returns an IdempotentProducer after obtaining a producer id.
// cfg.TransactionalID and cfg.TransactionTimeout are not used; the first
// must be empty.
func NewIdempotent(ctx context.Context, cfg Config) (*IdempotentProducer, error) {
	cfg.EnsureDefaults()
	if err := cfg.validate(false); err != nil {
		return nil, err
	}
	client, owned, err := cfg.client()
	if err != nil {
		return nil, err
	}
	p := &IdempotentProducer{
		cfg:    cfg,
		client: client,
		owned:  owned,
		log:    cfg.Logger,
		seqs:   make(map[topicPartition]*partitionSeq),
	}
	// NB: kafka-go routes InitProducerID to the coordinator of its
	// (here empty) transactional id, a broker like any other; every broker
	// allocates producer ids.
	p.pid, p.epoch, err = initProducerID(ctx, client, &p.cfg, p.log, &kafka.InitProducerIDRequest{
		TransactionTimeoutMs: math.MaxInt32, // what Kafka's Java producer sends without a transactional id
		ProducerID:           -1,
		ProducerEpoch:        -1,
	})
	if err != nil {
		p.closeClient()
		return nil, fmt.Errorf("kafkatxn: init idempotent producer id: %w", err)
	}
	p.log = p.log.With("producer_id", p.pid)
	p.log.Debug("kafkatxn: idempotent producer initialized", "epoch", p.epoch)
	return p, nil
}

// ProducerID returns the producer id and epoch stamped on every batch.
func (p *IdempotentProducer) ProducerID() (id int64, epoch int16) { return p.pid, p.epoch }

// Produce appends recs to topic/partition and returns once the broker has
// acknowledged them from all in-sync replicas (acks=all). It sends them in
// batches of at most Config.MaxBatchBytes, one after another.
func (p *IdempotentProducer) Produce(ctx context.Context, topic string, partition int, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	tp := topicPartition{topic, int32(partition)}
	ps, err := p.partition(tp)
	if err != nil {
		return err
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for len(recs) > 0 {
		// NB: checked under the partition's lock: a call that waited
		// for a failed one must not reuse its sequence numbers.
		if err := p.usable(); err != nil {
			return err
		}
		n := chunkLen(recs, p.cfg.MaxBatchBytes)
		h := batchHeader{ProducerID: p.pid, ProducerEpoch: p.epoch, BaseSequence: ps.seq}
		if err := sendBatch(ctx, &p.cfg, p.client, p.log, tp, h, recs[:n]); err != nil {
			err = fmt.Errorf("kafkatxn: produce to %s/%d (idempotent producer %d): %w", topic, partition, p.pid, err)
			p.fail(err)
			return err
		}
		ps.seq = nextSequence(ps.seq, n)
		recs = recs[n:]
	}
	return nil
}

// partition returns the sequence state of tp, once the producer is usable.
func (p *IdempotentProducer) partition(tp topicPartition) (*partitionSeq, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.usableLocked(); err != nil {
		return nil, err
	}
	ps := p.seqs[tp]
	if ps == nil {
		ps = &partitionSeq{}
		p.seqs[tp] = ps
	}
	return ps, nil
}

func (p *IdempotentProducer) usable() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.usableLocked()
}

func (p *IdempotentProducer) usableLocked() error {
	switch {
	case p.closed:
		return ErrClosed
	case p.failed != nil:
		return fmt.Errorf("kafkatxn: idempotent producer %d failed earlier: %w", p.pid, p.failed)
	}
	return nil
}

func (p *IdempotentProducer) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed == nil {
		p.failed = err
	}
}

// Close releases the producer's connections (unless Config.Client was set).
// Produce calls in progress fail, or finish, as their context says.
func (p *IdempotentProducer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		p.closeClient()
	}
	return nil
}

func (p *IdempotentProducer) closeClient() {
	if p.owned {
		CloseClient(p.client)
	}
}
