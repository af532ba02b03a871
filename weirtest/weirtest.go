package weirtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weirstream/weir/internal/fault"
	"github.com/weirstream/weir/internal/s3dev"
)

// Errors Check returns, wrapped with the seed and what happened.
var (
	// ErrOutputsDiffer means the crashed run committed other records than
	// the clean run: duplicates, losses or different records.
	ErrOutputsDiffer = errors.New("weirtest: committed outputs differ")
	// ErrJobFailed means a start of the job exited other than planned: a
	// non-zero exit status, a protocol crash that did not happen, or no
	// checkpoint before the end.
	ErrJobFailed = errors.New("weirtest: job failed")
	// ErrTooShort means the job finished before the planned kills,
	// protocol crashes and pauses had landed: give it more input or a
	// shorter checkpoint interval. The outputs were compared all the same
	// (a difference is reported as ErrOutputsDiffer instead), and the
	// report counts what landed.
	ErrTooShort = errors.New("weirtest: job finished before the planned kills")
	// ErrBadJob means the Job is not usable as given.
	ErrBadJob = errors.New("weirtest: bad job")
)

// Job is a job binary under test, its flags, and where it commits output.
type Job struct {
	// Binary is the path of the job's executable. If it is empty, Package
	// (an import path or a directory, as go build takes it) is built.
	Binary, Package string
	// Args are the job's flags, the same for every start. Placeholders:
	// {dir} becomes a fresh directory per run (for --checkpoint-dir and a
	// file sink's directory: "{dir}/ckpt"), {run} a unique name per run
	// (for an output topic or a transactional id prefix), and {interval}
	// a checkpoint interval derived from the clean run's working time (100ms
	// in the clean run). Args must hold {dir} or {run}: the two runs must
	// not share checkpoints or output. Two more test object storage:
	// {s3} becomes s3://weirtest/<run name> on a development S3 server the
	// kit starts for the Check (and its endpoint and credentials are added
	// to the job's environment), and {start} a fresh empty directory per
	// start, for --local-dir: every restart then recovers from the object
	// store alone, as on a new machine. {parallelism} follows
	// Parallelisms.
	Args []string
	// Parallelisms, if set, is the parallelism schedule that {parallelism}
	// in Args follows: start k (from 0) of a crashed run gets
	// Parallelisms[k mod len(Parallelisms)], the clean run
	// Parallelisms[0]. With --parallelism {parallelism} and {2, 3, 1, 2},
	// the job restores from each kill with another parallelism, which
	// tests that its state is redistributed (rescaled) with no record
	// lost or repeated. Args must hold {parallelism} when it is set, and
	// only then.
	Parallelisms []int
	// Env holds extra environment variables, as KEY=VALUE.
	Env []string
	// Output reads a run's committed output.
	Output Output

	// Kills is the number of random SIGKILLs in the crashed run, each in
	// its own start, after the start's first checkpoint.
	Kills int
	// Pauses is the number of SIGSTOP/SIGCONT pauses, spread over the
	// killed starts (over the last start if Kills is 0), each held up to
	// MaxPause (default: the kill delay bound). A pause longer than a Kafka
	// sink's transaction timeout tests that the job declines to promise an
	// expired transaction.
	Pauses   int
	MaxPause time.Duration
	// ProtocolCrashes are points of weir's checkpoint protocol at which a
	// start of the crashed run kills itself, as "point:n" (the n-th pass),
	// one start each: "before-manifest:2" (sinks pre-committed, checkpoint
	// not durable), "after-manifest:2" (checkpoint durable, sinks not
	// committed), "after-snapshot:3" (a subtask's snapshot written). Random
	// kills rarely land in these narrow windows. The points exist only in
	// a binary built with the tag weirfault: Check builds Package with it,
	// and refuses (ErrBadJob) a Binary that does not acknowledge the
	// points at start-up, rather than let it run without crashing.
	ProtocolCrashes []string

	// Seed fixes every random choice (0: from the clock). Reports and
	// errors carry it.
	Seed uint64
	// WorkDir holds the runs' directories (and a built binary). Empty: a
	// temporary directory, removed when the outputs are equal.
	WorkDir string
	// Timeout bounds each start of the job (default 10 minutes).
	Timeout time.Duration
	// Logf, if set, receives a line per start.
	Logf func(format string, args ...any)
}

