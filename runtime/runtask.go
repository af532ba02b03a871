package runtime

import (
	"context"
	"fmt"

	"github.com/weirstream/weir/internal/engine"
)

// taskRun is one task of a group job, as the member runner (group.go)
// starts it.
type taskRun struct {
	Index, Tasks  int
	Epoch         uint64          // the epoch of the task this member claimed
	PriorEpochs   []uint64        // the task's older epochs, whose owners may still run
	CheckpointDir string          // the task's (epoch's) location, given by the runner
	LocalDir      string          // "" unless CheckpointDir is s3:// or Config.LocalDir is set
	Stop          <-chan struct{} // a final checkpoint, then return nil
	Started       func(engine.StartInfo)
	// MetricsAddr is the address of the task's own status server, ""
	// for none (Config.MetricsAddr is the member's, which every task
	// cannot bind).
	MetricsAddr string
}

// runTask runs task t.Index of p in group mode until ctx ends or t.Stop
// closes (then with a final checkpoint), or its inputs end. It is a job of
// its own in engine task mode: every operator's subtask t.Index of
// t.Tasks, its keyed edges cut into exchanges of cfg.Cluster (see
// exchange.go), its own coordinator, checkpoints in t.CheckpointDir, and
// restarts by cfg.Restart. cfg's CheckpointDir, LocalDir, Parallelism,
// MetricsAddr and Stop are replaced by t's.
func runTask(ctx context.Context, p *Pipeline, cfg Config, t taskRun) error {
	cfg.EnsureDefaults()
	cfg.CheckpointDir, cfg.LocalDir, cfg.Parallelism, cfg.MetricsAddr, cfg.Stop = t.CheckpointDir, t.LocalDir, t.Tasks, t.MetricsAddr, t.Stop
	if t.Tasks > cfg.MaxParallelism {
		return fmt.Errorf("%w: %d tasks (the partitions of the input topics) but --max-parallelism %d: each task needs a key group of its own; raise --max-parallelism", errInvalidConfig, t.Tasks, cfg.MaxParallelism)
	}
	ecfg, err := p.prepare(cfg)
	if err != nil {
		return err
	}
	if cfg.Cluster == nil {
		return fmt.Errorf("%w: a job spread over processes (--group %q) needs Config.Cluster", errInvalidConfig, cfg.Group)
	}
	g, err := p.taskGraph(ctx, cfg.Cluster, t.Tasks, cfg.MaxParallelism)
	if err != nil {
		return err
	}
	ecfg.Task = &engine.TaskScope{Index: t.Index, Group: cfg.Group, Exchanges: p.hasExchanges(), Epoch: t.Epoch, PriorEpochs: t.PriorEpochs}
	ecfg.Logger = cfg.Logger.With("group_task", t.Index)
	if f := t.Started; f != nil {
		user := ecfg.Events.Started
		ecfg.Events.Started = func(info engine.StartInfo) {
			if user != nil {
				user(info)
			}
			f(info)
		}
	}
	return engine.Run(ctx, g, ecfg)
}
