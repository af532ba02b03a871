package runtime

import (
	"context"
	"fmt"

	"github.com/weirstream/weir/internal/engine"
)

// ErrIncompatibleCheckpoint is wrapped when the newest checkpoint of the
// checkpoint directory cannot be restored into the pipeline: another job's,
// another --max-parallelism, state of an operator the pipeline no longer
// has, or a stateful operator whose parallelism changed.
var ErrIncompatibleCheckpoint = engine.ErrIncompatibleCheckpoint

// Run runs p until its inputs end, cfg.Stop is closed, or an error occurs
// that cfg.Restart does not restart the job after (with the zero
// RestartStrategy: any error). It is Main for embedding and tests: it
// handles no signals and returns the job's error. On start it restores the
// newest complete checkpoint of cfg.CheckpointDir after verifying it.
// Cancelling ctx stops the job at once, without a final checkpoint; the
// next run resumes from the last complete one.
func Run(ctx context.Context, p *Pipeline, cfg Config) error {
	cfg.EnsureDefaults()
	ecfg, err := p.prepare(cfg)
	if err != nil {
		cfg.Logger.Error("cannot start job", "job", p.Name(), "err", err)
		return err
	}
	logConfig(p.Name(), &cfg)
	if cfg.Group != "" {
		return runGroup(ctx, p, cfg)
	}
	return engine.Run(ctx, p.g, ecfg)
}

// prepare checks cfg (with defaults) and p, and returns the engine's
// configuration.
func (p *Pipeline) prepare(cfg Config) (engine.Config, error) {
	if err := cfg.Validate(); err != nil {
		return engine.Config{}, err
	}
	if err := p.Err(); err != nil {
		return engine.Config{}, err
	}
	if err := p.validate(); err != nil {
		return engine.Config{}, err
	}
	return cfg.engine()
}

func (p *Pipeline) validate() error {
	for _, n := range p.g.Nodes {
		if n.Kind == engine.SourceNode {
			return nil
		}
	}
	return fmt.Errorf("%w: no source", ErrInvalidPipeline)
}
