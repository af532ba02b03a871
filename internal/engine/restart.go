package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/internal/chkstore"
)

// ErrUnrecoverable marks an error that no restart can fix (runtime
// re-exports it).
var ErrUnrecoverable = errors.New("weir: unrecoverable")

// restartLoop runs a graph as a sequence of Jobs, restarting it after
// failures by its Config.Restart. It owns what outlives an attempt: the
// restart count and the status server.
type restartLoop struct {
	g      *Graph
	cfg    Config
	logger *slog.Logger

	restarts atomic.Uint64 // weir_restarts_total
	attempts int           // attempts started before the current one
	http     *statusServer // the first attempt's, served by every later one; nil: none

	stop     chan struct{} // closed by requestStop
	mu       sync.Mutex
	stopping bool
	cur      *job // the running attempt, nil between attempts
}

// Run runs g until its inputs end, cfg.Stop is closed (after a final
// checkpoint), or an error occurs that cfg.Restart does not restart it
// after. Cancelling ctx stops it at once, without a final checkpoint.
func Run(ctx context.Context, g *Graph, cfg Config) error {
	if err := checkTask(g, cfg); err != nil {
		return err
	}
	cfg, removeLocalDir, err := withLocalDir(cfg)
	if err != nil {
		return err
	}
	defer removeLocalDir()
	l := &restartLoop{g: g, cfg: cfg, logger: cfg.Logger.With("job", g.Name), stop: make(chan struct{})}
	if cfg.Stop != nil {
		ended := make(chan struct{})
		defer close(ended)
		go func() {
			select {
			case <-cfg.Stop:
				l.requestStop()
			case <-ended:
			}
		}()
	}
	return l.run(ctx)
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
		if f := l.cfg.BeforeRestart; f != nil {
			if cerr := f(); cerr != nil {
				return fmt.Errorf("not restarting: %w; the job failed: %w", cerr, err)
			}
		}
	}
}

// attempt starts a Job and waits for its end.
func (l *restartLoop) attempt(ctx context.Context) error {
	j, err := start(ctx, l.g, l.cfg, l)
	l.attempts++
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
	return errors.Is(err, chkstore.ErrUnusableDir) || errors.Is(err, chkstore.ErrCorrupt) ||
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

// requestStop stops the running attempt with a final checkpoint (job.Stop),
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
func (l *restartLoop) setCurrent(j *job) {
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
