package kafka

import (
	"context"
	"errors"
	"fmt"
	"github.com/weirstream/weir/state"
	"log/slog"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"

	"github.com/weirstream/weir/internal/kafkasec"
	"github.com/weirstream/weir/internal/kafkatxn"
	"github.com/weirstream/weir/runtime"
)

// sink writes the records of one subtask to a Kafka topic; the runtime
// creates one per subtask through NewSink's factory and calls it from one
// goroutine.
type sink[T any] struct {
	cfg    SinkConfig[T]
	encode func(T) (Message, error)

	log        *slog.Logger
	client     *kafkago.Client
	part       Partitioner
	partitions int
	w          writer
	err        error     // sticky: the sink is broken and must be recovered
	promises   *promises // exactly-once only: see CheckPromise
	txns       txnCounts
	info       runtime.TaskInfo
	tp         runtime.Sink[T] // runtime.NewTwoPhaseSink over (*txnWriter[T])(s)
	recovered  bool            // exactly-once: Recover succeeded, Open is done
}

// txnWriter is the sink as the runtime.TwoPhaseWriter that its
// runtime.Sink methods drive through runtime.NewTwoPhaseSink, which keeps
// the pending transactions in the checkpoint.
type txnWriter[T any] sink[T]

var _ runtime.TwoPhaseWriter[Message, pendingTxn] = (*txnWriter[Message])(nil)

var _ runtime.Sink[Message] = (*sink[Message])(nil)

// writer is what a mode implements.
type writer interface {
	write(ctx context.Context, partition int, m Message) error
	preCommit(ctx context.Context, checkpointID uint64) ([]pendingTxn, error)
	commit(ctx context.Context, checkpointID uint64, txns []runtime.Committable[pendingTxn]) error
	close()
}

// NewSink validates cfg and returns the sink factory for runtime.To.
func NewSink[T any](cfg SinkConfig[T]) (runtime.SinkFactory[T], error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return func() (runtime.Sink[T], error) {
		s := &sink[T]{cfg: cfg, encode: cfg.encoder()}
		if cfg.Mode == ExactlyOnce {
			// NB: the runtime's own two-phase sink, not s wrapping it:
			// the runtime rescales only the sinks NewTwoPhaseSink built
			// (it completes the old subtasks' transactions); wrapped, a
			// restart with another parallelism was refused.
			return s.twoPhase(), nil
		}
		return s, nil
	}, nil
}

// twoPhase returns the exactly-once sink: runtime.NewTwoPhaseSink over s,
// which keeps the pending transactions in the checkpoint.
func (s *sink[T]) twoPhase() runtime.Sink[T] {
	return runtime.NewTwoPhaseSink[T, pendingTxn]((*txnWriter[T])(s), state.JSON[pendingTxn]())
}

// Open connects to the cluster and, in exactly-once mode, finishes what the
// restored state promises: it commits the transactions pre-committed at the
// restored checkpoint and aborts every other transaction of the subtask's
// transactional ids (see the package documentation).
func (s *sink[T]) Open(ctx context.Context, info runtime.TaskInfo, restored []byte) error {
	if s.w != nil {
		return errors.New("kafka sink: already open")
	}
	s.tp = s.twoPhase()
	if s.cfg.Mode == AtLeastOnce {
		s.tp = atLeastOnceSink[T]{(*txnWriter[T])(s)}
	}
	if err := s.tp.Open(ctx, info, restored); err != nil {
		s.Close()
		return fmt.Errorf("kafka sink: open subtask %d of %q: %w", info.Subtask, s.cfg.Topic, err)
	}
	return nil
}

// Open connects and makes the mode's writer; Recover finishes what Open
// started. If either fails, or a commit in between (of what the restored
// state promised), the sink is closed: the runtime does not close a sink
// whose Open failed.
func (w *txnWriter[T]) Open(ctx context.Context, info runtime.TaskInfo) error {
	s := (*sink[T])(w)
	if s.w != nil {
		return errors.New("kafka sink: already open")
	}
	return s.closeIfFailed(w.connect(ctx, info))
}