// Run is one run of the job: its starts share Dir and Name.
type Run struct {
	// Name is unique per run and a valid Kafka topic name: "clean-1234".
	Name string
	// Dir is the run's fresh directory.
	Dir string
}

// Expand replaces {dir} and {run} in s.
func (r Run) Expand(s string) string {
	return strings.NewReplacer("{dir}", r.Dir, "{run}", r.Name).Replace(s)
}

const (
	// cleanInterval is {interval} in the clean run.
	cleanInterval = 100 * time.Millisecond
	// minInterval is the shortest derived checkpoint interval: about the
	// time a checkpoint takes to write, so that shorter ones would mostly
	// find the previous checkpoint in flight and skip the tick.
	minInterval = 10 * time.Millisecond
	// maxCrashedRuns bounds the crashed runs of a Check: see crash.
	maxCrashedRuns = 3
)

// Check runs the job once without interference (the clean run), then again
// in a fresh directory under Kills random SIGKILLs, Pauses pauses and the
// ProtocolCrashes, restarting it with the same flags after each kill until
// it exits 0 (the crashed run), and compares the committed outputs as
// multisets. It returns the report, and an error wrapping
// ErrOutputsDiffer if the outputs differ, or another of the package's
// errors if the test could not be carried out. Every error names the seed.
func Check(ctx context.Context, job Job) (*Report, error) {
	if err := job.validate(); err != nil {
		return nil, err
	}
	if job.Seed == 0 {
		job.Seed = uint64(time.Now().UnixNano())
	}
	if job.Timeout == 0 {
		job.Timeout = 10 * time.Minute
	}
	if job.Logf == nil {
		job.Logf = func(string, ...any) {}
	}
	r := &Report{Seed: job.Seed}
	own := job.WorkDir == ""
	if !own {
		if err := os.MkdirAll(job.WorkDir, 0o755); err != nil {
			return nil, fmt.Errorf("%w: WorkDir: %v", ErrBadJob, err)
		}
	} else {
		d, err := os.MkdirTemp("", "weirtest-*")
		if err != nil {
			return nil, err
		}
		job.WorkDir = d
	}
	err := check(ctx, &job, r)
	switch {
	case err == nil && own:
		os.RemoveAll(job.WorkDir)
	case err != nil:
		if own {
			err = fmt.Errorf("%w\n(runs kept in %s)", err, job.WorkDir)
		}
		err = fmt.Errorf("seed %d: %w", job.Seed, err)
	}
	return r, err
}

func (j *Job) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadJob, fmt.Sprintf(format, args...))
	}
	switch {
	case j.Binary == "" && j.Package == "":
		return bad("neither Binary nor Package names the job to run")
	case j.Output == nil:
		return bad("no Output to read the committed records with (Files for the file sink, KafkaTopic for the Kafka sink)")
	case j.Kills < 0 || j.Pauses < 0:
		return bad("Kills %d and Pauses %d must not be negative", j.Kills, j.Pauses)
	case j.Kills == 0 && j.Pauses == 0 && len(j.ProtocolCrashes) == 0:
		return bad("no Kills, Pauses or ProtocolCrashes: the crashed run would be a clean run")
	case j.MaxPause < 0 || j.Timeout < 0:
		return bad("MaxPause %v and Timeout %v must not be negative", j.MaxPause, j.Timeout)
	}
	if !slices.ContainsFunc(j.Args, func(a string) bool {
		return strings.Contains(a, "{dir}") || strings.Contains(a, "{run}")
	}) {
		return bad("job flags %q contain neither {dir} nor {run}: the clean and the crashed run need their own checkpoint directory and output (e.g. --checkpoint-dir {dir}/ckpt)", j.Args)
	}
	if err := j.validateParallelisms(); err != nil {
		return bad("%v", err)
	}
	for _, p := range j.ProtocolCrashes {
		if name, n, ok := strings.Cut(p, ":"); !ok || name == "" || n == "" || strings.Trim(n, "0123456789") != "" || strings.Trim(n, "0") == "" {
			return bad("protocol crash %q: want point:n with n >= 1, e.g. before-manifest:2", p)
		}
	}
	return nil
}

