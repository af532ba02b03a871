package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/internal/kafkasec"
	"github.com/weirstream/weir/runtime"
)

// errClosed is returned by Read after Close.
var errClosed = errors.New("kafka source: closed")

// source reads the partitions of SourceConfig.Topics assigned to one
// subtask; like every source, it is used from one goroutine, except for the
// counters, which may be read from any goroutine.
type source[T any] struct {
	cfg SourceConfig[T]

	info   runtime.TaskInfo
	log    *slog.Logger
	cl     *kgo.Client
	dlq    *kafkago.Writer
	decomp kgo.Decompressor
	iso    kgo.IsolationLevel

	assign assignment
	// parts are the assigned partitions, sorted. Only Open and Read change
	// the slice, always to a new one, under partsMu, since SourceLag reads
	// it from another goroutine.
	parts        []*partition
	partsMu      sync.Mutex
	byTP         map[topicPartition]*partition
	lastMetadata time.Time // of the last metadata refresh, which discovers partitions
	staleLeader  bool      // refresh metadata before the next fetch
	partitionErr error     // a retriable partition error of the current Read
	failingFrom  time.Time // first of a run of failed fetches, or zero
	closed       bool

	// snapshotted are the offsets of the last Snapshot, kept with a
	// CommitGroup or purge for CheckpointComplete.
	snapshotted []snapshotOffset
	// purgeTo are the offsets of the completed checkpoint before the last
	// (SourceConfig.purge; see purgeRead).
	purgeTo []snapshotOffset

	decodeErrors atomic.Int64
	deadLettered atomic.Int64
}

var _ runtime.Source[Record] = (*source[Record])(nil)

type partition struct {
	topicPartition
	topicID [16]byte
	leader  int32
	epoch   int32        // leader epoch, -1 if unknown
	next    int64        // next offset to read
	end     int64        // StopAtEnd: stop before this offset; -1 when unbounded
	lag     atomic.Int64 // readableEnd minus next after the last fetch; -1: unknown
}

func (p *partition) done() bool { return p.end >= 0 && p.next >= p.end }

// NewSource validates cfg and returns the source factory for runtime.From,
// so that a bad configuration fails when the pipeline is built.
func NewSource[T any](cfg SourceConfig[T]) (runtime.SourceFactory[T], error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return func() (runtime.Source[T], error) { return &source[T]{cfg: cfg}, nil }, nil
}

// DecodeErrors returns how many records the Deserializer rejected and the
// policy skipped or dead-lettered.
func (s *source[T]) DecodeErrors() int64 { return s.decodeErrors.Load() }

// DeadLettered returns how many records were written to the dead-letter topic.
func (s *source[T]) DeadLettered() int64 { return s.deadLettered.Load() }

