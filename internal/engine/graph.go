package engine

import (
	"context"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/internal/statebackend"
)

// Graph is a job graph with its record types erased: package runtime
// builds one from a Pipeline, and the engine runs it. Build functions are
// called again at every start of the job, so a Graph runs any number of
// times.
type Graph struct {
	Name  string  // the job's name
	Nodes []*Node // in the order they were added, upstream before downstream
}

// Kind says what a node is.
type Kind uint8

// The kinds of nodes.
const (
	SourceNode Kind = iota
	OperatorNode
	SinkNode
)

func (k Kind) String() string {
	switch k {
	case SourceNode:
		return "source"
	case SinkNode:
		return "sink"
	}
	return "operator"
}

// Partitioning says how an edge spreads records over the receiving
// subtasks.
type Partitioning uint8

// The partitionings.
const (
	// Forward sends subtask i to subtask i, or round robin if the
	// parallelism differs.
	Forward Partitioning = iota
	// Hashed routes each record by key group (Edge.Router).
	Hashed
)

// Node is one operator of the graph.
type Node struct {
	ID          int
	Name        string
	Kind        Kind
	Parallelism int // 0: Config.Parallelism
	Inputs      []*Edge
	Outputs     []*Edge
	Keyed       bool // gets a keyed state backend (Env.Backend)
	// AssignsEventTime marks a node that assigns event time to its input
	// (runtime.AssignTimestamps): it starts a task of its own, ignores the
	// watermarks that reach it, and its Instance is a WatermarkGenerator
	// that the task asks for watermarks after each batch and on its clock.
	AssignsEventTime bool
	// EventTime marks a node whose records carry event timestamps: it
	// assigns them (a source with watermarks, AssignsEventTime) or an input
	// carries them (Connect propagates it). Only such nodes pay for
	// carrying timestamps (Env.Timestamp).
	EventTime bool
	Out       StreamType // type of the records the node emits; nil for sinks
	// Build opens one subtask of the node. It runs the user's setup (the
	// Open of a source, an operator or a sink) on the task's goroutine, with
	// panics turned into errors.
	Build func(env *Env) (Subtask, error)
}

// Edge connects the output of From to input number Index of To.
type Edge struct {
	From, To *Node
	Index    int
	Part     Partitioning
	// Router returns, for Hashed edges, a func(T) int from record to
	// receiving subtask; it is called once per sending subtask.
	Router func(maxParallelism, parallelism int) any
}

// Add appends a node to g. Package runtime checks names before.
func (g *Graph) Add(name string, kind Kind, out StreamType) *Node {
	n := &Node{ID: len(g.Nodes), Name: name, Kind: kind, Out: out}
	g.Nodes = append(g.Nodes, n)
	return n
}

// Connect adds an edge from from to the next input of to.
func Connect(from, to *Node, part Partitioning, router func(maxParallelism, parallelism int) any) {
	e := &Edge{From: from, To: to, Index: len(to.Inputs), Part: part, Router: router}
	to.EventTime = to.EventTime || from.EventTime
	from.Outputs = append(from.Outputs, e)
	to.Inputs = append(to.Inputs, e)
}