// parallelismPlaceholder is the placeholder of Job.Parallelisms in Args.
const parallelismPlaceholder = "{parallelism}"

func (j *Job) validateParallelisms() error {
	uses := slices.ContainsFunc(j.Args, func(a string) bool { return strings.Contains(a, parallelismPlaceholder) })
	switch {
	case uses && len(j.Parallelisms) == 0:
		return fmt.Errorf("job flags %q hold %s but Parallelisms is empty: give the schedule, e.g. []int{2, 3, 1, 2}", j.Args, parallelismPlaceholder)
	case !uses && len(j.Parallelisms) > 0:
		return fmt.Errorf("Parallelisms %v is set but no job flag holds %s: pass it, e.g. --parallelism %s", j.Parallelisms, parallelismPlaceholder, parallelismPlaceholder)
	}
	for _, p := range j.Parallelisms {
		if p < 1 {
			return fmt.Errorf("Parallelisms %v: parallelism %d < 1", j.Parallelisms, p)
		}
	}
	return nil
}

// parallelism returns the parallelism of start k of a run by the
// schedule, or 0 without one.
func (j *Job) parallelism(k int) int {
	if len(j.Parallelisms) == 0 {
		return 0
	}
	return j.Parallelisms[k%len(j.Parallelisms)]
}

func check(ctx context.Context, job *Job, r *Report) error {
	bin, err := job.binary(ctx)
	if err != nil {
		return err
	}
	s := &session{job: job, bin: bin, r: r}
	if slices.ContainsFunc(job.Args, func(a string) bool { return strings.Contains(a, "{s3}") }) {
		srv, err := s3dev.Start(s3dev.Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return fmt.Errorf("%w: {s3}: %v", ErrBadJob, err)
		}
		defer srv.Close()
		s.s3Env = srv.Env()
	}
	if r.Clean, err = s.newRun("clean"); err != nil {
		return err
	}
	began := time.Now()
	if _, err := s.start(ctx, r.Clean, start{kill: -1, parallelism: job.parallelism(0)}, cleanInterval); err != nil {
		return fmt.Errorf("clean run: %w", err)
	}
	r.CleanDuration = time.Since(began)
	job.Logf("weirtest: clean run took %v, %v of it after its first checkpoint", r.CleanDuration.Round(time.Millisecond), r.CleanWork.Round(time.Millisecond))

	for attempt := 1; ; attempt++ {
		err := s.crashAndCompare(ctx, attempt)
		if !errors.Is(err, ErrTooShort) || attempt == maxCrashedRuns {
			return err
		}
		job.Logf("weirtest: %v; the machine may have sped up since the clean run: again, with kills twice as early", err)
	}
}

// crashAndCompare carries out one crashed run, its pace scaled by
// 1/2^(attempt-1), and compares its output with the clean run's.
func (s *session) crashAndCompare(ctx context.Context, attempt int) error {
	r := s.r
	var err error
	if r.Crashed, err = s.newRun("crashed"); err != nil {
		return err
	}
	r.Starts, r.Kills, r.ProtocolCrashes, r.Pauses, r.Restarts, r.CrashedRuns = 0, 0, 0, 0, 0, attempt
	r.Parallelisms = nil
	// NB: a crashed run that finished before the planned kills still
	// committed its output: compare it, since duplicates or losses matter
	// more than the missing kills.
	crashErr := s.crash(ctx, time.Duration(1)<<(attempt-1))
	if crashErr != nil && !errors.Is(crashErr, ErrTooShort) {
		return fmt.Errorf("crashed run: %w", crashErr)
	}
	s.job.Logf("weirtest: crashed run done; comparing the committed outputs")
	if err := s.compare(ctx); err != nil {
		return err
	}
	if crashErr != nil {
		return fmt.Errorf("crashed run: %w", crashErr)
	}
	return nil
}

// faultTag is the build tag that compiles weir's fault points in.
const faultTag = "weirfault"

