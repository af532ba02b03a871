package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/weirstream/weir/checkpoint"
)

// Main runs p as the main function of a job binary, with cfg (typically
// from RegisterFlags), and exits. The exit status is 0 after a clean end
// (the inputs exhausted, or a stop by SIGINT or SIGTERM after its final
// checkpoint, or during the wait before a restart), 1 when the job fails
// (a panic of user code included, see ErrPanic) and cfg.Restart does not
// restart it, and 2 for an invalid configuration or pipeline or an
// unusable checkpoint directory (not writable, or locked by another running
// job). The next start resumes from the last complete checkpoint.
//
// The first SIGINT or SIGTERM stops the job as closing Config.Stop does:
// the sources stop reading, a final checkpoint is taken and the sinks
// commit it. A further SIGINT or SIGTERM does not cut that short, so that a
// signal sent twice (by a supervisor, or to a whole process group) cannot
// skip the final commit: it is logged, and the stop goes on; it ends within
// --checkpoint-timeout, after which a final checkpoint that cannot complete
// fails the job. To end the process at once, send SIGKILL (or SIGQUIT,
// Ctrl-\, which also prints the goroutines); like any crash, that loses
// nothing: the next start resumes from the last complete checkpoint, as
// in Flink, whose stop with a savepoint a second signal does not abort
// either.
func Main(p *Pipeline, cfg Config) {
	os.Exit(runMain(p, cfg))
}

// The messages Main logs on signals (tests match them).
const (
	logSignalStop  = "signal received: stopping with a final checkpoint; SIGKILL or SIGQUIT ends the process at once"
	logSignalAgain = "signal received again: still stopping with a final checkpoint, which ends within --checkpoint-timeout; SIGKILL or SIGQUIT ends the process at once, and the next start resumes from the last complete checkpoint"
)

// runMain is Main without the exit: it returns the exit status.
func runMain(p *Pipeline, cfg Config) int {
	cfg.EnsureDefaults()
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	stop, ended := make(chan struct{}), make(chan struct{})
	defer close(ended)
	go handleSignals(cfg.Logger.With("job", p.Name()), signals, cfg.Stop, stop, ended)
	cfg.Stop = stop
	if err := Run(context.Background(), p, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", p.Name(), err)
		if isUsageError(err) {
			return 2
		}
		return 1
	}
	return 0
}

// handleSignals closes stop at the first signal, or when the caller's own
// Config.Stop closes, and logs every further signal.
func handleSignals(logger *slog.Logger, signals <-chan os.Signal, userStop <-chan struct{}, stop chan<- struct{}, ended <-chan struct{}) {
	stopping := false
	for {
		select {
		case sig := <-signals:
			if stopping {
				logger.Warn(logSignalAgain, "signal", sig.String())
				continue
			}
			logger.Info(logSignalStop, "signal", sig.String())
		case <-userStop:
			userStop = nil
			if stopping {
				continue
			}
		case <-ended:
			return
		}
		stopping = true
		close(stop)
	}
}

func isUsageError(err error) bool {
	return errors.Is(err, ErrInvalidPipeline) || errors.Is(err, errInvalidConfig) ||
		errors.Is(err, checkpoint.ErrUnusableDir)
}

var errInvalidConfig = errors.New("weir: invalid configuration")

func newLogger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
