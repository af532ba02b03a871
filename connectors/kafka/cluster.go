package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/internal/kafkasec"
	"github.com/weirstream/weir/runtime"
)

// ErrPartitionCount is wrapped by the errors that report a topic whose
// partition count is not the task count of a job spread over processes:
// input topics that are not co-partitioned, an input topic read in group
// mode, a repartition topic left by an earlier job.
var ErrPartitionCount = errors.New("kafka: partition count is not the job's task count")

// errNotJoined is returned by Exchange before Join: a repartition topic is
// named after the group.
var errNotJoined = errors.New("Exchange before Join: the repartition topics are named after the group, which Join gives")

// defaultSessionTimeout applies when JoinRequest.SessionTimeout is zero, as
// runtime.Config's default does.
const defaultSessionTimeout = 45 * time.Second

// aclGroup is the ACL resource type of a consumer group.
const aclGroup = "Group"

// cluster implements runtime.Cluster over a Kafka consumer group and
// repartition topics (see the package documentation, "The cluster").
type cluster struct {
	cfg ClusterConfig

	mu    sync.Mutex
	group string // of the Join; exchanges are named after it
	// exchanges are the repartition topics checked or created, with their
	// partition counts: every task's start asks for them again.
	exchanges map[string]int
}

// NewCluster validates cfg and returns the Cluster of a job spread over the
// processes started with the same runtime.Config.Group: membership through
// a Kafka consumer group over cfg.Topics[0], exchanges through repartition
// topics. See the package documentation ("The cluster").
func NewCluster(cfg ClusterConfig) (runtime.Cluster, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Brokers, cfg.Topics = slices.Clone(cfg.Brokers), slices.Clone(cfg.Topics)
	return &cluster{cfg: cfg, exchanges: map[string]int{}}, nil
}

// Join joins req.Group and returns once the group has given this member its
// first assignment (Assigned has run, if it got tasks). It first checks the
// input topics: they must exist and be co-partitioned.
func (c *cluster) Join(ctx context.Context, req runtime.JoinRequest) (runtime.Membership, error) {
	if req.Group == "" || req.Assigned == nil || req.Revoked == nil || req.Lost == nil {
		return nil, errors.New("kafka cluster: join: a JoinRequest needs Group, Assigned, Revoked and Lost")
	}
	if req.SessionTimeout == 0 {
		req.SessionTimeout = defaultSessionTimeout
	}
	if req.Logger == nil {
		req.Logger = slog.Default()
	}
	if err := c.setGroup(req.Group); err != nil {
		return nil, err
	}
	tasks, err := c.taskCount(ctx)
	if err != nil {
		return nil, err
	}
	m := &member{
		c: c, req: req, tasks: tasks,
		log:    req.Logger.With("group", req.Group, "instance_id", req.InstanceID),
		joined: make(chan struct{}),
		failed: make(chan error, 1),
	}
	cl, err := c.newClient(m.groupOpts()...)
	if err != nil {
		return nil, err
	}
	m.cl = cl
	// NB: the member only holds the group's membership: records are read
	// by the tasks' own sources. The callback pauses the partitions too,
	// before kgo would start fetching them.
	cl.PauseFetchTopics(c.cfg.Topics[0])
	select {
	case <-m.joined:
		m.log.Info("kafka cluster: joined the group", "member_id", m.MemberID(), "tasks", tasks)
		return m, nil
	case err = <-m.failed:
	case <-ctx.Done():
		err = ctx.Err()
	}
	cl.Close() // waits for the callbacks: a task Assigned meanwhile is Revoked
	return nil, fmt.Errorf("kafka cluster: join group %q at %v: %w", req.Group, c.cfg.Brokers,
		kafkasec.Authorization(err, c.cfg.Brokers, aclGroup, req.Group, kafkasec.Read))
}

// setGroup records the group of the Join: a Cluster serves one job.
func (c *cluster) setGroup(group string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.group != "" && c.group != group {
		return fmt.Errorf("kafka cluster: join group %q: this Cluster joined group %q already; make one Cluster per job", group, c.group)
	}
	c.group = group
	return nil
}

// newClient makes a kgo client of the brokers with opts.
func (c *cluster) newClient(opts ...kgo.Opt) (*kgo.Client, error) {
	sec, err := c.cfg.Security.config().KgoOpts()
	if err != nil {
		return nil, fmt.Errorf("kafka cluster: %w", err)
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{
		kgo.SeedBrokers(c.cfg.Brokers...),
		kgo.DialTimeout(c.cfg.DialTimeout),
		kgo.RetryTimeout(c.cfg.RequestTimeout),
	}, sec...), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka cluster: %w", err)
	}
	return cl, nil
}

