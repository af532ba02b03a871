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

// Main runs p as the job binary's main function and exits: 0 after a clean
// end (inputs exhausted, or stopped by SIGINT/SIGTERM after a final
// checkpoint, or during the wait before a restart), 1 when the job fails (a
// panic of user code included, see ErrPanic) and cfg.Restart does not
// restart it, or when a second signal makes it exit at once, 2 for an
// invalid configuration or pipeline or an unusable checkpoint directory
// (not writable, or locked by another running job). The next start resumes
// from the last complete checkpoint.
func Main(p *Pipeline, cfg Config) {
	os.Exit(Exec(p, cfg))
}

// Exec is Main without the exit: it returns the exit code.
func Exec(p *Pipeline, cfg Config) int {
	l := newRestartLoop(p, cfg)
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	ended := make(chan struct{})
	defer close(ended)
	go l.handleSignals(signals, ended)
	if err := l.run(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", p.Name(), err)
		if isUsageError(err) {
			return 2
		}
		return 1
	}
	return 0
}

// handleSignals stops the job at the first signal and exits at the second.
func (l *restartLoop) handleSignals(signals <-chan os.Signal, ended <-chan struct{}) {
	for i := 0; ; i++ {
		var sig os.Signal
		select {
		case sig = <-signals:
		case <-ended:
			return
		}
		if i == 0 {
			l.logger.Info("signal received: stopping with a final checkpoint; send again to exit at once", "signal", sig.String())
			l.requestStop()
			continue
		}
		l.logger.Warn("second signal: exiting now; the next start resumes from the last checkpoint", "signal", sig.String())
		os.Exit(1)
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