// binary returns the job's executable, building Package if needed.
func (j *Job) binary(ctx context.Context) (string, error) {
	if j.Binary != "" {
		return j.Binary, nil
	}
	bin := filepath.Join(j.WorkDir, "job")
	args := []string{"build", "-o", bin}
	if len(j.ProtocolCrashes) > 0 {
		args = append(args, "-tags", faultTag)
	}
	out, err := exec.CommandContext(ctx, "go", append(args, j.Package)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%w: go build %s: %v\n%s", ErrBadJob, j.Package, err, out)
	}
	return bin, nil
}

// session is one Check in progress.
type session struct {
	job    *Job
	bin    string
	r      *Report
	s3Env  []string // the environment of the {s3} server, if any
	starts int      // starts of the job in all runs, naming {start} directories
}

func (s *session) newRun(kind string) (Run, error) {
	d, err := os.MkdirTemp(s.job.WorkDir, kind+"-*")
	if err != nil {
		return Run{}, err
	}
	return Run{Name: filepath.Base(d), Dir: d}, nil
}

// start is one start of the job in the crashed run's plan.
type start struct {
	crashAt     string        // a protocol crash point, or ""
	kill        time.Duration // SIGKILL this long after the first checkpoint; < 0: run to the end
	pauses      []pause
	parallelism int // what {parallelism} becomes; 0 without a schedule
}

// pause stops the job at (after the first checkpoint, in running time)
// for hold.
type pause struct{ at, hold time.Duration }

func (st start) String() string {
	var s string
	switch {
	case st.crashAt != "":
		s = "crash at " + st.crashAt
	case st.kill >= 0:
		s = fmt.Sprintf("SIGKILL %v after the first checkpoint, %d pauses", st.kill.Round(time.Microsecond), len(st.pauses))
	default:
		s = fmt.Sprintf("to the end, %d pauses", len(st.pauses))
	}
	if st.parallelism > 0 {
		s += fmt.Sprintf(", parallelism %d", st.parallelism)
	}
	return s
}

// plan returns the crashed run's starts: the kills and protocol crashes in
// a random order, then a start that runs to the end.
func (s *session) plan(rng *rand.Rand) []start {
	job, r := s.job, s.r
	var plan []start
	for _, p := range job.ProtocolCrashes {
		plan = append(plan, start{crashAt: p})
	}
	for range job.Kills {
		plan = append(plan, start{kill: time.Duration(rng.Float64() * float64(r.MaxKillDelay))})
	}
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	plan = append(plan, start{kill: -1})
	hold := job.MaxPause
	if hold == 0 {
		hold = r.MaxKillDelay
	}
	var killed []int // the starts that can take pauses
	for i, st := range plan {
		if st.crashAt == "" && st.kill >= 0 {
			killed = append(killed, i)
		}
	}
	if len(killed) == 0 {
		killed = []int{len(plan) - 1}
	}
	for range job.Pauses {
		i := killed[rng.IntN(len(killed))]
		end := plan[i].kill
		if end < 0 {
			end = r.MaxKillDelay
		}
		p := pause{at: time.Duration(rng.Float64() * float64(end)), hold: time.Duration(rng.Float64() * float64(hold))}
		plan[i].pauses = append(plan[i].pauses, p)
	}
	for i := range plan {
		slices.SortFunc(plan[i].pauses, func(a, b pause) int { return cmp.Compare(a.at, b.at) })
		plan[i].parallelism = job.parallelism(i)
	}
	return plan
}