// admin runs fn with a client for the cluster's metadata and topic requests,
// each bounded by RequestTimeout, after authenticating.
func (c *cluster) admin(ctx context.Context, fn func(context.Context, *kgo.Client) error) error {
	if err := c.cfg.Security.config().Authenticate(ctx, c.cfg.Brokers, c.cfg.DialTimeout); err != nil {
		return fmt.Errorf("kafka cluster: %w", err)
	}
	cl, err := c.newClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	return fn(ctx, cl)
}

// taskCount returns the partition count of the input topics, which must
// exist and have the same count.
func (c *cluster) taskCount(ctx context.Context) (int, error) {
	var counts map[string]int
	err := c.admin(ctx, func(ctx context.Context, cl *kgo.Client) (err error) {
		counts, err = c.partitionCounts(ctx, cl, c.cfg.Topics...)
		return err
	})
	if err != nil {
		return 0, err
	}
	first := c.cfg.Topics[0]
	for _, t := range c.cfg.Topics[1:] {
		if counts[t] != counts[first] {
			return 0, fmt.Errorf("kafka cluster: %w: the input topics of a job spread over processes must be co-partitioned, "+
				"but topic %q has %d partitions and topic %q %d: give them the same count (kafka-topics.sh --alter --partitions N adds partitions)",
				ErrPartitionCount, first, counts[first], t, counts[t])
		}
	}
	return counts[first], nil
}

// partitionCounts returns the partition count of each topic; a topic that
// does not exist, or has no partition with a leader yet, is an error.
func (c *cluster) partitionCounts(ctx context.Context, cl *kgo.Client, topics ...string) (map[string]int, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	req.AllowAutoTopicCreation = false
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("kafka cluster: metadata from %v (are the brokers up and reachable?): %w", c.cfg.Brokers, kafkasec.Classify(err, c.cfg.Brokers))
	}
	counts := make(map[string]int, len(topics))
	for _, rt := range resp.Topics {
		name := ""
		if rt.Topic != nil {
			name = *rt.Topic
		}
		switch err := kerr.ErrorForCode(rt.ErrorCode); {
		case errors.Is(err, kerr.UnknownTopicOrPartition):
			return nil, fmt.Errorf("kafka cluster: topic %q does not exist at %v: create it first, with one partition per task "+
				"(kafka-topics.sh --bootstrap-server %s --create --topic %s --partitions N): %w",
				name, c.cfg.Brokers, c.cfg.Brokers[0], name, err)
		case err != nil:
			return nil, fmt.Errorf("kafka cluster: topic %q: %w", name,
				kafkasec.Authorization(err, c.cfg.Brokers, kafkasec.Topic, name, kafkasec.Describe))
		}
		for _, rp := range rt.Partitions {
			if rp.Leader < 0 {
				return nil, fmt.Errorf("kafka cluster: topic %q: partition %d: %w", name, rp.Partition, kerr.LeaderNotAvailable)
			}
		}
		counts[name] = len(rt.Partitions)
	}
	for _, t := range topics {
		if _, ok := counts[t]; !ok {
			return nil, fmt.Errorf("kafka cluster: metadata from %v: no answer for topic %q", c.cfg.Brokers, t)
		}
	}
	return counts, nil
}

// member is this process's place in the group: a kgo group client that
// never polls, only heartbeats and turns the group's partition assignments
// into tasks.
type member struct {
	c     *cluster
	req   runtime.JoinRequest
	tasks int
	log   *slog.Logger
	cl    *kgo.Client

	joined     chan struct{} // closed by the first assignment
	joinedOnce sync.Once
	failed     chan error // a group error before the first assignment
	leaveOnce  sync.Once
	leaveErr   error
}

var _ runtime.Membership = (*member)(nil)

// groupOpts are the options of the member's client.
func (m *member) groupOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.ConsumerGroup(m.req.Group),
		kgo.ConsumeTopics(m.c.cfg.Topics[0]),
		// NB: cooperative: a rebalance revokes only the tasks that move, the
		// others run on undisturbed.
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(m.req.SessionTimeout),
		kgo.RebalanceTimeout(m.c.cfg.RebalanceTimeout),
		kgo.HeartbeatInterval(heartbeatInterval(m.req.SessionTimeout)),
		kgo.DisableAutoCommit(), // the tasks' checkpoints hold the offsets
		kgo.OnPartitionsAssigned(m.assigned),
		kgo.OnPartitionsRevoked(m.revoked),
		kgo.OnPartitionsLost(m.lost),
		kgo.WithHooks(m),
		kgo.WithLogger(kgoLogger{m.log}),
	}
	if m.req.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(m.req.InstanceID))
	}
	return opts
}

