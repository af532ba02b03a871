package checkpoint

import (
	"github.com/weirstream/weir/internal/chkstore"
	"github.com/weirstream/weir/internal/manifest"
)

// The errors a job or a tool can meet, for errors.Is; the store that a job
// runs on (package internal/chkstore) wraps the same values.
var (
	// ErrCorrupt is wrapped when a checkpoint or savepoint fails
	// verification: a manifest fails its checksum, or a file is missing or
	// differs from the manifest. The error names the file.
	ErrCorrupt = manifest.ErrCorrupt
	// ErrUnusableDir is wrapped when a job's checkpoint directory cannot be
	// created or written, or is in use by another process.
	ErrUnusableDir = chkstore.ErrUnusableDir
	// ErrLocked is wrapped, together with ErrUnusableDir, when another
	// process (normally another job) holds the checkpoint directory; the
	// error names its pid.
	ErrLocked = chkstore.ErrLocked
)
