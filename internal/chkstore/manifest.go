package chkstore

import (
	"hash/crc32"

	"github.com/weirstream/weir/internal/manifest"
)

// The manifest's format is package manifest's, which package checkpoint
// reads too; its types are named here as well, so that the engine, which
// writes manifests through a Store, needs this package only (as Pebble
// re-exports internal/base).
type (
	Manifest     = manifest.Manifest
	SubtaskState = manifest.SubtaskState
	File         = manifest.File
)

// ManifestName is the file whose presence makes a checkpoint complete.
const ManifestName = manifest.Name

// ErrCorrupt marks a checkpoint that failed verification.
var ErrCorrupt = manifest.ErrCorrupt

// castagnoli is the CRC-32C table of the files' checksums, as of the
// manifest's own.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)