// heartbeatInterval is how often a member with the session timeout
// session heartbeats: a tenth of it, at most kgo's default of 3 s (so the
// default session of 45 s keeps Kafka's default interval).
//
// NB: the survivors of a member that died learn of the rebalance only from
// the response to their next heartbeat, so a failover waits for the
// session timeout since the dead member's last heartbeat plus up to one
// interval of the survivors': session - u + v, u and v below the interval.
// At Kafka's customary third of the session, a failover took up to 1.33
// sessions; at a tenth, up to 1.1 (issue 12: 1.5 s session, 2.0 → 1.65 s
// at worst). A heartbeat is a small request; 10 per session per member
// are nothing for a broker.
func heartbeatInterval(session time.Duration) time.Duration {
	return min(3*time.Second, session/10)
}

// taskList returns the tasks of the partitions of the group's topic in ps,
// sorted.
func (m *member) taskList(ps map[string][]int32) []int {
	out := make([]int, 0, len(ps[m.c.cfg.Topics[0]]))
	for _, p := range ps[m.c.cfg.Topics[0]] {
		out = append(out, int(p))
	}
	slices.Sort(out)
	return out
}

func (m *member) assigned(ctx context.Context, cl *kgo.Client, ps map[string][]int32) {
	// NB: kgo calls this before it fetches the partitions: paused, they
	// are never fetched.
	cl.PauseFetchTopics(m.c.cfg.Topics[0])
	if tasks := m.taskList(ps); len(tasks) > 0 {
		m.log.Info("kafka cluster: tasks assigned", "tasks", tasks)
		m.req.Assigned(ctx, tasks)
	}
	m.joinedOnce.Do(func() { close(m.joined) })
}

func (m *member) revoked(ctx context.Context, _ *kgo.Client, ps map[string][]int32) {
	if tasks := m.taskList(ps); len(tasks) > 0 {
		m.log.Info("kafka cluster: tasks revoked", "tasks", tasks)
		m.req.Revoked(ctx, tasks)
	}
}

func (m *member) lost(ctx context.Context, _ *kgo.Client, ps map[string][]int32) {
	if tasks := m.taskList(ps); len(tasks) > 0 {
		m.log.Warn("kafka cluster: tasks lost (this member was expelled from the group, or its session failed)", "tasks", tasks)
		m.req.Lost(ctx, tasks)
	}
}

// OnGroupManageError implements kgo.HookGroupManageError: an error before
// the first assignment fails Join, unless kgo recovers from it by rejoining
// (see rejoinable); later ones are logged, and kgo rejoins (after Lost).
func (m *member) OnGroupManageError(err error) {
	select {
	case <-m.joined:
		m.log.Warn("kafka cluster: group session failed; rejoining", "err", err)
	default:
		if rejoinable(err) {
			m.log.Warn("kafka cluster: the group dropped this member while it joined; joining again", "err", err)
			return
		}
		select {
		case m.failed <- err:
		default:
		}
	}
}

// rejoinable reports whether err is one that a joining member recovers from
// by joining again, as kgo does: the group expelled it (its session timed
// out in the middle of the join: a paused or starved process) or moved to a
// newer generation, or a connection the broker had accepted broke or timed
// out in the middle of a request (a broker that holds a JoinGroup past the
// request timeout). A Join that failed on these would end a member that a
// second join makes whole. A broker that cannot be dialed is not
// rejoinable: Join fails and names it.
func rejoinable(err error) bool {
	if errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) ||
		errors.Is(err, kerr.RebalanceInProgress) {
		return true
	}
	if op := (*net.OpError)(nil); errors.As(err, &op) {
		return op.Op != "dial"
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrDeadlineExceeded)
}

// Tasks implements runtime.Membership.
func (m *member) Tasks() int { return m.tasks }

// MemberID implements runtime.Membership: the id the group coordinator
// gave this member (it changes when the member rejoins after losing its
// session).
func (m *member) MemberID() string {
	id, _ := m.cl.GroupMetadata()
	return id
}

// Leave implements runtime.Membership. It revokes the member's tasks
// (Revoked runs and returns first), then leaves the group, which hands the
// tasks to the other members at once. A static member (InstanceID) does
// not send the group a leave, as Kafka's clients do not: the group keeps
// its tasks for it until SessionTimeout passes, so that a restart within it
// gets them back without a rebalance. Leave must not be called from a
// callback (it waits for the callbacks to return).
func (m *member) Leave(ctx context.Context) error {
	m.leaveOnce.Do(func() {
		err := m.cl.LeaveGroupContext(ctx)
		m.cl.Close()
		if err != nil {
			m.leaveErr = fmt.Errorf("kafka cluster: leave group %q: %w", m.req.Group, err)
		}
	})
	return m.leaveErr
}

// kgoLogger logs kgo's messages through slog, its info at Debug level: kgo
// tells every step of the group protocol.
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelInfo }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	}
	l.log.Log(context.Background(), lv, "kgo: "+msg, keyvals...)
}
