package runtime

import (
	"time"

	"github.com/weirstream/weir/internal/engine"
)

// ErrUnrecoverable marks an error that no restart can fix, such as a sink
// finding on Open that data the restored checkpoint promised is gone. Wrap
// it (fmt.Errorf("%w: …", runtime.ErrUnrecoverable)) to make Run and Main
// fail at once instead of restarting the job.
var ErrUnrecoverable = engine.ErrUnrecoverable

// RestartStrategy says whether and how Run and Main restart a failed job in
// the process, from its last complete checkpoint, like Flink's
// exponential-delay restart strategy. Every restart is a new start of the
// job: the previous one has released the checkpoint directory and closed
// its operators. The zero value never restarts; RegisterFlags defaults to 10
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
// a stop (Config.Stop, or a signal under Main), during a backoff too.
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