// Open connects, computes this subtask's partitions (see the package doc), and
// positions each at its restored offset. A partition without restored
// offset is positioned at SourceConfig.StartFrom on the job's first start
// (restored is nil), and at its earliest offset otherwise: it was added after
// the job started, so everything in it is new. A StopAtEnd source restored
// from a StopAtEnd snapshot keeps the ends of the first start and skips
// partitions added since.
//
// Restored state that names a partition this subtask does not own is an
// error. A restore with another parallelism goes through Redistribute
// first, which gives each subtask the offsets of the partitions it owns.
func (s *source[T]) Open(ctx context.Context, info runtime.TaskInfo, restored []byte) error {
	if info.Parallelism < 1 || info.Subtask < 0 || info.Subtask >= info.Parallelism {
		return fmt.Errorf("kafka source: bad task info: subtask %d of %d", info.Subtask, info.Parallelism)
	}
	s.info = info
	s.log = info.Logger
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("source", "kafka", "subtask", info.Subtask)
	var st sourceState
	if restored != nil {
		var err error
		if st, err = sourceDecodeState(restored); err != nil {
			return err
		}
	}

	s.iso = kgo.ReadCommitted()
	if s.cfg.Isolation == ReadUncommitted {
		s.iso = kgo.ReadUncommitted()
	}
	s.decomp = kgo.DefaultDecompressor()
	if err := s.cfg.Security.config().Authenticate(ctx, s.cfg.Brokers, s.cfg.DialTimeout); err != nil {
		return fmt.Errorf("kafka source: %w", err)
	}
	sec, err := s.cfg.Security.config().KgoOpts()
	if err != nil {
		return fmt.Errorf("kafka source: %w", err)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(s.cfg.Brokers...),
		kgo.DialTimeout(s.cfg.DialTimeout),
		kgo.RetryTimeout(s.cfg.RetryTimeout),
	}, sec...)...)
	if err != nil {
		return fmt.Errorf("kafka source: %w", err)
	}
	s.cl = cl

	all, err := s.metadata(ctx)
	if err != nil {
		return err
	}
	s.lastMetadata = time.Now()
	if st.v1 && !s.byIndex(info) {
		// NB: every subtask restores from the same checkpoint and sees the
		// same partitions here, so they agree on the version-1 owners.
		st.legacy = partitionCounts(all)
	}
	s.assign = newAssignment(info.Subtask, info.Parallelism, st.legacy, s.byIndex(info))
	if err := s.assign.checkCounts(all); err != nil {
		return err
	}
	if err := s.assignRestored(ctx, all, st, restored != nil); err != nil {
		return err
	}
	if s.cfg.OnDecodeError == DeadLetter {
		if err := s.openDeadLetter(ctx); err != nil {
			return err
		}
	}
	s.log.Debug("kafka source opened", "partitions", len(s.parts), "restored", restored != nil)
	return nil
}

// byIndex says whether subtask i reads partition i of every topic: in group
// mode (see runtime.TaskInfo.Group) and in an exchange's source.
func (s *source[T]) byIndex(info runtime.TaskInfo) bool { return info.Group != "" || s.cfg.byIndex }

// openDeadLetter makes the dead-letter writer and checks, where the broker
// says, that the job may write the dead-letter topic: a missing ACL
// fails at Open, not at the first bad record.
func (s *source[T]) openDeadLetter(ctx context.Context) error {
	t := &kafkago.Transport{DialTimeout: s.cfg.DialTimeout}
	if err := s.cfg.Security.config().Transport(t); err != nil {
		return fmt.Errorf("kafka source: dead-letter writer: %w", err)
	}
	s.dlq = &kafkago.Writer{
		Addr:                   kafkago.TCP(s.cfg.Brokers...),
		Topic:                  s.cfg.DeadLetterTopic,
		Balancer:               &kafkago.Hash{},
		RequiredAcks:           kafkago.RequireAll,
		AllowAutoTopicCreation: true,
		BatchTimeout:           time.Millisecond,
		Transport:              t,
	}
	resp, err := s.metadataOf(ctx, s.cfg.DeadLetterTopic)
	if err != nil {
		return err
	}
	for _, rt := range resp.Topics {
		switch err := kerr.ErrorForCode(rt.ErrorCode); {
		case errors.Is(err, kerr.TopicAuthorizationFailed):
			return fmt.Errorf("kafka source: dead-letter topic: %w",
				kafkasec.Authorization(err, s.cfg.Brokers, kafkasec.Topic, s.cfg.DeadLetterTopic, kafkasec.Write))
		case err == nil:
			if err := kafkasec.CheckTopicOperations(s.cfg.DeadLetterTopic, rt.AuthorizedOperations, kafkasec.Write); err != nil {
				return fmt.Errorf("kafka source: dead-letter topic: %w", err)
			}
		}
		// A missing topic is created on first use, if the broker
		// creates topics.
	}
	return nil
}

// metadataOf asks for the metadata of topics, with the operations the job
// may do on each (Metadata v8+; see kafkasec.CheckTopicOperations).
func (s *source[T]) metadataOf(ctx context.Context, topics ...string) (*kmsg.MetadataResponse, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	req.AllowAutoTopicCreation = false
	req.IncludeTopicAuthorizedOperations = true
	resp, err := req.RequestWith(ctx, s.cl)
	if err != nil {
		return nil, fmt.Errorf("kafka source: metadata from %v: %w", s.cfg.Brokers, kafkasec.Classify(err, s.cfg.Brokers))
	}
	return resp, nil
}