func (w *txnWriter[T]) connect(ctx context.Context, info runtime.TaskInfo) error {
	s := (*sink[T])(w)
	log := s.cfg.Logger
	if log == nil {
		log = info.Logger
	}
	if log == nil {
		log = slog.Default()
	}
	s.info = info
	s.log = log.With("job", info.Job, "operator", info.Operator, "subtask", info.Subtask,
		"topic", s.cfg.Topic, "mode", s.cfg.Mode.String())
	s.part = s.cfg.Partitioner
	if s.part == nil {
		s.part = HashPartitioner(info.Subtask)
	}
	client, err := kafkatxn.NewClient(s.cfg.Brokers, s.cfg.RequestTimeout, s.cfg.Security.config())
	if err != nil {
		return err
	}
	s.client = client
	return s.open(ctx, info)
}

// Recover (exactly-once mode only) fences the subtask's transactional ids
// that the restored state does not list.
func (w *txnWriter[T]) Recover(ctx context.Context, r runtime.Recovery[pendingTxn]) error {
	s := (*sink[T])(w)
	err := s.closeIfFailed(s.w.(*exactlyOnce).recover(ctx, r, s.info.RestoredCommitted))
	s.recovered = err == nil
	return err
}

// closeIfFailed closes the sink if err is not nil, and returns err.
func (s *sink[T]) closeIfFailed(err error) error {
	if err != nil {
		s.Close()
	}
	return err
}

func (s *sink[T]) open(ctx context.Context, info runtime.TaskInfo) error {
	// Authenticate, and check that the job may write the topic, before
	// anything else: a wrong password or a missing ACL fails the job at
	// Open, at once, naming what is wrong.
	if err := s.cfg.Security.config().CheckTopics(ctx, s.cfg.Brokers, s.cfg.RequestTimeout, kafkasec.Write, s.cfg.Topic); err != nil {
		return err
	}
	n, err := s.topicPartitions(ctx)
	if err != nil {
		return err
	}
	s.partitions = n

	switch s.cfg.Mode {
	case AtLeastOnce:
		prod, err := kafkatxn.NewIdempotent(ctx, kafkatxn.Config{
			Client:         s.client,
			RequestTimeout: s.cfg.RequestTimeout,
			Logger:         s.log,
		})
		if err != nil {
			return err
		}
		s.w = newAtLeastOnce(s.cfg.Topic, prod, s.partitions, s.cfg.BatchSize, s.cfg.MaxInFlightBytes)
		return nil
	}

	s.warnTimeouts(info.CheckpointInterval)
	s.promises = newPromises(s.cfg.TransactionTimeout, s.cfg.ExpectedRestartTime)
	w := &exactlyOnce{
		topic:    s.cfg.Topic,
		client:   s.client,
		log:      s.log,
		timeout:  s.cfg.TransactionTimeout,
		reqTO:    s.cfg.RequestTimeout,
		batch:    s.cfg.BatchSize,
		bufs:     make([][]kafkatxn.Record, s.partitions),
		txns:     &s.txns,
		promises: s.promises,
	}
	pool := func(epoch uint64) []string {
		base := s.txidBase(info, epoch)
		ids := make([]string, s.cfg.PoolSize)
		for i := range ids {
			ids[i] = fmt.Sprintf("%s-%d", base, i)
		}
		return ids
	}
	for i, txid := range pool(info.Epoch) {
		w.slots = append(w.slots, &slot{index: i, txid: txid})
	}
	for _, e := range info.PriorEpochs {
		w.prior = append(w.prior, pool(e)...)
	}
	s.w = w
	return nil
}

// txidBase returns what the transactional ids of the subtask's pool in
// the task's epoch start with: <TransactionalIDPrefix>-<subtask>, and in
// group mode <TransactionalIDPrefix>-<group>-<task>-e<epoch> (the task is
// the subtask), so that jobs of several groups sharing a broker and a
// prefix do not fence each other. A task runs in one epoch at a time, so
// the ids are unique across the group's processes; they are per epoch
// because an older owner still running (it has not yet learnt that it
// lost the task) initializes its ids again at each checkpoint epoch, and
// with ids shared across epochs that fences the new owner's, aborting
// transactions of checkpoints it completed. The new owner fences the
// older epochs' ids instead (see exactlyOnce.recover).
func (s *sink[T]) txidBase(info runtime.TaskInfo, epoch uint64) string {
	switch {
	case info.Group == "":
		return fmt.Sprintf("%s-%d", s.cfg.TransactionalIDPrefix, info.Subtask)
	case s.cfg.groupNamed:
		return fmt.Sprintf("%s-%d-e%d", s.cfg.TransactionalIDPrefix, info.Subtask, epoch)
	}
	return fmt.Sprintf("%s-%s-%d-e%d", s.cfg.TransactionalIDPrefix, info.Group, info.Subtask, epoch)
}

