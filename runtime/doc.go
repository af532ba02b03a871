// Package runtime is the user's API of weir: the typed DSL on which package
// operators is built (Pipeline, Stream, KeyedStream, From, To, Apply,
// ApplyKeyed, Merge), the contracts of sources, sinks and operators, the
// job's Config and flags, and Main and Run, which run a pipeline. The
// machinery that runs it (tasks, channels, the checkpoint coordinator,
// recovery, restarts, metrics and the status server) is in
// internal/engine, whose documentation describes how it works.
//
// # Building
//
// A pipeline is a graph of named operators built first and run later.
// Sources (From) produce a Stream[T]; every transformation takes a stream and
// returns a new one; Merge joins streams of one type; sinks (To) end a
// branch. Errors found while building (a duplicate name, a key type without
// a codec, a nil factory) are kept and returned by Pipeline.Err, Run and
// Main before anything starts; construction never panics.
//
// Each operator runs as Parallelism subtasks. Operators connected one to
// one with equal parallelism run in one goroutine as plain function calls;
// other edges move records between goroutines in batches, under flow
// control, so that a slow operator slows its inputs down. Records of a
// keyed stream go to subtasks by key group (see package state), which is
// what makes state redistributable.
//
// # Contracts
//
// A Source, an Operator (or KeyedOperator) and a two-phase Sink each have
// one interface whose documentation states the call order around
// checkpoint barriers. The runtime makes one instance per subtask through
// the factory given to From, Apply or To, at every start of the job; a
// factory's error fails that start like an error of Open. Optional
// interfaces let connectors report more: LagReporter, TransactionReporter
// and PromiseChecker; a Source that acknowledges or reports progress
// elsewhere learns of complete checkpoints through CheckpointListener, and
// a Sink that holds data back across checkpoints learns of the end of its
// input through EndOfInputHandler. An exactly-once sink need not write the
// pending-commit bookkeeping itself: NewTwoPhaseSink turns a
// TwoPhaseWriter (write, prepare committables at a barrier, commit them
// idempotently, recover) into a Sink that keeps the committables in the
// checkpoint, as Flink's Sink V2 Committer does; a committable that
// implements CommittableDescriber is kept with its human form, which
// `weir checkpoints inspect` shows.
//
// # Checkpoints and the guarantee
//
// Every Config.CheckpointInterval a checkpoint barrier flows from the
// sources through the graph with the records: sources record their
// position, operators their state, sinks pre-commit. Once every subtask
// has, the checkpoint is durable in Config.CheckpointDir, and only then do
// sinks commit. After a crash, the next start restores the newest complete
// checkpoint: the sources resume from its positions and the sinks finish
// or discard what they pre-committed, so committed output holds every
// record exactly once (see the README, "The guarantee"). A savepoint
// (Config.SavepointDir, Config.FromSavepoint) is a self-contained copy of a
// checkpoint that a job can be moved, or started again, with. A job spread
// over processes has group savepoints instead, one savepoint per task,
// written by 'weir checkpoints savepoint' once the group has stopped and
// started from with FromSavepoint (package internal/tasklineage).
//
// # Running
//
// Main is the main function of a job binary: it runs the pipeline with the
// configuration the standard flags give (RegisterFlags), stops it with a
// final checkpoint on SIGINT or SIGTERM, and exits with a status that says
// how it ended. Run is the same for embedding and tests, without signals
// or exit: it returns the job's error, stops with a final checkpoint when
// Config.Stop is closed, and at once when its context is cancelled. Both
// restart a failed job in the process by Config.Restart (the --restart-*
// flags), each restart resuming from the last complete checkpoint, except
// after errors no restart can fix (invalid configuration, an unusable or
// locked checkpoint directory, a corrupt or incompatible checkpoint,
// ErrUnrecoverable). An error of any subtask, or a panic of user code
// (ErrPanic), fails the whole job. EventListener observes starts and
// checkpoints.
//
// # Observability
//
// With Config.MetricsAddr (the --metrics-addr flag) a job serves Prometheus
// metrics at /metrics, /healthz, /readyz (unready when checkpoints stop
// completing) and a status page at / backed by the JSON of /api/status;
// StartInfo.MetricsAddr tells the address bound. It serves HTTPS with
// Config.MetricsTLSCertFile and requires Config.MetricsAuth on all but the
// probes when set.
//
// # Event time
//
// AssignTimestamps gives any stream event time (a source given
// WithWatermarks does the same inside its subtasks, and can take the times
// the source itself gives through TimestampCollector, such as Kafka
// timestamps): it assigns each record its timestamp, which the record
// carries through every later operator (OperatorContext.Timestamp), and
// emits watermarks, which flow with the records; operators with several
// inputs forward the minimum, idle inputs excepted. Operators that drop records behind the watermark count them
// with OperatorContext.DroppedLate (weir_late_records_dropped_total). Keyed operators that implement
// TimerHandler get event-time and processing-time timers, stored as keyed
// state. The watermark of every task is part of each checkpoint.
//
// # One job over many processes (groups)
//
// Processes of one job binary started with the same Config.Group (--group
// NAME) and Config.Cluster (kafka.NewCluster) form one job, as Kafka
// Streams' instances do: they join the Kafka consumer group NAME, and the
// group shares the job's tasks among them. A task is one partition index
// of the job's co-partitioned input topics; it runs subtask i of every
// operator, so the task count is the inputs' partition count and
// --parallelism is refused with --group (so are --from-savepoint and
// --savepoint-dir, for now). Records cross tasks only through exchanges
// (Cluster.Exchange). Without --group, nothing of this applies.
//
// In a task, every keyed edge (KeyBy into a keyed operator OP) is cut into
// a sink "OP.exchange.send", which encodes each record and sends it to the
// task owning its key, and a source "OP.exchange.receive" that feeds OP;
// the exchange itself is called "OP.exchange" (exchange.go). A record
// crossing an exchange needs a codec: the built-in one of its type, JSON
// for types JSON carries whole, or the one WithCodec gives; a group job
// whose records have none refuses to start, naming the KeyBy. Operators may
// not set their own parallelism. Event time crosses an exchange: records
// keep their timestamps, and each task's watermark goes to every task as
// a marker in its checkpoint's transaction; a task's watermark downstream
// is the minimum over the sending tasks, kept in its checkpoints
// (exchange.go), so windows and timers fire as in one process, one
// checkpoint later.
//
// Each member runs each of its tasks as a job of its own, with its own
// checkpoints and restarts (Config.Restart), in
// CheckpointDir/task-<i>/epoch-<n>: CheckpointDir must be one location
// every member reaches, a shared directory (a ReadWriteMany volume) or
// s3://; the live state stays in each member's LocalDir (for a shared
// directory, when LocalDir is set: recommended, since live Pebble state on
// a network filesystem is slow). A task
// given to a member (Assigned) claims the task's next epoch, into which its
// newest complete checkpoint is imported, and resumes from it; a task taken
// away in a rebalance (Revoked) stops with a final checkpoint first; a task
// lost (the member was expelled after a pause past
// --group-session-timeout, default 45s) stops at once: its new owner has
// fenced it (its sinks' transactions, and its checkpoints, since restore
// follows only the newest epoch; package internal/tasklineage). A
// --instance-id (a StatefulSet pod's name) makes membership static: a
// member restarted within the session timeout gets its tasks back without
// a rebalance.
//
// Config.Stop (SIGTERM under Main) stops every task with a final
// checkpoint, then leaves the group. A task that fails for good (beyond
// its restarts, or unrecoverably) stops the others the same way, and Run
// returns its error: the process exits, and its orchestrator starts it
// again. A task that fails once another member claimed it (its new owner's
// sinks fenced it before the group told this member) stops alone: that is
// the takeover, not a failure. The member serves one status server for all its tasks
// (Config.MetricsAddr): /readyz is ready once every task it owns runs and
// completes checkpoints (a member without tasks is ready), /api/status
// (MemberStatus) names the member and each task's epoch and last
// checkpoint, and /metrics holds every task's metrics with a task label.
// Logs name the group, member, task and epoch.
package runtime