// assignRestored takes the owned partitions of all and positions them from
// st (see Open).
func (s *source[T]) assignRestored(ctx context.Context, all []*partition, st sourceState, restored bool) error {
	exists := make(map[topicPartition]bool, len(all))
	for _, p := range all {
		exists[p.topicPartition] = true
	}
	for tp := range st.next {
		if err := s.assign.checkRestored(tp, exists[tp]); err != nil {
			return err
		}
	}
	keepEnds := s.cfg.Mode == StopAtEnd && st.bounded
	s.byTP = make(map[topicPartition]*partition)
	var owned, fresh []*partition
	for _, p := range all {
		off, ok := st.next[p.topicPartition]
		if !s.assign.owns(p.topicPartition) || (keepEnds && !ok) {
			continue
		}
		p.end = -1
		p.lag.Store(-1)
		if ok {
			p.next = off
			if keepEnds {
				p.end = st.end[p.topicPartition]
			}
		} else {
			fresh = append(fresh, p)
		}
		owned = append(owned, p)
	}
	start := s.cfg.StartFrom
	if restored {
		start = Earliest
	}
	if len(fresh) > 0 {
		if err := s.positionFresh(ctx, fresh, start); err != nil {
			return err
		}
	}
	if s.cfg.Mode == StopAtEnd && !keepEnds && len(owned) > 0 {
		ends, err := s.listOffsets(ctx, owned, -1)
		if err != nil {
			return err
		}
		for _, p := range owned {
			p.end = ends[p.topicPartition]
		}
	}
	s.addPartitions(owned)
	return nil
}

// addPartitions adds ps to the assigned partitions.
func (s *source[T]) addPartitions(ps []*partition) {
	parts := append(slices.Clone(s.parts), ps...)
	sort.Slice(parts, func(i, j int) bool { return lessTP(parts[i].topicPartition, parts[j].topicPartition) })
	for _, p := range ps {
		s.byTP[p.topicPartition] = p
	}
	s.partsMu.Lock()
	s.parts = parts
	s.partsMu.Unlock()
}

func (s *source[T]) positionFresh(ctx context.Context, fresh []*partition, start StartFrom) error {
	var ts int64
	switch start.kind {
	case startEarliest:
		ts = -2
	case startLatest:
		ts = -1
	case startTimestamp:
		ts = start.ts.UnixMilli()
	}
	offs, err := s.listOffsets(ctx, fresh, ts)
	if err != nil {
		return err
	}
	var ends map[topicPartition]int64
	for _, p := range fresh {
		off := offs[p.topicPartition]
		if off < 0 { // no record at or after the timestamp: start at the end
			if ends == nil {
				if ends, err = s.listOffsets(ctx, fresh, -1); err != nil {
					return err
				}
			}
			off = ends[p.topicPartition]
		}
		p.next = off
	}
	return nil
}

