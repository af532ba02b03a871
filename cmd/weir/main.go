// Command weir is weir's command-line tool: a development Kafka broker, a
// development S3-compatible server for checkpoints in object storage, a
// reader of checkpoints (list, inspect, verify), a savepoint trigger for a
// running job, a sample-data producer, a
// verifier that checks a topic for the duplicates and gaps exactly-once
// processing must not produce, and a crash test of a job binary (package
// weirtest).
//
//	weir broker         [--addr 127.0.0.1:9092] [--partitions 3] [--data-dir DIR] [--transactional-id-expiration 168h]
//	                    [--sasl-mechanism M --sasl-user U:P ... --acl RULE ... --acl-file F] [--tls-cert F --tls-key F]
//	weir s3             [--addr 127.0.0.1:9000] [--data-dir DIR]
//	weir checkpoints    list|inspect|verify LOCATION [ID|--all] [--json]
//	weir checkpoints    savepoint LOCATION --dir DIR|s3://BUCKET/PREFIX [--json]
//	weir savepoint      --addr HOST:PORT [--dir DIR|s3://BUCKET/PREFIX] [--json] [--metrics-bearer-token-file F | --metrics-basic-auth-file F]
//	weir produce-orders --brokers ADDR [--topic orders] [--count N] [--kafka-* security flags] ...
//	weir verify         --brokers ADDR --topic T --key FIELD --seq FIELD [--numeric] [--expect N] [--kafka-* security flags]
//	weir crashtest      (--output-dir DIR | --output-topic T --brokers ADDR [--kafka-* security flags]) [--kills N] [--pauses N] [--seed N] -- JOB [FLAGS...]
//
// Exit codes: 0 success, 1 failure (including a failed verification), 2 usage
// error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// command is one subcommand. run parses its own flags from args.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// commands is the dispatch table: a subcommand is one entry here and one file.
var commands = []command{
	{"broker", "run a development Kafka broker until interrupted", runBroker},
	{"s3", "run a development S3-compatible server until interrupted", runS3},
	{"checkpoints", "list, inspect or verify the checkpoints of a job (a directory or s3://), or write a savepoint of a group job", runCheckpoints},
	{"savepoint", "ask a running job for a savepoint, without stopping it", runSavepoint},
	{"produce-orders", "write sample orders, some duplicated, to a topic", runProduceOrders},
	{"verify", "check a topic for duplicate and missing records", runVerify},
	{"crashtest", "run a job cleanly and under random kills, and compare the outputs", runCrashtest},
}

// env is what a subcommand may use of the process.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// errFlagsReported means the flag package already printed the problem and
// the usage.
var errFlagsReported = errors.New("bad flags")

// exitError ends the command with a code after the command printed its own
// explanation.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, log: slog.New(slog.NewTextHandler(stderr, nil))}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	name := args[0]
	for _, c := range commands {
		if c.name != name {
			continue
		}
		err := c.run(ctx, e, args[1:])
		var ue *usageError
		var ee *exitError
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.Is(err, errFlagsReported):
			return exitUsage
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "weir %s: %s\nRun 'weir %s -h' for usage.\n", name, ue.msg, name)
			return exitUsage
		case errors.As(err, &ee):
			return ee.code
		default:
			fmt.Fprintf(stderr, "weir %s: %v\n", name, err)
			return exitFailure
		}
	}
	fmt.Fprintf(stderr, "weir: unknown command %q\n", name)
	printUsage(stderr)
	return exitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: weir <command> [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-15s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'weir <command> -h' for the flags of a command.")
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("weir "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: weir %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args and rejects positional arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errFlagsReported
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (all options are --flags)", fs.Arg(0))
	}
	return nil
}

// brokerList splits a comma-separated --brokers value.
func brokerList(s string) ([]string, error) {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(b); err != nil {
			return nil, usagef("--brokers: %q is not host:port", b)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, usagef("--brokers is required: the Kafka bootstrap address(es), comma-separated, e.g. 127.0.0.1:9092 (start a development broker with 'weir broker')")
	}
	return out, nil
}

// checkReachable dials the brokers, each within timeout, so that an
// unreachable cluster fails fast with a message that says what to do rather
// than after the clients' retries.
func checkReachable(ctx context.Context, brokers []string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	var errs []error
	for _, b := range brokers {
		c, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			c.Close()
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("cannot reach Kafka broker %s: %w\nIs a broker running there? Start a development one with 'weir broker --addr %s', or pass the right --brokers",
		strings.Join(brokers, ","), errors.Join(errs...), brokers[0])
}
