// Package weirtest crash-tests a job binary: it proves, for your pipeline,
// connectors and state included, the guarantee weir makes (README, "The
// guarantee"): after any crash and a restart with the same flags, the
// committed output is what an uninterrupted run commits, every record
// exactly once.
//
// Check runs the job twice, each run in a fresh directory. The clean run
// starts the binary once and lets it finish. The crashed run starts it with
// the same flags, kills it with SIGKILL at random moments (Job.Kills), stops
// and resumes it with SIGSTOP/SIGCONT (Job.Pauses), optionally crashes it at
// named points of the checkpoint protocol (Job.ProtocolCrashes; a binary
// has them only when built with -tags weirfault, which Check adds when it
// builds Package, and a Binary without them is refused), and starts
// it again after every kill until it exits 0. Then it reads what each run
// committed (Job.Output: Files for the file sink, KafkaTopic for the Kafka
// sink read under read_committed, or your own reader of any store) and
// compares the two as multisets of records: the Report counts duplicates,
// lost records and records the clean run never wrote, with a few examples.
// Test wraps Check for go test:
//
//	func TestCrashes(t *testing.T) {
//		weirtest.Test(t, weirtest.Job{
//			Package: "example.com/myjob",
//			Args: []string{"--input", "testdata/in", "--output", "{dir}/out",
//				"--checkpoint-dir", "{dir}/ckpt", "--checkpoint-interval", "{interval}"},
//			Output: weirtest.Files{Dir: "{dir}/out"},
//			Kills:  5, Pauses: 3,
//		})
//	}
//
// `weir crashtest` does the same from the command line.
//
// The comparison needs a job whose committed output is a function of its
// input, as a multiset. A running aggregate whose intermediate values
// depend on how records from several partitions or subtasks interleave
// (examples/orders above parallelism 1: a customer's orders reach its total
// through two dedup subtasks) differs between two uninterrupted runs; test
// it at parallelism 1 on one input partition, or give an Output that reads
// only order-independent results.
//
// # Placeholders
//
// Job.Args hold placeholders: {dir} is the run's fresh directory (for the
// checkpoint directory and file output), {run} its unique name (for an
// output topic or a transactional id prefix: "out-{run}"), {interval} a
// checkpoint interval. Output takes {dir} and {run} too. Inputs stay the
// same for both runs: a Kafka input topic is read by both, from the start.
//
// Two more crash-test checkpoints in object storage: {s3} is
// s3://weirtest/<run name> on a development S3 server (package s3dev) that
// Check starts and stops, its endpoint and credentials added to the job's
// environment, and {start} a fresh empty directory for each start. With
// "--checkpoint-dir {s3} --local-dir {start}" every restart finds nothing
// on local disk and recovers from object storage alone, as a job moved to
// another machine does.
//
// # Rescaling
//
// The guarantee holds across a restart with another parallelism too: state
// is redistributed (README, "The guarantee"). {parallelism} in Job.Args
// follows the schedule Job.Parallelisms: start k of a crashed run (from 0)
// gets Parallelisms[k mod len(Parallelisms)], the clean run the first. With
//
//	Args:         []string{…, "--parallelism", "{parallelism}"},
//	Parallelisms: []int{2, 3, 1, 2}, Kills: 3,
//
// the crashed run starts at parallelism 2 and is restored, after each kill,
// at 3, then 1, then 2, and must still commit what the clean run at
// parallelism 2 committed. Report.Parallelisms lists what each start got.
// The comparison needs output that does not depend on the parallelism, as
// a multiset (see above).
//
// # Timing
//
// Nothing depends on the speed of the machine: the crashed run's pace comes
// from the clean run's working time W, from its first completed checkpoint
// to its exit (start-up costs, which every start pays again, are left
// out). With n crashes, {interval} is W/10n (100ms in the clean run), and
// each kill comes a random delay below W/5n after the start's first
// completed checkpoint, which the job's log reveals (the runtime's
// "checkpoint completed" line, text or JSON): every start makes progress,
// and the crashes use up at most about 3/10 of the input.
// The load of a shared machine can change between the two runs: a crashed
// run that finishes before its planned kills is compared, then run again in
// a fresh directory with kills twice as early (up to three crashed runs;
// Report.CrashedRuns). A job that still finishes before the planned kills
// fails the check with ErrTooShort rather than passing with fewer: give it
// more input, or pass {interval}. A fixed interval makes the test depend on
// the machine.
// NB: a killed start keeps what it read before its last completed
// checkpoint, and the source reads on while a checkpoint is in flight; a job
// whose checkpoints take long next to W/10n (a Kafka sink's take hundreds
// of milliseconds on a busy machine) keeps more per start, and needs more
// input or fewer kills.
//
// # Restarts in the process
//
// weir job binaries restart in the process after a failure (the runtime's
// --restart-attempts, default 10). The kit passes the flags as given and
// adds none: a SIGKILL ends the whole process, restart loop included, so
// every kill tests a cold recovery from the checkpoint directory whatever
// the flag says, and a failure short of a crash (a checkpoint declined
// after a long pause, a broker restart) is meant to be handled by the
// in-process restart that production runs with. The report counts those
// restarts (Report.Restarts) from the job's log so that they are not
// hidden. Add --restart-attempts 0 to the job's flags to make any such
// failure fail the check at once instead.
//
// # Seeds
//
// Every random choice (kill delays, pauses, the order of the crashes) comes
// from Job.Seed; the report and every error name it. Test takes it from
// the environment variable WEIR_TEST_SEED when set, from the clock
// otherwise, and a failed test logs the command that reruns it with its
// seed. Timing on a loaded machine differs from run to run, so a seed
// reproduces the plan, not the exact interleaving.
//
// # Related packages
//
// weirtest/verify checks one output for what the guarantee promises (no
// record twice, no gap in numbered records), by the records' own key and
// sequence fields; weirtest/orders generates sample orders with
// duplicates; weirtest/conformance runs a source or sink through the
// checks every connector passes; connectors/kafka/kafkatest runs an
// in-process Kafka broker for a job's tests.
package weirtest