// metadata returns every partition of the configured topics, sorted. It
// checks, where the broker says, that the job may read them.
func (s *source[T]) metadata(ctx context.Context) ([]*partition, error) {
	resp, err := s.metadataOf(ctx, s.cfg.Topics...)
	if err != nil {
		return nil, err
	}
	var out []*partition
	for _, t := range resp.Topics {
		name := ""
		if t.Topic != nil {
			name = *t.Topic
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return nil, fmt.Errorf("kafka source: topic %q: %w", name,
				kafkasec.Authorization(err, s.cfg.Brokers, kafkasec.Topic, name, kafkasec.Read)) // Read implies Describe
		}
		if err := kafkasec.CheckTopicOperations(name, t.AuthorizedOperations, kafkasec.Read); err != nil {
			return nil, fmt.Errorf("kafka source: %w", err)
		}
		for _, rp := range t.Partitions {
			out = append(out, &partition{
				topicPartition: topicPartition{name, rp.Partition},
				topicID:        t.TopicID,
				leader:         rp.Leader,
				epoch:          rp.LeaderEpoch,
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return lessTP(out[i].topicPartition, out[j].topicPartition) })
	return out, nil
}

// refreshMetadata updates the leaders of the assigned partitions and, for an
// Unbounded source, starts reading the partitions added to the topics since
// the last refresh that this subtask owns, from their earliest offset: they
// were created after the job started, so everything in them is new.
func (s *source[T]) refreshMetadata(ctx context.Context) error {
	all, err := s.metadata(ctx)
	if err != nil {
		return err
	}
	if err := s.assign.checkCounts(all); err != nil {
		return err // partitions added to an input topic of a group job
	}
	var added []*partition
	for _, np := range all {
		if p, ok := s.byTP[np.topicPartition]; ok {
			p.leader, p.epoch, p.topicID = np.leader, np.epoch, np.topicID
		} else if s.cfg.Mode == Unbounded && s.assign.owns(np.topicPartition) {
			np.end = -1
			np.lag.Store(-1)
			added = append(added, np)
		}
	}
	if len(added) > 0 {
		if err := s.positionFresh(ctx, added, Earliest); err != nil {
			return err
		}
		s.addPartitions(added)
		s.log.Info("kafka source: reading new partitions from their earliest offset", "partitions", partitionNames(added))
	}
	s.staleLeader = false
	s.lastMetadata = time.Now()
	return nil
}

func partitionNames(ps []*partition) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.topicPartition.String()
	}
	return out
}

