package runtime

import (
	"context"
	"log/slog"
	"time"
)

// Cluster spreads one job over the processes started with the same
// Config.Group (--group): they form one job, each running some of its
// tasks. A task is one partition index of the job's co-partitioned input
// topics; it runs every operator's subtask of that index, so task i holds
// the key groups of subtask i of Tasks() and reads partition i of every
// input. Records cross tasks only through exchanges (one per keyed
// exchange of the pipeline), which the cluster carries.
//
// Package kafka implements Cluster over a Kafka consumer group and
// repartition topics (kafka.NewCluster): Kafka provides membership,
// failure detection, assignment and fencing, so weir runs no cluster
// manager of its own.
type Cluster interface {
	// Join makes this process a member of req.Group and returns once it
	// has joined. Tasks then come and go through req's callbacks until
	// Leave.
	Join(ctx context.Context, req JoinRequest) (Membership, error)
	// Exchange returns the two ends of the exchange called name, which
	// carries records between the tasks of a job of tasks tasks: a sink
	// whose subtask (in task i) writes each record to the task it names,
	// and a source whose subtask i reads what was written to task i. Both
	// take part in checkpoints as any connector: the sink commits its
	// records in two phases, the source keeps its read positions in the
	// checkpoint, and reads only committed records.
	Exchange(ctx context.Context, name string, tasks int) (SinkFactory[ExchangeRecord], SourceFactory[ExchangeRecord], error)
}

// JoinRequest is what Cluster.Join needs. The callbacks run on the
// cluster's goroutine, one at a time, and block the group's rebalance
// until they return.
type JoinRequest struct {
	Group string // the job's group, Config.Group
	// InstanceID, if set, is the member's static identity
	// (Config.InstanceID): a member restarted with the same one within
	// SessionTimeout gets its tasks back without a rebalance.
	InstanceID string
	// SessionTimeout is how long a member may go unheard before the group
	// gives its tasks to others (Config.GroupSessionTimeout).
	SessionTimeout time.Duration
	Logger         *slog.Logger
	// Assigned gives tasks to this member: it starts them, each from its
	// newest checkpoint.
	Assigned func(ctx context.Context, tasks []int)
	// Revoked takes tasks away in a rebalance: the member stops them with
	// a final checkpoint before it returns, so their next owner resumes
	// where they stopped.
	Revoked func(ctx context.Context, tasks []int)
	// Lost tells the member it no longer owns tasks it did not give back
	// (it was expelled from the group, after a pause for one): it stops
	// them at once, without a checkpoint, since another member may
	// already run them.
	Lost func(ctx context.Context, tasks []int)
}

// Membership is this process's place in a job's group.
type Membership interface {
	// Tasks returns the number of tasks of the job.
	Tasks() int
	// MemberID names this member in logs and status.
	MemberID() string
	// Leave leaves the group, revoking this member's tasks first.
	Leave(ctx context.Context) error
}

// ExchangeRecord is a record on its way between two tasks, encoded, or a
// marker of a sending task's event time (see exchange.go). A Cluster carries
// markers as it carries records: to the task they name, in the same
// transactions, in order with the records of their sender, and read only
// once committed.
type ExchangeRecord struct {
	Task      int    // the receiving task, 0 <= Task < tasks
	Key       []byte // the record's key, encoded with the key codec; nil on markers
	Value     []byte // the record, encoded with the record codec; nil on markers
	Timestamp int64  // event time in ms, or NoTimestamp; a WatermarkMarker's watermark
	Marker    Marker // NoMarker on records
	Sender    int    // on markers: the sending task, 0 <= Sender < tasks
}

// Marker says what an ExchangeRecord that is not a record tells its
// reader about the event time of its sender.
type Marker uint8

// The markers.
const (
	// NoMarker: the ExchangeRecord is a record.
	NoMarker Marker = iota
	// WatermarkMarker: the sender reached watermark Timestamp
	// (MaxWatermark at the end of its input).
	WatermarkMarker
	// IdleMarker: the sender turned idle (WatermarkStrategy.IdleTimeout)
	// and does not hold back the readers' watermarks until its next
	// WatermarkMarker.
	IdleMarker
)
