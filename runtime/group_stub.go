package runtime

import (
	"context"

	"github.com/weirstream/weir/internal/engine"
)

// NB: this file stands in for engineer A's runTask (issue 12) so that the
// member runner builds and can be tried before A's lands; delete it at the
// merge. It runs the whole pipeline as the task, without the cut graph.

// taskRun is one task a member runs (see runTask).
type taskRun struct {
	Index, Tasks  int
	CheckpointDir string                 // the task's (epoch's) location, given by the runner
	LocalDir      string                 // "" unless CheckpointDir is s3://
	Stop          <-chan struct{}        // a final checkpoint, then return nil
	Started       func(engine.StartInfo) // optional
}

// runTask runs task t.Index of p in group mode until ctx ends or t.Stop
// closes (then with a final checkpoint).
func runTask(ctx context.Context, p *Pipeline, cfg Config, t taskRun) error {
	cfg.CheckpointDir, cfg.LocalDir, cfg.Stop, cfg.MetricsAddr = t.CheckpointDir, t.LocalDir, t.Stop, ""
	cfg.Parallelism = t.Tasks
	ecfg, err := cfg.engine()
	if err != nil {
		return err
	}
	ecfg.Task = &engine.TaskScope{Index: t.Index, Group: cfg.Group}
	if f, user := t.Started, ecfg.Events.Started; f != nil {
		ecfg.Events.Started = func(info engine.StartInfo) {
			f(info)
			if user != nil {
				user(info)
			}
		}
	}
	return engine.Run(ctx, p.g, ecfg)
}