// listOffsets asks the partition leaders for the offset of the timestamp ts
// (-2 earliest, -1 end: last stable offset under read_committed).
func (s *source[T]) listOffsets(ctx context.Context, parts []*partition, ts int64) (map[topicPartition]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	req.IsolationLevel = s.isoLevel()
	idx := map[string]int{}
	for _, p := range parts {
		i, ok := idx[p.topic]
		if !ok {
			i = len(req.Topics)
			idx[p.topic] = i
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = p.topic
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p.partition
		rp.Timestamp = ts
		rp.CurrentLeaderEpoch = -1
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	resp, err := req.RequestWith(ctx, s.cl)
	if err != nil {
		return nil, fmt.Errorf("kafka source: list offsets: %w", kafkasec.Classify(err, s.cfg.Brokers))
	}
	out := make(map[topicPartition]int64, len(parts))
	for _, t := range resp.Topics {
		for _, rp := range t.Partitions {
			tp := topicPartition{t.Topic, rp.Partition}
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return nil, fmt.Errorf("kafka source: list offsets of %s: %w", tp,
					kafkasec.Authorization(err, s.cfg.Brokers, kafkasec.Topic, t.Topic, kafkasec.Read))
			}
			out[tp] = rp.Offset
		}
	}
	for _, p := range parts {
		if _, ok := out[p.topicPartition]; !ok {
			return nil, fmt.Errorf("kafka source: list offsets: no answer for %s", p.topicPartition)
		}
	}
	return out, nil
}

// Read fetches once from the leaders of the assigned partitions that are not
// finished, waiting at most SourceConfig.MaxWait for data, and emits what arrived.
func (s *source[T]) Read(ctx context.Context, out runtime.Collector[T]) error {
	if s.closed {
		return errClosed
	}
	if s.cl == nil {
		return errors.New("kafka source: Read before Open")
	}
	if s.cfg.Mode == Unbounded && time.Since(s.lastMetadata) >= s.cfg.PartitionDiscoveryInterval {
		if err := s.refreshMetadata(ctx); err != nil {
			return s.retryable(ctx, err)
		}
	}
	byLeader := s.groupByLeader()
	if len(byLeader) == 0 {
		if s.cfg.Mode == StopAtEnd {
			return runtime.ErrEndOfInput
		}
		// An unbounded source that owns no partitions idles until
		// discovery gives it some.
		s.failingFrom = time.Time{}
		return waitOrDone(ctx, s.cfg.MaxWait)
	}
	if s.staleLeader || byLeader[-1] != nil {
		if err := s.refreshMetadata(ctx); err != nil {
			return s.retryable(ctx, err)
		}
		byLeader = s.groupByLeader()
	}
	if leaderless := byLeader[-1]; leaderless != nil {
		// Try again after a back-off (see the end of Read).
		s.staleLeader = true
		s.partitionErr = fmt.Errorf("%s: %w", leaderless[0].topicPartition, kerr.LeaderNotAvailable)
		delete(byLeader, -1)
	}

	type result struct {
		parts []*partition
		resp  *kmsg.FetchResponse
		err   error
	}
	results := make([]result, 0, len(byLeader))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for leader, parts := range byLeader {
		req := s.fetchRequest(parts)
		wg.Go(func() {
			resp, err := req.RequestWith(ctx, s.cl.Broker(int(leader)))
			mu.Lock()
			results = append(results, result{parts, resp, err})
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Slice(results, func(i, j int) bool { // deterministic emission order
		return lessTP(results[i].parts[0].topicPartition, results[j].parts[0].topicPartition)
	})

	var dead []kafkago.Message
	var failed error
	for _, r := range results {
		if r.err == nil {
			r.err = kerr.ErrorForCode(r.resp.ErrorCode)
		}
		if r.err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed = r.err
			s.staleLeader = true
			continue
		}
		var err error
		if dead, err = s.process(r.parts, r.resp, out, dead); err != nil {
			return err
		}
	}
	if len(dead) > 0 {
		if err := s.dlq.WriteMessages(ctx, dead...); err != nil {
			return fmt.Errorf("kafka source: write %d records to dead-letter topic %q: %w", len(dead), s.cfg.DeadLetterTopic,
				kafkasec.Authorization(err, s.cfg.Brokers, kafkasec.Topic, s.cfg.DeadLetterTopic, kafkasec.Write))
		}
		s.deadLettered.Add(int64(len(dead)))
	}
	if failed == nil && s.partitionErr != nil {
		failed = s.partitionErr
	}
	s.partitionErr = nil
	if failed != nil {
		return s.retryable(ctx, fmt.Errorf("kafka source: fetch: %w", failed))
	}
	s.failingFrom = time.Time{}
	return nil
}

// groupByLeader groups the unfinished partitions by leader; -1 is no leader.
func (s *source[T]) groupByLeader() map[int32][]*partition {
	byLeader := map[int32][]*partition{}
	for _, p := range s.parts {
		if !p.done() {
			byLeader[p.leader] = append(byLeader[p.leader], p)
		}
	}
	return byLeader
}

// retryable logs err and returns nil after a short pause, unless fetches
// have been failing for longer than SourceConfig.RetryTimeout or err is a
// refusal of the broker, which no retry changes.
func (s *source[T]) retryable(ctx context.Context, err error) error {
	if errors.Is(err, ErrPartitionCount) {
		return err
	}
	if kafkasec.IsAuthentication(err) || kafkasec.IsAuthorization(err) {
		return kafkasec.Authorization(err, s.cfg.Brokers, kafkasec.Topic, strings.Join(s.cfg.Topics, ","), kafkasec.Read)
	}
	now := time.Now()
	if s.failingFrom.IsZero() {
		s.failingFrom = now
	}
	if now.Sub(s.failingFrom) > s.cfg.RetryTimeout {
		return fmt.Errorf("%w (failing for %v)", err, now.Sub(s.failingFrom).Round(time.Millisecond))
	}
	s.log.Warn("kafka source: retrying", "err", err)
	s.staleLeader = true
	// Back off so that an unreachable broker does not make Read spin.
	return waitOrDone(ctx, s.cfg.MaxWait)
}

func waitOrDone(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// readableEnd returns the offset a read of rp's partition can reach: the
// high watermark, or under read_committed the last stable offset, before
// which no transaction is open. Records past it are not lag: an open
// transaction of another writer (an exchange's, which every task keeps open
// between checkpoints) holds them back from every read_committed reader,
// and a lag that counted them would never reach 0.
func (s *source[T]) readableEnd(rp *kmsg.FetchResponseTopicPartition) int64 {
	if s.isoLevel() == 1 && rp.LastStableOffset >= 0 {
		return min(rp.LastStableOffset, rp.HighWatermark)
	}
	return rp.HighWatermark
}

// isoLevel is the protocol's isolation level: 0 uncommitted, 1 committed.
func (s *source[T]) isoLevel() int8 {
	if s.cfg.Isolation == ReadUncommitted {
		return 0
	}
	return 1
}

func (s *source[T]) fetchRequest(parts []*partition) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = int32(s.cfg.MaxWait / time.Millisecond)
	req.MinBytes = 1
	// NB: the bound is enforced per partition only. A broker that hits the
	// request-wide MaxBytes in the middle of a partition may return that
	// partition's batches without its aborted-transaction list (kfake
	// does), which would let aborted records through under
	// read_committed. The per-partition limits below sum to
	// MaxBytesPerRead anyway.
	req.MaxBytes = math.MaxInt32
	req.IsolationLevel = s.isoLevel()
	req.SessionID = 0
	req.SessionEpoch = -1                                      // full fetch, no fetch session
	perPart := max(s.cfg.MaxBytesPerRead/int32(len(parts)), 1) // the broker still returns at least one batch
	for _, p := range parts {
		n := len(req.Topics)
		if n == 0 || req.Topics[n-1].Topic != p.topic {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = p.topic
			rt.TopicID = p.topicID
			req.Topics = append(req.Topics, rt)
			n++
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p.partition
		rp.CurrentLeaderEpoch = p.epoch
		rp.FetchOffset = p.next
		rp.LogStartOffset = -1
		rp.PartitionMaxBytes = perPart
		req.Topics[n-1].Partitions = append(req.Topics[n-1].Partitions, rp)
	}
	return req
}

// process emits the records of one fetch response and advances the offsets.
func (s *source[T]) process(parts []*partition, resp *kmsg.FetchResponse, out runtime.Collector[T], dead []kafkago.Message) ([]kafkago.Message, error) {
	byID := map[[16]byte]string{}
	for _, p := range parts {
		byID[p.topicID] = p.topic
	}
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		topic := rt.Topic
		if topic == "" {
			topic = byID[rt.TopicID]
		}
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			p, ok := s.byTP[topicPartition{topic, rp.Partition}]
			if !ok || p.done() {
				continue
			}
			switch err := kerr.ErrorForCode(rp.ErrorCode); {
			case err == nil:
			case errors.Is(err, kerr.OffsetOutOfRange):
				return dead, fmt.Errorf("kafka source: %s: offset %d is out of range (log start %d, high watermark %d); records were deleted before they were read, so the position cannot be resumed exactly: %w",
					p.topicPartition, p.next, rp.LogStartOffset, rp.HighWatermark, err)
			case kerr.IsRetriable(err) || errors.Is(err, kerr.UnknownTopicID):
				// Typically a leader change: refresh metadata and
				// back off before the next fetch (see Read).
				s.staleLeader = true
				s.partitionErr = fmt.Errorf("%s: %w", p.topicPartition, err)
				continue
			default:
				return dead, fmt.Errorf("kafka source: fetch %s at offset %d: %w", p.topicPartition, p.next,
					kafkasec.Authorization(err, s.cfg.Brokers, kafkasec.Topic, p.topic, kafkasec.Read))
			}
			fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
				Offset:         p.next,
				IsolationLevel: s.iso,
				Topic:          p.topic,
				Partition:      p.partition,
			}, rp, s.decomp, nil)
			if fp.Err != nil {
				return dead, fmt.Errorf("kafka source: decode fetch of %s at offset %d: %w", p.topicPartition, p.next, fp.Err)
			}
			var err error
			if dead, err = s.emit(p, fp.Records, out, dead); err != nil {
				return dead, err
			}
			// next also moves past control records and aborted
			// batches, which emit nothing.
			if next > p.next {
				p.next = next
			}
			if p.end >= 0 && p.next > p.end {
				p.next = p.end
			}
			p.lag.Store(max(s.readableEnd(rp)-p.next, 0))
		}
	}
	return dead, nil
}