// crash carries out the crashed run. Its pace derives from the clean run's
// working time W (from its first completed checkpoint to its exit) so that
// it is the same on any machine: with n crashes, the checkpoint interval is
// W/10n and a kill comes less than W/5n after a start's first checkpoint.
// A killed start keeps at most what it read before its last completed
// checkpoint, about interval + kill delay, so the crashes use up at most
// 3/10 of W. W leaves out the fixed costs of a start (process start,
// connections, restore, first checkpoint), which come again with every
// start: paced by the whole run, a job whose start-up is most of it would
// finish before its kills.
//
// The load of a shared machine can change between the clean run and the
// crashed run; a crashed run that finishes before its kills (ErrTooShort)
// is compared, then tried again in a fresh directory with the pace divided
// by slower (2, then 4), up to maxCrashedRuns in all.
func (s *session) crash(ctx context.Context, slower time.Duration) error {
	job, r := s.job, s.r
	n := time.Duration(max(1, job.Kills+len(job.ProtocolCrashes))) * slower
	work := r.CleanWork
	if work <= 0 {
		work = r.CleanDuration // no checkpoint in the clean run: ErrTooShort will say so
	}
	r.Interval = max(work/(10*n), minInterval)
	r.MaxKillDelay = work / (5 * n)
	rng := rand.New(rand.NewPCG(job.Seed, 0x77656972))
	plan := s.plan(rng)
	wantPauses := job.Pauses
	for i, st := range plan {
		finished, err := s.start(ctx, r.Crashed, st, r.Interval)
		if err != nil {
			return fmt.Errorf("start %d (%v): %w", i, st, err)
		}
		if finished && i < len(plan)-1 {
			return fmt.Errorf("%w: it finished after %d of %d kills (%d at protocol points) and %d of %d pauses; the clean run worked %v after its first checkpoint: give it more input, or pass {interval} as its checkpoint interval",
				ErrTooShort, r.Kills, job.Kills+len(job.ProtocolCrashes), r.ProtocolCrashes, r.Pauses, wantPauses, r.CleanWork.Round(time.Millisecond))
		}
	}
	if r.Pauses < wantPauses {
		return fmt.Errorf("%w: only %d of %d pauses landed; the clean run worked %v after its first checkpoint: give it more input",
			ErrTooShort, r.Pauses, wantPauses, r.CleanWork.Round(time.Millisecond))
	}
	return nil
}

// start runs one start of the job in run and reports whether it finished
// (exit status 0); a planned kill that lands returns false.
func (s *session) start(ctx context.Context, run Run, st start, interval time.Duration) (finished bool, err error) {
	job, r := s.job, s.r
	args, err := s.args(run, st, interval)
	if err != nil {
		return false, err
	}
	env := append(slices.Clone(s.s3Env), job.Env...)
	needAck := len(job.ProtocolCrashes) > 0 // in the clean run too: fail early
	if needAck {
		env = append(env, fault.CheckEnvVar+"=1")
	}
	if st.crashAt != "" {
		env = append(env, fault.EnvVar+"="+st.crashAt)
	}
	c, err := startChild(s.bin, args, env, needAck)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrBadJob, err)
	}
	defer c.kill()
	if run == r.Crashed {
		r.Starts++
		if st.parallelism > 0 {
			r.Parallelisms = append(r.Parallelisms, st.parallelism)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, job.Timeout)
	defer cancel()
	if st.crashAt == "" && (st.kill >= 0 || len(st.pauses) > 0) {
		if err := s.interfere(ctx, c, st); err != nil {
			return false, fmt.Errorf("%w\n%s", err, c.log())
		}
	}
	code, sig, err := c.wait(ctx)
	if first := c.firstCheckpoint(); run == r.Clean && !first.IsZero() {
		r.CleanWork = time.Since(first)
	}
	restarts, injected, acked := c.counts()
	r.Restarts += restarts
	switch {
	case needAck && !acked:
		return false, fmt.Errorf("%w: job binary %s has no fault points (it did not write %q at start-up), so ProtocolCrashes would never crash it: build it with go build -tags %s, or give Package and let the kit build it\n%s",
			ErrBadJob, s.bin, fault.AckLine, faultTag, c.log())
	case err != nil:
		return false, fmt.Errorf("%w: no exit within %v (Job.Timeout)\n%s", ErrJobFailed, job.Timeout, c.log())
	case st.crashAt != "" && code == 0:
		finished = true // before passing the point that often: too short
	case st.crashAt != "" && (sig != syscall.SIGKILL || !injected):
		return false, fmt.Errorf("%w: want death by SIGKILL at %s, got exit status %d (signal %v): a weir job binary crashes there if the point is passed that often\n%s",
			ErrJobFailed, st.crashAt, code, sig, c.log())
	case st.crashAt != "":
		r.Kills++
		r.ProtocolCrashes++
	case sig == syscall.SIGKILL && st.kill >= 0:
		r.Kills++
	case code != 0:
		return false, fmt.Errorf("%w: exit status %d (signal %v)\n%s", ErrJobFailed, code, sig, c.log())
	default:
		finished = true
	}
	job.Logf("weirtest: %s start (%v): %s", run.Name, st, outcome(finished, sig))
	if st.kill >= 0 && st.crashAt == "" && finished {
		job.Logf("weirtest: the start exited before its kill, %v after its first checkpoint", st.kill)
	}
	return finished, nil
}

