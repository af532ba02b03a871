package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/checkpoint"
)

// ErrUnrecoverable marks an error that no restart can fix, such as a sink
// finding on Open that data the restored checkpoint promised is gone. Wrap
// it (fmt.Errorf("%w: …", runtime.ErrUnrecoverable)) to make Run and Exec
// fail at once instead of restarting the job.
var ErrUnrecoverable = errors.New("weir: unrecoverable")

// RestartStrategy says whether and how Run and Exec restart a failed job in
// the process, from its last complete checkpoint, like Flink's
// exponential-delay restart strategy. Every restart starts a new Job: the
// previous one has released the checkpoint directory and closed its
// operators. The zero value never restarts; RegisterFlags defaults to 10
// attempts, waiting 1s before the first and doubling up to 30s (about three
// minutes in all, enough to ride out a broker restart of a minute), with
// the count reset after 10 minutes of healthy running.
//
// Every failure restarts the job, a panic of user code included: as in
// Flink, a transient fault cannot be told from a bug, and a record that
// fails deterministically fails every attempt until Attempts run out. The
// errors no restart can fix end the job at once: an invalid configuration
// or pipeline, an unusable or locked checkpoint directory
// (checkpoint.ErrUnusableDir), a corrupt checkpoint (checkpoint.ErrCorrupt),
// one that does not fit the pipeline (ErrIncompatibleCheckpoint), and any
// error wrapping ErrUnrecoverable. So do cancelling Run's context and
// stopping Exec with a signal, during a backoff too.
type RestartStrategy struct {
	// Attempts is the number of restarts in a row after which the job
	// fails with the last error; 0 never restarts.
	Attempts int
	// Backoff is the wait before the first restart in a row (default 1s);
	// each further one waits twice as long as the previous, up to
	// MaxBackoff (default 30s, at least Backoff).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// ResetAfter is the running time after which a failure is the first in
	// a row again (default 10m): a job that failed after running this long
	// restarts after Backoff, with all its Attempts.
	ResetAfter time.Duration
}

// defaultRestart is RegisterFlags' default strategy.
var defaultRestart = RestartStrategy{Attempts: 10}

func (r *RestartStrategy) ensureDefaults() {
	if r.Attempts == 0 {
		return // never restarts: the durations are unused
	}
	if r.Backoff == 0 {
		r.Backoff = time.Second
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = max(30*time.Second, r.Backoff)
	}
	if r.ResetAfter == 0 {
		r.ResetAfter = 10 * time.Minute
	}
}

// next returns the backoff after d.
func (r *RestartStrategy) next(d time.Duration) time.Duration {
	if d > r.MaxBackoff/2 {
		return r.MaxBackoff
	}
	return 2 * d
}

// restartLoop runs a pipeline as a sequence of Jobs, restarting it after
// failures by its Config.Restart. It owns what outlives an attempt: the
// restart count and the status server.
type restartLoop struct {
	p      *Pipeline
	cfg    Config
	logger *slog.Logger

	restarts atomic.Uint64 // weir_restarts_total
	http     *statusServer // the first attempt's, served by every later one; nil: none

	stop     chan struct{} // closed by requestStop
	mu       sync.Mutex
	stopping bool
	cur      *Job // the running attempt, nil between attempts
}

func newRestartLoop(p *Pipeline, cfg Config) *restartLoop {
	cfg.EnsureDefaults()
	return &restartLoop{p: p, cfg: cfg, logger: cfg.Logger.With("job", p.name), stop: make(chan struct{})}
}

// The restart loop's log messages (tests match them).
const (
	logRestarting     = "job failed; restarting from the last complete checkpoint"
	logStoppedBackoff = "stopped while waiting to restart; the next start resumes from the last complete checkpoint"
)

// run runs attempts until one ends cleanly, fails beyond repair or beyond
// the allowed restarts, ctx is cancelled, or requestStop is called. A stop
// during a backoff returns nil: the job is not running, and its last
// complete checkpoint is where the next start resumes, as after a stop with
// a final checkpoint.
func (l *restartLoop) run(ctx context.Context) error {
	defer l.closeServer()
	r := l.cfg.Restart
	inRow, backoff := 0, r.Backoff
	for {
		began := time.Now()
		err := l.attempt(ctx)
		if err == nil || !l.restartable(ctx, err) {
			return err
		}
		if time.Since(began) >= r.ResetAfter {
			inRow, backoff = 0, r.Backoff
		}
		if inRow == r.Attempts {
			return fmt.Errorf("giving up after --restart-attempts %d restarts in a row: %w", inRow, err)
		}
		inRow++
		l.restarts.Add(1)
		l.logger.Warn(logRestarting, "attempt", inRow, "attempts", r.Attempts, "backoff", backoff, "err", err)
		if !l.sleep(ctx, backoff) {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			l.logger.Warn(logStoppedBackoff, "err", err)
			return nil
		}
		backoff = r.next(backoff)
	}
}

// attempt starts a Job and waits for its end.
func (l *restartLoop) attempt(ctx context.Context) error {
	j, err := start(ctx, l.p, l.cfg, l)
	if err != nil {
		l.logger.Error("cannot start job", "err", err)
		return err
	}
	l.setCurrent(j)
	defer l.setCurrent(nil)
	return j.Wait()
}

// restartable reports whether a restart could help after err.
func (l *restartLoop) restartable(ctx context.Context, err error) bool {
	l.mu.Lock()
	stopping := l.stopping
	l.mu.Unlock()
	return l.cfg.Restart.Attempts > 0 && ctx.Err() == nil && !stopping && !unrecoverable(err)
}

func unrecoverable(err error) bool {
	return isUsageError(err) || errors.Is(err, checkpoint.ErrCorrupt) ||
		errors.Is(err, ErrIncompatibleCheckpoint) || errors.Is(err, ErrUnrecoverable)
}

// sleep waits d and reports whether it did, rather than being stopped.
func (l *restartLoop) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-l.stop:
	}
	return false
}

// requestStop stops the running attempt with a final checkpoint (Job.Stop),
// or the wait for the next one, and prevents further restarts.
func (l *restartLoop) requestStop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopping {
		return
	}
	l.stopping = true
	close(l.stop)
	if l.cur != nil {
		l.cur.Stop()
	}
}

// setCurrent records the running attempt; one that started while a stop
// was requested stops at once.
func (l *restartLoop) setCurrent(j *Job) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur = j
	if j != nil && l.stopping {
		j.Stop()
	}
}

func (l *restartLoop) closeServer() {
	if l.http != nil {
		l.http.close()
	}
}