func (s *source[T]) emit(p *partition, recs []*kgo.Record, out runtime.Collector[T], dead []kafkago.Message) ([]kafkago.Message, error) {
	var hdrs []Header
	// With runtime.WithWatermarks the records' event times can be their
	// Kafka timestamps.
	timed, isTimed := out.(runtime.TimestampCollector[T])
	for _, kr := range recs {
		if kr.Offset < p.next {
			continue
		}
		if p.end >= 0 && kr.Offset >= p.end {
			p.next = p.end
			break
		}
		var v T
		var err error
		if s.cfg.DecodeValue != nil {
			v, err = s.cfg.DecodeValue(kr.Value)
		} else {
			hdrs = hdrs[:0]
			for _, h := range kr.Headers {
				hdrs = append(hdrs, Header{Key: h.Key, Value: h.Value})
			}
			v, err = s.cfg.Deserializer(Record{
				Topic:     p.topic,
				Partition: p.partition,
				Offset:    kr.Offset,
				Key:       kr.Key,
				Value:     kr.Value,
				Headers:   hdrs,
				Time:      kr.Timestamp,
			})
		}
		if err != nil {
			switch s.cfg.OnDecodeError {
			case Skip:
				s.decodeErrors.Add(1)
			case DeadLetter:
				s.decodeErrors.Add(1)
				dead = append(dead, deadLetter(kr, err))
			default:
				return dead, &DecodeError{Topic: p.topic, Partition: p.partition, Offset: kr.Offset, Err: err}
			}
		} else if isTimed {
			timed.CollectAt(v, kr.Timestamp.UnixMilli())
		} else {
			out.Collect(v)
		}
		p.next = kr.Offset + 1
	}
	return dead, nil
}