// args expands the job's flags for the next start st in run.
func (s *session) args(run Run, st start, interval time.Duration) ([]string, error) {
	s.starts++
	fresh := filepath.Join(run.Dir, fmt.Sprintf("start-%d", s.starts))
	ph := strings.NewReplacer("{interval}", interval.String(), "{start}", fresh, "{s3}", s3Bucket+run.Name,
		parallelismPlaceholder, strconv.Itoa(st.parallelism))
	args := make([]string, len(s.job.Args))
	for i, a := range s.job.Args {
		args[i] = ph.Replace(run.Expand(a))
		if strings.Contains(a, "{start}") {
			if err := os.Mkdir(fresh, 0o755); err != nil && !os.IsExist(err) {
				return nil, err
			}
		}
	}
	return args, nil
}

// s3Bucket is the bucket of {s3}; the job creates it.
const s3Bucket = "s3://weirtest/"

func outcome(finished bool, sig syscall.Signal) string {
	if finished {
		return "exited 0"
	}
	if sig == syscall.SIGKILL {
		return "killed by SIGKILL"
	}
	return "ended by signal " + sig.String()
}

// interfere waits for the start's first checkpoint, then pauses and kills
// it on the start's schedule, stopping early if the job exits.
func (s *session) interfere(ctx context.Context, c *child, st start) error {
	select {
	case <-c.checkpoints:
	case <-c.exited:
		// NB: the last line and the exit can be ready together; start
		// tells a finished job (too short) from a failed one by its exit.
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: no checkpoint within %v (Job.Timeout)", ErrJobFailed, s.job.Timeout)
	}
	elapsed := time.Duration(0) // running time since the first checkpoint
	for _, p := range st.pauses {
		if !sleep(ctx, c, p.at-elapsed) {
			return nil
		}
		elapsed = p.at
		c.signal(syscall.SIGSTOP)
		t := time.NewTimer(p.hold)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		c.signal(syscall.SIGCONT)
		s.r.Pauses++
	}
	if st.kill >= 0 && sleep(ctx, c, st.kill-elapsed) {
		c.signal(syscall.SIGKILL)
	}
	return nil
}

// sleep waits d and reports whether the child is still running.
func sleep(ctx context.Context, c *child, d time.Duration) bool {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.exited:
	case <-ctx.Done():
	}
	return false
}

// compare reads both outputs and fills the report's comparison: their
// fingerprints, and if those differ, their sorted hashes and the examples.
func (s *session) compare(ctx context.Context) error {
	r, out := s.r, s.job.Output
	seed := maphash.MakeSeed()
	n, sum, err := fingerprint(ctx, out, r.Clean, seed)
	if err != nil {
		return fmt.Errorf("clean run: %w", err)
	}
	m, sum2, err := fingerprint(ctx, out, r.Crashed, seed)
	if err != nil {
		return fmt.Errorf("crashed run: %w", err)
	}
	r.CleanRecords, r.CrashedRecords = n, m
	if n != m || sum != sum2 {
		if err := s.differences(ctx, seed); err != nil {
			return err
		}
	}
	if r.CleanRecords == 0 {
		return fmt.Errorf("%w: the clean run committed no records (is Output reading where the job writes?)", ErrJobFailed)
	}
	if !r.OK() {
		return fmt.Errorf("%w:\n%v", ErrOutputsDiffer, r)
	}
	return nil
}

// differences counts the differing records and finds a few examples.
func (s *session) differences(ctx context.Context, seed maphash.Seed) error {
	r, out := s.r, s.job.Output
	clean, err := hashes(ctx, out, r.Clean, seed)
	if err != nil {
		return fmt.Errorf("clean run: %w", err)
	}
	crashed, err := hashes(ctx, out, r.Crashed, seed)
	if err != nil {
		return fmt.Errorf("crashed run: %w", err)
	}
	return r.examples(ctx, out, seed, r.compare(clean, crashed))
}