// topicPartitions returns the number of partitions of the topic. Like
// Kafka's own producers, it asks the broker to create a missing topic (with
// the broker's default partition count), which brokers with
// auto.create.topics.enable do; the error of one that does not says how to
// create the topic.
func (s *sink[T]) topicPartitions(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	backoff := 50 * time.Millisecond
	for {
		// NB: kafka-go's Client.Metadata cannot ask for auto-creation, and
		// answers from its cache.
		res, err := s.client.Transport.RoundTrip(ctx, s.client.Addr, &metadataAPI.Request{
			TopicNames:             []string{s.cfg.Topic},
			AllowAutoTopicCreation: true,
		})
		if err != nil {
			return 0, fmt.Errorf("metadata of topic %q: %w", s.cfg.Topic, kafkasec.Classify(err, s.cfg.Brokers))
		}
		var t metadataAPI.ResponseTopic
		for _, rt := range res.(*metadataAPI.Response).Topics {
			if rt.Name == s.cfg.Topic {
				t = rt
			}
		}
		terr := kafkago.Error(t.ErrorCode)
		switch {
		case terr == kafkago.TopicAuthorizationFailed:
			return 0, kafkasec.Authorization(terr, s.cfg.Brokers, kafkasec.Topic, s.cfg.Topic, kafkasec.Write) // Write implies Describe
		case t.ErrorCode == 0 && len(t.Partitions) > 0:
			return len(t.Partitions), nil
		case terr == kafkago.UnknownTopicOrPartition:
			return 0, fmt.Errorf("topic %q does not exist and the broker did not create it (its auto.create.topics.enable is off): "+
				"create it first, for example with kafka-topics.sh --bootstrap-server %s --create --topic %s --partitions N "+
				"(the development broker, 'weir broker', creates topics on first use): %w",
				s.cfg.Topic, s.cfg.Brokers[0], s.cfg.Topic, terr)
		case t.ErrorCode != 0 && terr != kafkago.LeaderNotAvailable:
			return 0, fmt.Errorf("metadata of topic %q: %w", s.cfg.Topic, terr)
		}
		// Just created (LEADER_NOT_AVAILABLE, or no partitions yet): a
		// broker creates topics asynchronously.
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("metadata of topic %q: no partitions with a leader yet: %w", s.cfg.Topic, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// warnTimeouts warns when transactions risk reaching the timeout before
// their checkpoint completes, which declines the checkpoint (see
// CheckPromise) and fails the job. interval is the job's checkpoint interval
// (runtime.TaskInfo.CheckpointInterval); zero, in a TaskInfo not built by
// the runtime, means unknown and only ExpectedRestartTime counts.
func (s *sink[T]) warnTimeouts(interval time.Duration) {
	need := 3 * (interval + s.cfg.ExpectedRestartTime)
	if s.cfg.TransactionTimeout < need {
		s.log.Warn("kafka sink: TransactionTimeout is less than 3×(CheckpointInterval+ExpectedRestartTime); "+
			"a checkpoint whose transactions come within ExpectedRestartTime of the timeout is declined, and the job fails",
			"transaction_timeout", s.cfg.TransactionTimeout,
			"checkpoint_interval", interval,
			"expected_restart_time", s.cfg.ExpectedRestartTime,
			"recommended_at_least", need)
	}
}

// Write encodes rec and buffers it for its partition, sending the buffer
// when it holds BatchSize records. In at-least-once mode it blocks while
// MaxInFlightBytes of records are unacknowledged.
func (s *sink[T]) Write(ctx context.Context, rec T) error {
	if s.tp == nil {
		return errors.New("kafka sink: not open")
	}
	return s.tp.Write(ctx, rec)
}

func (w *txnWriter[T]) Write(ctx context.Context, rec T) error {
	s := (*sink[T])(w)
	if err := s.usable(); err != nil {
		return err
	}
	if err := s.promises.err(); err != nil {
		return err
	}
	m, err := s.encode(rec)
	if err != nil {
		return fmt.Errorf("kafka sink: encode record for %q: %w", s.cfg.Topic, err)
	}
	var p int
	if s.cfg.route != nil {
		p = s.cfg.route(rec)
	} else {
		p = s.part(m.Key, s.partitions)
	}
	if p < 0 || p >= s.partitions {
		return fmt.Errorf("kafka sink: partitioner returned %d for %d partitions of %q", p, s.partitions, s.cfg.Topic)
	}
	// NB: every write error is sticky, ErrTooManyPending too: the record was
	// not written, so no later checkpoint of this sink may complete.
	return s.fail(s.w.write(ctx, p, m))
}

// PreCommit sends every buffered record and waits for the acknowledgements.
// In exactly-once mode the state lists the transactions that Commit (or,
// after a failure, Open) must commit.
func (s *sink[T]) PreCommit(ctx context.Context, checkpointID uint64) ([]byte, error) {
	if s.tp == nil {
		return nil, errors.New("kafka sink: not open")
	}
	return s.tp.PreCommit(ctx, checkpointID)
}

func (w *txnWriter[T]) Prepare(ctx context.Context, checkpointID uint64, _ bool) ([]pendingTxn, []byte, error) {
	s := (*sink[T])(w)
	if err := s.usable(); err != nil {
		return nil, nil, err
	}
	if err := s.promises.err(); err != nil {
		return nil, nil, err
	}
	txns, err := s.w.preCommit(ctx, checkpointID)
	return txns, nil, s.fail(err)
}

// Commit commits every transaction pre-committed at or before checkpointID.
// It is idempotent.
func (s *sink[T]) Commit(ctx context.Context, checkpointID uint64) error {
	if s.tp == nil {
		return errors.New("kafka sink: not open")
	}
	return s.tp.Commit(ctx, checkpointID)
}

func (w *txnWriter[T]) Commit(ctx context.Context, checkpointID uint64, txns []runtime.Committable[pendingTxn]) error {
	s := (*sink[T])(w)
	if err := s.usable(); err != nil {
		return err
	}
	err := s.fail(s.w.commit(ctx, checkpointID, txns))
	if !s.recovered {
		return s.closeIfFailed(err) // a commit of Open's
	}
	return err
}

func (w *txnWriter[T]) Close() error { return (*sink[T])(w).Close() }

// atLeastOnceSink drives the writer in at-least-once mode, which has
// nothing to commit and keeps no state.
type atLeastOnceSink[T any] struct{ w *txnWriter[T] }

func (a atLeastOnceSink[T]) Open(ctx context.Context, info runtime.TaskInfo, restored []byte) error {
	if err := a.w.Open(ctx, info); err != nil {
		return err
	}
	if len(restored) != 0 {
		a.w.log.Warn("kafka sink: ignoring restored state in at-least-once mode", "bytes", len(restored))
	}
	return nil
}
func (a atLeastOnceSink[T]) Write(ctx context.Context, rec T) error { return a.w.Write(ctx, rec) }
func (a atLeastOnceSink[T]) PreCommit(ctx context.Context, id uint64) ([]byte, error) {
	_, _, err := a.w.Prepare(ctx, id, false)
	return nil, err
}
func (a atLeastOnceSink[T]) Commit(context.Context, uint64) error { return nil }
func (a atLeastOnceSink[T]) Close() error                         { return a.w.Close() }

// Close releases the sink's connections. It aborts the transaction of the
// current epoch, if any, but leaves pre-committed transactions open for the
// next Open to commit. In at-least-once mode it abandons the records not yet
// acknowledged, which a restore writes again.
func (s *sink[T]) Close() error {
	if s.w != nil {
		s.w.close()
		s.w = nil
	}
	s.closeClient()
	if s.err == nil {
		s.err = errors.New("kafka sink: closed")
	}
	return nil
}

func (s *sink[T]) closeClient() {
	if s.client != nil {
		kafkatxn.CloseClient(s.client)
		s.client = nil
	}
}

func (s *sink[T]) usable() error {
	if s.err != nil {
		return s.err
	}
	if s.w == nil {
		return errors.New("kafka sink: not open")
	}
	return nil
}

// fail makes err sticky: after a failed write or commit the sink's
// transactions are in an unknown state, and only a restore fixes that.
func (s *sink[T]) fail(err error) error {
	if err != nil && s.err == nil {
		s.err = err
	}
	return err
}