func deadLetter(kr *kgo.Record, err error) kafkago.Message {
	m := kafkago.Message{Key: kr.Key, Value: kr.Value, Time: kr.Timestamp}
	for _, h := range kr.Headers {
		m.Headers = append(m.Headers, kafkago.Header{Key: h.Key, Value: h.Value})
	}
	m.Headers = append(m.Headers,
		kafkago.Header{Key: "weir.source.topic", Value: []byte(kr.Topic)},
		kafkago.Header{Key: "weir.source.partition", Value: strconv.AppendInt(nil, int64(kr.Partition), 10)},
		kafkago.Header{Key: "weir.source.offset", Value: strconv.AppendInt(nil, kr.Offset, 10)},
		kafkago.Header{Key: "weir.decode.error", Value: []byte(err.Error())},
	)
	return m
}

// Snapshot returns the next offset to read of every assigned partition and,
// for StopAtEnd, its end.
func (s *source[T]) Snapshot() ([]byte, error) {
	if s.byTP == nil {
		return nil, errors.New("kafka source: Snapshot before Open")
	}
	st := sourceState{
		next:    make(map[topicPartition]int64, len(s.parts)),
		bounded: s.cfg.Mode == StopAtEnd,
		legacy:  s.assign.legacy,
	}
	if st.bounded {
		st.end = make(map[topicPartition]int64, len(s.parts))
	}
	for _, p := range s.parts {
		st.next[p.topicPartition] = p.next
		if st.bounded {
			st.end[p.topicPartition] = p.end
		}
	}
	s.keepForCommit()
	return sourceEncodeState(st), nil
}

// Close releases the connections. It is safe to call more than once.
func (s *source[T]) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.dlq != nil {
		err = s.dlq.Close()
	}
	if s.cl != nil {
		s.cl.Close()
	}
	return err
}
