package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/weirtest"
)

const crashtestSynopsis = `crashtest (--output-dir DIR | --output-topic T --brokers ADDR) [--kills N] [--pauses N] [--seed N] -- JOB [JOB FLAGS...]

Runs JOB (a job binary, or a Go package directory to build) once cleanly and once
under --kills random SIGKILLs and --pauses SIGSTOP/SIGCONT pauses, restarting it
with the same flags after each kill until it exits 0, then compares what the two
runs committed as multisets and reports duplicates, lost and different records.
Exits 1 if they differ or the job fails, 0 if they are equal.

In JOB FLAGS and the output flags, {dir} becomes a fresh directory per run,
{run} a unique name per run (for topics and transactional ids), and {interval}
a checkpoint interval derived from how long the clean run worked after its
first checkpoint. Example:

  weir crashtest --output-dir '{dir}/out' --kills 5 --pauses 2 -- \
      ./myjob --input in.txt --output '{dir}/out' --checkpoint-dir '{dir}/ckpt' \
      --checkpoint-interval '{interval}'`

func runCrashtest(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "crashtest", crashtestSynopsis)
	outputDir := fs.String("output-dir", "", "committed output of the file sink, with {dir}: `DIR` such as {dir}/out")
	outputTopic := fs.String("output-topic", "", "output `topic`, read under read_committed, with {run}: such as out-{run} (needs --brokers)")
	brokersFlag := fs.String("brokers", "", "Kafka bootstrap `addresses` for --output-topic, comma-separated")
	kills := fs.Int("kills", 5, "random SIGKILLs in the crashed run")
	pauses := fs.Int("pauses", 0, "SIGSTOP/SIGCONT pauses in the crashed run")
	maxPause := fs.Duration("max-pause", 0, "longest pause (0: the kill delay bound, derived from the clean run)")
	var crashes []string
	fs.Func("crash-at", "also crash at a point of the checkpoint protocol, `point:n` (repeatable): before-manifest:2, after-manifest:2, after-snapshot:3; a JOB binary must be built with -tags weirfault (a package directory is)", func(s string) error {
		crashes = append(crashes, s)
		return nil
	})
	seed := fs.Uint64("seed", 0, "seed of the random choices (0: from the clock); a report names it")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up on a start of the job after this long")
	workDir := fs.String("work-dir", "", "`directory` for the runs (default: a temporary one, removed if the outputs are equal)")
	quiet := fs.Bool("quiet", false, "do not log each start of the job")
	secFlags := kafka.RegisterSecurityFlags(fs)

	own, jobArgs, found := splitDashes(args)
	if err := parse(fs, own); err != nil {
		return err
	}
	if !found || len(jobArgs) == 0 {
		return usagef("missing the job: put it after --, as in: weir crashtest --output-dir '{dir}/out' -- ./myjob --output '{dir}/out' --checkpoint-dir '{dir}/ckpt'")
	}
	job := weirtest.Job{Args: jobArgs[1:], Kills: *kills, Pauses: *pauses, MaxPause: *maxPause,
		ProtocolCrashes: crashes, Seed: *seed, Timeout: *timeout, WorkDir: *workDir}
	var err error
	if job.Binary, job.Package, err = jobPath(jobArgs[0]); err != nil {
		return err
	}
	sec, err := secFlags.Security()
	if err != nil {
		return usagef("%v", err)
	}
	if job.Output, err = crashtestOutput(*outputDir, *outputTopic, *brokersFlag, sec); err != nil {
		return err
	}
	if !*quiet {
		job.Logf = func(format string, args ...any) { fmt.Fprintf(e.stderr, format+"\n", args...) }
	}
	r, err := weirtest.Check(ctx, job)
	switch {
	case errors.Is(err, weirtest.ErrBadJob):
		return usagef("%v", err)
	case errors.Is(err, weirtest.ErrOutputsDiffer):
		fmt.Fprintln(e.stdout, r)
		fmt.Fprintf(e.stdout, "FAIL: the crashed run committed other records than the clean run (rerun with --seed %d)\n", r.Seed)
		return &exitError{code: exitFailure}
	case errors.Is(err, weirtest.ErrTooShort):
		fmt.Fprintln(e.stdout, r) // the outputs were compared all the same
		return err
	case err != nil:
		return err
	}
	fmt.Fprintln(e.stdout, r)
	fmt.Fprintln(e.stdout, "ok: the crashed run committed exactly what the clean run committed")
	return nil
}

// splitDashes splits args at the first "--".
func splitDashes(args []string) (own, job []string, found bool) {
	for i, a := range args {
		if a == "--" {
			return args[:i], args[i+1:], true
		}
	}
	return args, nil, false
}

// jobPath says whether p is a job binary or a Go package directory to build.
func jobPath(p string) (binary, pkg string, err error) {
	fi, err := os.Stat(p)
	switch {
	case err == nil && fi.IsDir():
		return "", p, nil
	case err == nil && fi.Mode()&0o111 != 0:
		return p, "", nil
	case err == nil:
		return "", "", usagef("job %q is not executable: give a job binary or a Go package directory", p)
	case !strings.Contains(p, "/"):
		if bin, err := exec.LookPath(p); err == nil {
			return bin, "", nil
		}
	}
	return "", "", usagef("job %q: no such file, directory or command: give the path of a job binary or of a Go package directory (./cmd/myjob)", p)
}

// crashtestOutput builds the reader of committed output the flags ask for.
func crashtestOutput(dir, topic, brokersFlag string, sec kafka.Security) (weirtest.Output, error) {
	switch {
	case dir != "" && topic != "":
		return nil, usagef("give either --output-dir or --output-topic, not both")
	case dir != "":
		if !strings.Contains(dir, "{dir}") {
			return nil, usagef("--output-dir %q has no {dir}: each run needs its own output directory, as in '{dir}/out' (and the job's own flag the same)", dir)
		}
		return weirtest.Files{Dir: dir}, nil
	case topic != "":
		if !strings.Contains(topic, "{run}") {
			return nil, usagef("--output-topic %q has no {run}: each run needs its own topic, as in 'out-{run}' (and the job's own flag the same)", topic)
		}
		brokers, err := brokerList(brokersFlag)
		if err != nil {
			return nil, err
		}
		return weirtest.KafkaTopic{Brokers: brokers, Topic: topic, Security: sec}, nil
	}
	return nil, usagef("say where the job commits its output: --output-dir '{dir}/out' (file sink) or --output-topic 'out-{run}' --brokers ADDR (Kafka sink)")
}
