package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/devbroker/devbrokertest"
	"github.com/weirstream/weir/internal/e2e"
	"github.com/weirstream/weir/internal/testbin"
	"github.com/weirstream/weir/internal/testseed"
)

// runWeir runs the command in the process and returns its exit code and
// output.
func runWeir(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func TestCrashtestBadFlags(t *testing.T) {
	job := filepath.Join(t.TempDir(), "job")
	if err := os.WriteFile(job, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExec := filepath.Join(t.TempDir(), "data.txt")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--output-dir", "{dir}/out"}, "missing the job: put it after --"},
		{[]string{"--output-dir", "{dir}/out", "--"}, "missing the job"},
		{[]string{"--", job, "{dir}"}, "say where the job commits its output"},
		{[]string{"--output-dir", "{dir}/out", "--output-topic", "t-{run}", "--", job, "{dir}"}, "not both"},
		{[]string{"--output-dir", "out", "--", job, "{dir}"}, `--output-dir "out" has no {dir}`},
		{[]string{"--output-topic", "out", "--brokers", "127.0.0.1:9092", "--", job, "{run}"}, `--output-topic "out" has no {run}`},
		{[]string{"--output-topic", "out-{run}", "--", job, "{run}"}, "--brokers is required"},
		{[]string{"--output-dir", "{dir}/out", "--", "./no/such/job", "{dir}"}, `job "./no/such/job": no such file`},
		{[]string{"--output-dir", "{dir}/out", "--", notExec, "{dir}"}, "is not executable"},
		{[]string{"--output-dir", "{dir}/out", "--", job, "--checkpoint-dir", "ckpt"}, "contain neither {dir} nor {run}"},
		{[]string{"--output-dir", "{dir}/out", "--kills", "-1", "--", job, "{dir}"}, "must not be negative"},
		{[]string{"--output-dir", "{dir}/out", "--kills", "0", "--", job, "{dir}"}, "no Kills, Pauses or ProtocolCrashes"},
		{[]string{"--output-dir", "{dir}/out", "--crash-at", "before-manifest", "--", job, "{dir}"}, "want point:n"},
		{[]string{"--output-dir", "{dir}/out", "stray", "--", job, "{dir}"}, `unexpected argument "stray"`},
		{[]string{"--output-topic", "out-{run}", "--brokers", "127.0.0.1:9092", "--kafka-sasl-mechanism", "bogus", "--", job, "{run}"}, `unknown SASL mechanism "bogus"`},
	} {
		r := runWeir(t, append([]string{"crashtest"}, c.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("weir crashtest %q: exit %d, stderr %q; want exit %d saying %q", c.args, r.code, r.stderr, exitUsage, c.want)
		}
	}
	if r := runWeir(t, "crashtest", "--kills", "x"); r.code != exitUsage || !strings.Contains(r.stderr, "invalid value") {
		t.Errorf("--kills x: exit %d, stderr %q", r.code, r.stderr)
	}
}

// writeWords writes files of random words for wordcount and returns their
// glob.
func writeWords(t *testing.T, seed uint64, files, lines int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	for f := range files {
		var b bytes.Buffer
		for range lines {
			for w := range 12 {
				if w > 0 {
					b.WriteByte(' ')
				}
				fmt.Fprintf(&b, "w%x", rng.IntN(3000))
			}
			b.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("in-%d.txt", f)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "*.txt")
}

// wordcountPkg is the wordcount example's package directory.
const wordcountPkg = "../../examples/wordcount"

// wordcountArgs are the crashtest arguments for the wordcount example job
// (its package directory for the kit to build, or a binary), after own.
func wordcountArgs(t *testing.T, seed uint64, job string, own ...string) []string {
	args := append([]string{"crashtest", "--output-dir", "{dir}/out", "--seed", strconv.FormatUint(seed, 10),
		"--work-dir", filepath.Join(t.TempDir(), "runs")}, own...)
	return append(args, "--", job, "--input", writeWords(t, seed, 4, 40000),
		"--output", "{dir}/out", "--checkpoint-dir", "{dir}/ckpt", "--checkpoint-interval", "{interval}", "--parallelism", "2")
}

func TestCrashtestFilesExact(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a job binary many times")
	}
	seed := testseed.Seed(t)
	// NB: the one test of the kit building a package directory; the others
	// run the binary built once (a link costs seconds of CPU).
	r := runWeir(t, wordcountArgs(t, seed, wordcountPkg, "--kills", "3", "--pauses", "2", "--crash-at", "after-manifest:2")...)
	if r.code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{fmt.Sprintf("seed %d", seed), "4 kills (1 at protocol points), 2 pauses", "0 duplicates, 0 lost, 0 different", "ok: "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "clean run took") {
		t.Errorf("no progress on stderr:\n%s", r.stderr)
	}
}

// TestCrashtestCatchesDuplicates proves the command can fail: the
// at-least-once wordcount crashed after a flush that no checkpoint covers.
func TestCrashtestCatchesDuplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a job binary")
	}
	seed := testseed.Seed(t)
	bin := testbin.Build(t, wordcountPkg, "-tags", "weirfault")
	args := append(wordcountArgs(t, seed, bin, "--kills", "0", "--crash-at", "before-manifest:2", "--quiet"), "--at-least-once")
	r := runWeir(t, args...)
	if r.code != exitFailure {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, exitFailure, r.stdout, r.stderr)
	}
	for _, want := range []string{" duplicates, 0 lost, 0 different", fmt.Sprintf("rerun with --seed %d", seed)} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, " 0 duplicates") {
		t.Errorf("no duplicates reported:\n%s", r.stdout)
	}
}

// TestCrashtestKafkaTopic crash-tests the end-to-end counting job, whose
// output is a Kafka topic per run, read under read_committed.
func TestCrashtestKafkaTopic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a job binary many times")
	}
	seed := testseed.Seed(t)
	b := devbrokertest.Start(t, devbrokertest.Config{Partitions: 3})
	if err := b.CreateTopic("events", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := e2e.ProduceEvents(t.Context(), []string{b.Addr()}, "events", 20_000, 20); err != nil {
		t.Fatal(err)
	}
	// NB: with the fault points (unarmed here), as internal/e2e builds
	// it: the two test processes share one binary.
	bin := testbin.Build(t, "github.com/weirstream/weir/internal/e2e/kafkajob", "-tags", "weirfault")
	r := runWeir(t, "crashtest", "--output-topic", "counts-{run}", "--brokers", b.Addr(), "--kills", "2", "--work-dir", t.TempDir(),
		"--seed", strconv.FormatUint(seed, 10), "--",
		bin, "--brokers", b.Addr(), "--input-topic", "events", "--output-topic", "counts-{run}",
		"--transactional-id-prefix", "{run}", "--checkpoint-dir", "{dir}/ckpt", "--checkpoint-interval", "{interval}",
		"--parallelism", "2", "--rate", "5000", "--metrics-addr", "",
		// NB: small fetches: a barrier passes a source between its reads,
		// and a paced read of the default 1 MiB would hold the first
		// checkpoint back until most of the input is read.
		"--max-bytes-per-read", "16384", "--sink-batch", "100")
	if r.code != exitOK || !strings.Contains(r.stdout, "20000 records; crashed run") || !strings.Contains(r.stdout, "2 kills") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}
