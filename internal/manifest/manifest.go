// Package manifest is the format of a checkpoint's MANIFEST and the names of
// the layout of a checkpoint location: what package chkstore writes and
// package checkpoint reads (the layout is drawn in checkpoint's doc.go).
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"time"
)

// Name is the file whose presence makes a checkpoint complete.
const Name = "MANIFEST"

// Version is bumped on incompatible changes of the format. Version
// 2 added File.Object; version 1 manifests, which have none, are still read.
const Version = 2

// ErrCorrupt marks a checkpoint that failed verification.
var ErrCorrupt = errors.New("checkpoint: corrupt")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Manifest describes one complete checkpoint.
type Manifest struct {
	Version        int       `json:"version"`
	Job            string    `json:"job"`
	ID             uint64    `json:"checkpoint_id"`
	Created        time.Time `json:"created"`
	MaxParallelism int       `json:"max_parallelism"`
	// Final is set on the checkpoint taken when a job ended or was stopped.
	Final bool `json:"final,omitempty"`
	// EndOfInput is set on the final checkpoint of a job whose inputs all
	// ended: restored, such a job only finishes its commits.
	EndOfInput bool `json:"end_of_input,omitempty"`
	// Operators lists the state of every stateful subtask.
	Operators []SubtaskState `json:"operators"`
	// Files lists every file of the checkpoint but the manifest.
	Files []File `json:"files"`
	// BytesWritten counts the bytes this checkpoint added: files it shares
	// with its predecessor by hard link are not counted.
	BytesWritten int64 `json:"bytes_written"`
	// Savepoint names the savepoint the job's run was started from
	// (--from-savepoint; see Savepoint.Lineage), carried to every later
	// checkpoint, so that a restart with the same flags resumes from them
	// and a location of another run is told apart.
	Savepoint string `json:"savepoint,omitempty"`
	// Group is the group of processes whose task took the checkpoint
	// (runtime.Config.Group), "" outside one: the read offsets of the
	// task's exchanges it holds are in that group's repartition topics.
	Group string `json:"group,omitempty"`
}

// SubtaskState locates the state of one operator subtask.
type SubtaskState struct {
	Operator    string `json:"operator"`
	Subtask     int    `json:"subtask"`
	Parallelism int    `json:"parallelism"`
	// StateFile is the path of the operator state, relative to the
	// checkpoint directory, or empty.
	StateFile string `json:"state_file,omitempty"`
	// KeyedDir is the path of the keyed state (a Pebble checkpoint),
	// relative to the checkpoint directory, or empty.
	KeyedDir string `json:"keyed_dir,omitempty"`
	// EventTime is kept for the first operator of each task: for a source,
	// the largest event time it emitted; for other operators, the watermark
	// of their input.
	EventTime *int64 `json:"event_time,omitempty"`
}

// File is one file of a checkpoint.
type File struct {
	Path   string `json:"path"` // relative to the checkpoint directory, with '/'
	Size   int64  `json:"size"`
	CRC32C uint32 `json:"crc32c"`
	// Object is the key, relative to the checkpoint location, of the object
	// that holds the file when an earlier checkpoint uploaded it and this
	// one shares it (an unchanged sstable in object storage); empty when the
	// file is at Path in the checkpoint's own directory.
	Object string `json:"object,omitempty"`
}

// Key returns the key, relative to the location, of the object that holds f
// in the checkpoint or savepoint whose directory has the key dir ("" for a
// savepoint at the root of its location).
func (f File) Key(dir string) string {
	switch {
	case f.Object != "":
		return f.Object
	case dir == "":
		return f.Path
	}
	return dir + "/" + f.Path
}

// Subtask returns the state of operator's subtask, if the checkpoint has it.
func (m *Manifest) Subtask(operator string, subtask int) (SubtaskState, bool) {
	for _, s := range m.Operators {
		if s.Operator == operator && s.Subtask == subtask {
			return s, true
		}
	}
	return SubtaskState{}, false
}

// envelope is the on-disk form: the manifest and a checksum of its bytes.
type envelope struct {
	CRC32C   uint32          `json:"crc32c"`
	Manifest json.RawMessage `json:"manifest"`
}

// Encode returns the on-disk form of m.
func Encode(m *Manifest) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return encodeEnvelope(crc32.Checksum(body, castagnoli), body)
}

// encodeEnvelope returns the file of a manifest whose compact JSON body is
// body, with its checksum.
func encodeEnvelope(crc uint32, body []byte) ([]byte, error) {
	out, err := json.MarshalIndent(envelope{CRC32C: crc, Manifest: body}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Decode decodes what Encode returned; a damaged manifest is refused with
// ErrCorrupt.
func Decode(data []byte) (*Manifest, error) {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: unreadable manifest: %v", ErrCorrupt, err)
	}
	// The checksum covers the compact body. The rest of the file must be
	// exactly what Encode writes: JSON ignores whitespace and the letter case
	// of field names, so a changed byte there would otherwise go unnoticed.
	var compact bytes.Buffer
	if err := json.Compact(&compact, env.Manifest); err != nil || crc32.Checksum(compact.Bytes(), castagnoli) != env.CRC32C {
		return nil, fmt.Errorf("%w: manifest checksum mismatch", ErrCorrupt)
	}
	if canonical, err := encodeEnvelope(env.CRC32C, compact.Bytes()); err != nil || !bytes.Equal(canonical, data) {
		return nil, fmt.Errorf("%w: manifest file differs from its checksummed form", ErrCorrupt)
	}
	var m Manifest
	if err := json.Unmarshal(env.Manifest, &m); err != nil {
		return nil, fmt.Errorf("%w: unreadable manifest body: %v", ErrCorrupt, err)
	}
	if m.Version < 1 || m.Version > Version {
		return nil, fmt.Errorf("checkpoint: manifest version %d, this build reads 1 to %d", m.Version, Version)
	}
	return &m, nil
}

// Parse decodes the manifest of checkpoint id read from where (named in
// errors), and checks that it is the manifest of id.
func Parse(id uint64, where string, data []byte) (*Manifest, error) {
	m, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %d: %s: %w", id, where, err)
	}
	if m.ID != id {
		return nil, fmt.Errorf("checkpoint %d: %s: %w: manifest names checkpoint %d", id, where, ErrCorrupt, m.ID)
	}
	return m, nil
}

// DirPrefix starts the name of every checkpoint directory.
const DirPrefix = "chk-"

// DirName is the name of the directory of checkpoint id, and the first
// segment of the keys of its objects.
func DirName(id uint64) string { return fmt.Sprintf("%s%010d", DirPrefix, id) }

// ParseDirName returns the id of a checkpoint directory's name.
func ParseDirName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, DirPrefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	return id, err == nil
}

// CommittedName is the subdirectory of a complete checkpoint that records
// which sink subtasks finished committing it: one empty file per subtask,
// named <operator>.<subtask> like its state file under operators/. It is
// written after the MANIFEST, so the manifest does not list it.
const CommittedName = "committed"
