package engine

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/weirstream/weir/internal/objstore"
)

// withLocalDir returns cfg with a LocalDir for a checkpoint location in
// object storage: cfg.LocalDir, or a fresh temporary directory that remove
// deletes when the job has ended (its checkpoints are in object storage;
// what is left locally is a copy). The same directory serves every restart
// in this process, so that a restart finds the checkpoint it restores
// already staged; a new process starts with an empty one and downloads.
//
// A checkpoint directory with a LocalDir is treated as object storage (a
// shared filesystem: the live state stays local, checkpoints are copied
// there); without one, the live state is in the checkpoint directory and
// checkpoints cost no copy (package chkstore, OpenLocation).
func withLocalDir(cfg Config) (_ Config, remove func(), err error) {
	remove = func() {}
	loc, err := objstore.ParseLocation(cfg.CheckpointDir)
	if err != nil {
		return cfg, remove, nil // a bad location fails the start, naming it
	}
	if !loc.IsS3() {
		if cfg.LocalDir != "" && filepath.Clean(cfg.LocalDir) != loc.Path {
			cfg.Logger.Info("live state in --local-dir; completed checkpoints are copied into --checkpoint-dir",
				"local_dir", cfg.LocalDir, "checkpoint_dir", cfg.CheckpointDir)
		}
		return cfg, remove, nil
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
