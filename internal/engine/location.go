package engine

import (
	"fmt"
	"os"

	"github.com/weirstream/weir/internal/objstore"
)

// withLocalDir returns cfg with a LocalDir for a checkpoint location in
// object storage: cfg.LocalDir, or a fresh temporary directory that remove
// deletes when the job has ended (its checkpoints are in object storage;
// what is left locally is a copy). The same directory serves every restart
// in this process, so that a restart finds the checkpoint it restores
// already staged; a new process starts with an empty one and downloads.
// For a local checkpoint directory a LocalDir is ignored, with a warning.
func withLocalDir(cfg Config) (_ Config, remove func(), err error) {
	remove = func() {}
	loc, err := objstore.ParseLocation(cfg.CheckpointDir)
	if err != nil || !loc.IsS3() {
		if err == nil && cfg.LocalDir != "" {
			cfg.Logger.Warn("--local-dir is ignored: the live state stays in --checkpoint-dir, a local directory",
				"local_dir", cfg.LocalDir, "checkpoint_dir", cfg.CheckpointDir)
		}
		return cfg, remove, nil // a bad location fails the start, naming it
	}
	if cfg.LocalDir != "" {
		return cfg, remove, nil
	}
	dir, err := os.MkdirTemp("", "weir-local-")
	if err != nil {
		return cfg, remove, fmt.Errorf("%w: a local directory for the live state of %s: %w (set --local-dir)", ErrUnrecoverable, cfg.CheckpointDir, err)
	}
	cfg.Logger.Info("live state in a temporary local directory (set --local-dir to choose one)", "local_dir", dir, "checkpoint_dir", cfg.CheckpointDir)
	cfg.LocalDir = dir
	return cfg, func() { os.RemoveAll(dir) }, nil
}
