// Package conformance is the test suite every weir source and sink passes,
// and that a connector written outside weir can pass to prove that it keeps
// the exactly-once guarantee.
//
// Exactly-once output across crashes is a property of the whole pipeline,
// but each connector holds up its own end: a source resumes exactly after
// the position its snapshot describes (runtime.Source), and a two-phase
// sink makes an epoch visible exactly when its checkpoint completes, no
// earlier, never twice (runtime.Sink). The contracts are short; the ways to
// break them (a commit lost in a crash, a re-commit that is not idempotent,
// a failed checkpoint's data surfacing later, an offset one record off) show
// only under particular interleavings. The suite drives a connector through
// many random ones, calling it exactly as the runtime does, and compares
// the result with an uninterrupted run.
//
// # Sinks
//
// TestSink (or CheckSink, which returns an error) writes SinkSuite.Records
// through Parallelism subtasks, record i to subtask i mod Parallelism. A
// schedule is a random sequence of the runtime's calls: Writes; a checkpoint
// whose barrier reaches each subtask at its own step (PreCommit); the
// coordinator's decision, after asking sinks that implement
// runtime.PromiseChecker, that the checkpoint completes or fails; a Commit
// to each subtask, sometimes after its next PreCommit; and, between any two
// calls, a crash (every instance dropped without Close, as kill -9 drops a
// process), a failure (Close on every instance) or a clean stop (a final
// checkpoint, its commits, Close). After each of those, new instances are
// opened from the newest complete checkpoint, with the state PreCommit
// returned for it and TaskInfo.RestoredCommitted set where that subtask's
// Commit had returned before the end (a crash can fall between the Commit
// and the runtime's record of it, so the re-commit in Open must be
// idempotent), and the input is written again from the positions of that
// checkpoint. Checkpoint ids only grow, across restarts too. A crash does
// not close the dropped instances; SinkSuite.Kill, if set, releases what
// the death of the process would (connections, files, a server's locks).
//
// Right after every restore, SinkSuite.ReadCommitted must return exactly
// the records the restored checkpoint covers: what it promised is visible,
// and nothing written after it, pre-committed for a checkpoint that never
// completed or not, is. At the end of the input a final checkpoint is
// committed and every instance closed; the committed output must then be
// exactly Records, compared as multisets by SinkSuite.Key: no record lost,
// none duplicated. A sink that promises only at-least-once sets
// SinkSuite.AtLeastOnce: duplicates are then allowed, losses are not.
//
// Each schedule writes to its own destination, a name the suite passes to
// SinkSuite.New and ReadCommitted: a directory, a topic, a prefix of
// transactional ids.
//
// # Sources
//
// TestSource (or CheckSource) first reads each subtask's input without
// interruption, then, in each schedule, again with snapshots at random
// points between Reads (before the first record and after the last one
// included), checkpoints that complete or fail, and crashes or failures
// followed by a restore of every subtask from the newest complete
// checkpoint's snapshots. The records emitted before each completed
// snapshot, concatenated, are what a pipeline downstream saw; they must be
// the uninterrupted read, record for record, within each split (a Kafka
// partition, a file: SourceSuite.Split) whose order the source promises.
// A source restored from a snapshot taken at the end of its input must
// emit nothing and return runtime.ErrEndOfInput. The source must be bounded
// (for Kafka, StopAtEnd).
//
// # Schedules and seeds
//
// A suite runs Schedules random schedules (DefaultSchedules, a few
// seconds for an in-process connector; more for a soak), all derived from
// Seed: the same seed replays the same calls, so a failure reproduces. A
// failure reports the seed, the schedule and its last steps. TestSink and
// TestSource take a seed from the clock when Seed is zero and log it;
// weir's own tests pass internal/testseed's.
//
// A connector author's test is a few lines:
//
//	func TestConformance(t *testing.T) {
//		conformance.TestSink(t, conformance.SinkSuite[string]{
//			New:           func(dest string) (runtime.Sink[string], error) { return mysink.New(dest) },
//			ReadCommitted: func(dest string) ([]string, error) { return mysink.ReadAll(dest) },
//			Records:       records,
//		})
//	}
//
// The suite tests a connector on its own, in-process. Package weirtest
// tests a whole job binary under real kill -9.
package conformance