// Node returns the node called name, or nil.
func (g *Graph) Node(name string) *Node {
	for _, n := range g.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Env is what a node's Build needs for one subtask.
type Env struct {
	Ctx                context.Context
	Job, Operator      string
	Subtask            int
	Parallelism        int
	Task               *TaskScope // Config.Task: nil unless in task mode
	Logger             *slog.Logger
	CheckpointInterval time.Duration
	// RestoredCommitted is set for a sink subtask whose Commit of the
	// restored checkpoint had returned before the job stopped.
	RestoredCommitted bool
	Restored          []byte                // the subtask's state in the restored checkpoint, or nil
	Backend           *statebackend.Backend // keyed nodes only
	Out               any                   // Collector[T] of the node's output; nil for sinks
	Fail              func(error)           // fails the job; for errors on the hot path
	Watermark         *int64                // the task's current input watermark
	// Idle is set while the task has told downstream that it is idle
	// (its watermark holds back no one) until its next watermark.
	Idle *bool
	// Timestamp is the event timestamp of the record being processed, or
	// NoTimestamp: the gate sets it for each record it delivers, records
	// emitted carry it; set it before emitting to give a record another.
	// Nil unless the node's records carry event time (Node.EventTime).
	Timestamp *int64
	// LateDropped counts the records the operator dropped as late
	// (weir_late_records_dropped_total); operators only.
	LateDropped *atomic.Uint64
	// Rescaled is set, and Restored nil, when the node ran with another
	// parallelism in the restored checkpoint and kept state outside keys
	// there (see rescale.go).
	Rescaled *Rescaled
}

// Subtask is one opened subtask of a node, as Build returns it.
type Subtask struct {
	Instance Instance
	// In is the Collector[T] that feeds the subtask its input records; nil
	// for sources. If it holds records back, it implements Flusher.
	In any
	// Reports are the optional reports of a source or sink.
	Reports Reports
}

// Instance is the type-independent lifecycle of one subtask, which the task
// drives at barriers, on time and at the end. A source's Instance also
// implements Reader.
type Instance interface {
	// Snapshot returns the subtask's state for checkpoint id (a sink
	// pre-commits); it runs when barrier id passes the subtask.
	Snapshot(ctx context.Context, checkpointID uint64) ([]byte, error)
	// NotifyComplete runs once checkpoint id is durable (a sink commits).
	NotifyComplete(ctx context.Context, checkpointID uint64) error
	// Watermark runs when the task's input watermark advances, before the
	// watermark goes downstream.
	Watermark(wm int64)
	// ProcessingTime runs on the task's clock, if UsesProcessingTime.
	ProcessingTime(now int64)
	// UsesProcessingTime reports whether the task must run a clock for
	// ProcessingTime.
	UsesProcessingTime() bool
	// Finish runs at the end of a bounded input and may emit records.
	Finish() error
	Close() error
}

// Reader is implemented by the Instance of a source.
type Reader interface {
	// Read emits a bounded chunk of records to the node's output; ended
	// reports the end of a bounded input.
	Read(ctx context.Context) (ended bool, err error)
	WatermarkGenerator
}

// WatermarkGenerator derives a subtask's watermarks from the timestamps of
// the records it emitted: a source's (Reader), or a node's that
// AssignsEventTime.
type WatermarkGenerator interface {
	// EventTime returns the watermark to send after a Read or a batch, if
	// it advanced, and whether the subtask just turned idle.
	EventTime(now time.Time) (wm int64, advanced, idle bool)
	// MaxEventTime and RestoreEventTime carry the largest timestamp
	// emitted through checkpoints; ok is false without event time.
	MaxEventTime() (ts int64, ok bool)
	RestoreEventTime(ts int64)
}

// Flusher is implemented by input collectors that hold records back (keyed
// operators group records to prefetch their state): the task flushes them
// at the end of each batch and before barriers, watermarks and timers.
type Flusher interface{ Flush() }

// Reports are what a source or sink subtask may report beyond records;
// nil functions report nothing.
type Reports struct {
	// SourceLag is exported as weir_source_lag_records; it runs on the
	// metrics goroutine, concurrently with Read.
	SourceLag func() []PartitionLag
	// Transactions is exported as weir_sink_transactions_total; it runs on
	// the metrics goroutine.
	Transactions func() (committed, aborted uint64)
	// CheckPromise runs on the coordinator's goroutine just before the
	// manifest of checkpoint id is written; an error declines it.
	CheckPromise func(checkpointID uint64) error
}

// PartitionLag is the lag of one partition of a source.
type PartitionLag struct {
	Partition string
	Records   int64
}

// Collector receives records; it has the method set of runtime.Collector,
// so values convert between the two.
type Collector[T any] interface{ Collect(T) }

// Processor is an operator's record entry point.
type Processor[T any] interface{ Process(T) }

// ProcessorInput is an optional interface of a Subtask's In: an input that
// only hands each record to an operator's Process. The engine then counts
// and calls in one step instead of two calls through interfaces, each
// copying the record (Nexmark passes 136-byte events down two such edges
// per event).
type ProcessorInput[T any] interface {
	Collector[T]
	Processor() Processor[T]
}

// NoTimestamp is the timestamp of a record without event time.
const NoTimestamp int64 = math.MinInt64

// MinWatermark is the watermark before any was seen; MaxWatermark marks the
// end of the input.
const (
	MinWatermark int64 = math.MinInt64
	MaxWatermark int64 = math.MaxInt64
)
