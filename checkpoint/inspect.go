package checkpoint

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/manifest"
	"github.com/weirstream/weir/internal/objstore"
)

// This file is the read-only view of a checkpoint location that tools use
// (weir checkpoints): it needs no lock, works beside a running job, and
// reads a directory and s3:// alike, through package objstore, in the layout
// both share: chk-<id>/MANIFEST, chk-<id>/<file>, chk-<id>/committed/….

// ErrNoCheckpoint is wrapped when a location has no complete checkpoint or
// savepoint of the id or name asked for.
var ErrNoCheckpoint = errors.New("checkpoint: no such checkpoint")

// Kinds of Info.
const (
	KindCheckpoint = "checkpoint"
	KindSavepoint  = "savepoint"
)

// Info summarises one complete checkpoint or savepoint.
type Info struct {
	// Dir is the key of its directory in the location: chk-0000000042 for a
	// checkpoint; for a savepoint, its directory's path, or "" if the
	// location is the savepoint.
	Dir     string    `json:"dir"`
	Kind    string    `json:"kind"`
	ID      uint64    `json:"id"`
	Job     string    `json:"job"`
	Created time.Time `json:"created"`
	Final   bool      `json:"final,omitempty"`
	Files   int       `json:"files"`
	// Size is the size of all its files: what a restore reads.
	Size int64 `json:"size"`
	// Incremental is what it added: its files not shared with the checkpoint
	// before it (the manifest itself not counted).
	Incremental int64 `json:"incremental"`
}

// A directory is a checkpoint or a savepoint when it holds a MANIFEST: a
// checkpoint if it is named chk-<id>, and a savepoint otherwise.
func kindOf(dir string) string {
	if _, ok := manifest.ParseDirName(path.Base(dir)); ok && dir != "" {
		return KindCheckpoint
	}
	return KindSavepoint
}

// view is a location opened for reading.
type view struct {
	objects objstore.Store
	found   []found
}

// found is a manifest found in the location.
type found struct {
	Info
	manifest *manifest.Manifest
}

// openView opens location read-only and finds every manifest in it: its
// checkpoints and, wherever they are in it, its savepoints.
func openView(ctx context.Context, location string) (*view, error) {
	objects, err := objstore.Open(ctx, location, objstore.Options{ReadOnly: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	objs, err := objects.List(ctx, "")
	if err != nil {
		return nil, err
	}
	v := &view{objects: objects}
	for _, o := range objs {
		dir, name := path.Split(o.Key)
		if name != manifest.Name {
			continue
		}
		dir = strings.TrimSuffix(dir, "/")
		m, err := v.read(ctx, dir)
		if err != nil {
			return nil, err
		}
		v.found = append(v.found, found{Info: info(dir, m), manifest: m})
	}
	slices.SortStableFunc(v.found, func(a, b found) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Dir, b.Dir))
	})
	return v, nil
}

// read reads and checks the manifest in dir.
func (v *view) read(ctx context.Context, dir string) (*manifest.Manifest, error) {
	key := path.Join(dir, manifest.Name)
	data, err := v.objects.GetBytes(ctx, key)
	if err != nil {
		return nil, err
	}
	where := key + " in " + v.objects.Location()
	if id, ok := manifest.ParseDirName(path.Base(dir)); ok && kindOf(dir) == KindCheckpoint {
		return manifest.Parse(id, where, data)
	}
	m, err := manifest.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("savepoint %s: %w", where, err)
	}
	return m, nil
}

func info(dir string, m *manifest.Manifest) Info {
	in := Info{Dir: dir, Kind: kindOf(dir), ID: m.ID, Job: m.Job, Created: m.Created, Final: m.Final,
		Files: len(m.Files), Incremental: m.BytesWritten}
	for _, f := range m.Files {
		in.Size += f.Size
	}
	return in
}

// List returns the complete checkpoints, then the savepoints, at location
// (a directory or s3://bucket/prefix), each by ascending id. A manifest that
// fails its checksum fails the listing, naming it.
func List(ctx context.Context, location string) ([]Info, error) {
	v, err := openView(ctx, location)
	if err != nil {
		return nil, err
	}
	out := make([]Info, len(v.found))
	for i, f := range v.found {
		out[i] = f.Info
	}
	return out, nil
}

// pick returns the checkpoint or savepoint which names: "" or "latest" for
// the newest checkpoint (or, without checkpoints, the newest savepoint), an
// id, or a directory as Info.Dir names it.
func (v *view) pick(which string) (found, error) {
	var match []found
	switch id, err := strconv.ParseUint(which, 10, 64); {
	case which == "" || which == "latest":
		if len(v.found) > 0 {
			newest := v.found[0]
			for _, f := range v.found[1:] {
				if f.Kind == newest.Kind && f.ID > newest.ID || f.Kind == KindCheckpoint && newest.Kind != KindCheckpoint {
					newest = f
				}
			}
			match = append(match, newest)
		}
	case err == nil:
		for _, f := range v.found {
			if f.ID == id {
				match = append(match, f)
			}
		}
	default:
		for _, f := range v.found {
			if f.Dir == strings.Trim(which, "/") {
				match = append(match, f)
			}
		}
	}
	switch len(match) {
	case 0:
		what := "checkpoint " + which
		if which == "" || which == "latest" {
			what = "complete checkpoint or savepoint"
		}
		return found{}, fmt.Errorf("%w: %s has no %s (list them with 'weir checkpoints list %s')", ErrNoCheckpoint, v.objects.Location(), what, v.objects.Location())
	case 1:
		return match[0], nil
	}
	dirs := make([]string, len(match))
	for i, f := range match {
		dirs[i] = f.Dir
	}
	return found{}, fmt.Errorf("%w: %s has several with id %s (%s): name one by its directory", ErrNoCheckpoint, v.objects.Location(), which, strings.Join(dirs, ", "))
}

// Details describes one checkpoint or savepoint for inspection.
type Details struct {
	Info
	Location       string `json:"location"`
	MaxParallelism int    `json:"max_parallelism"`
	EndOfInput     bool   `json:"end_of_input,omitempty"`
	// FromSavepoint is Manifest.Savepoint: the savepoint the run was
	// started from, if it was.
	FromSavepoint string `json:"from_savepoint,omitempty"`
	// Operators are in the order of the manifest, each with its subtasks by
	// index.
	Operators []OperatorDetails `json:"operators"`
}

// OperatorDetails is the state of one operator in a checkpoint.
type OperatorDetails struct {
	Name        string `json:"name"`
	Parallelism int    `json:"parallelism"`
	// Bytes is the size of its state: keyed state files and operator state.
	Bytes    int64            `json:"bytes"`
	Subtasks []SubtaskDetails `json:"subtasks"`
}

// SubtaskDetails is the state of one operator subtask. Keyed state is
// described by its files (Pebble sstables and metadata): sizes per state
// name would take reading every sstable.
type SubtaskDetails struct {
	Subtask int `json:"subtask"`
	// KeyGroups is the range [first, end) of key groups of a keyed subtask.
	KeyGroups  *[2]int `json:"key_groups,omitempty"`
	KeyedFiles int     `json:"keyed_files,omitempty"`
	KeyedBytes int64   `json:"keyed_bytes,omitempty"`
	// State is the operator state (a source's offsets, a sink's pending
	// transactions, …) in the operator's own encoding; nil if none.
	State []byte `json:"state,omitempty"`
	// EventTime is, for the first operator of a task, the largest event time
	// a source emitted, or the watermark of an operator's input.
	EventTime *int64 `json:"event_time,omitempty"`
	// Committed is set when the subtask (a sink) recorded that it finished
	// committing this checkpoint.
	Committed bool `json:"committed,omitempty"`
}

// Inspect describes the checkpoint or savepoint at location which names: ""
// or "latest" for the newest checkpoint, an id, or a directory as List
// names it.
func Inspect(ctx context.Context, location, which string) (*Details, error) {
	v, err := openView(ctx, location)
	if err != nil {
		return nil, err
	}
	f, err := v.pick(which)
	if err != nil {
		return nil, err
	}
	m := f.manifest
	committed, err := v.objects.List(ctx, path.Join(f.Dir, manifest.CommittedName)+"/")
	if err != nil {
		return nil, err
	}
	d := &Details{Info: f.Info, Location: v.objects.Location(), MaxParallelism: m.MaxParallelism, EndOfInput: m.EndOfInput, FromSavepoint: m.Savepoint}
	byName := map[string]int{}
	for _, st := range m.Operators {
		i, ok := byName[st.Operator]
		if !ok {
			i = len(d.Operators)
			byName[st.Operator] = i
			d.Operators = append(d.Operators, OperatorDetails{Name: st.Operator, Parallelism: st.Parallelism})
		}
		sub := SubtaskDetails{Subtask: st.Subtask, EventTime: st.EventTime}
		sub.Committed = slices.ContainsFunc(committed, func(o objstore.Object) bool {
			return path.Base(o.Key) == fmt.Sprintf("%s.%d", st.Operator, st.Subtask)
		})
		if st.KeyedDir != "" {
			first, end := keygroup.Range(st.Subtask, m.MaxParallelism, st.Parallelism)
			sub.KeyGroups = &[2]int{first, end}
			for _, file := range m.Files {
				if strings.HasPrefix(file.Path, st.KeyedDir+"/") {
					sub.KeyedFiles++
					sub.KeyedBytes += file.Size
				}
			}
		}
		if st.StateFile != "" {
			if sub.State, err = v.objects.GetBytes(ctx, stateKey(m, f.Dir, st.StateFile)); err != nil {
				return nil, fmt.Errorf("%s %d: state of %s/%d: %w", f.Kind, f.ID, st.Operator, st.Subtask, err)
			}
		}
		op := &d.Operators[i]
		op.Bytes += sub.KeyedBytes + int64(len(sub.State))
		op.Subtasks = append(op.Subtasks, sub)
	}
	for _, op := range d.Operators {
		slices.SortFunc(op.Subtasks, func(a, b SubtaskDetails) int { return cmp.Compare(a.Subtask, b.Subtask) })
	}
	return d, nil
}

// stateKey returns the key of the file at rel in the checkpoint m in dir.
func stateKey(m *manifest.Manifest, dir, rel string) string {
	for _, f := range m.Files {
		if f.Path == rel {
			return f.Key(dir)
		}
	}
	return manifest.File{Path: rel}.Key(dir)
}

// Verification is the result of Verify.
type Verification struct {
	Info
	Location string `json:"location"`
	// Bad lists the files that are missing or fail their size or checksum.
	Bad []BadFile `json:"bad,omitempty"`
}

// BadFile is a file that failed verification.
type BadFile struct {
	Path    string `json:"path"`   // in the checkpoint
	Object  string `json:"object"` // the key that holds it in the location
	Problem string `json:"problem"`
}

// OK reports whether every file verified.
func (v *Verification) OK() bool { return len(v.Bad) == 0 }

// Verify reads every file of the checkpoint or savepoint at location which
// names (as for Inspect) and checks its size and CRC-32C against the
// manifest. Files that fail are listed in the result, not returned as an
// error; the error is for what kept the verification from running.
func Verify(ctx context.Context, location, which string) (*Verification, error) {
	v, err := openView(ctx, location)
	if err != nil {
		return nil, err
	}
	f, err := v.pick(which)
	if err != nil {
		return nil, err
	}
	return v.verify(ctx, f)
}

// VerifyAll verifies every checkpoint and savepoint at location, by the
// order of List.
func VerifyAll(ctx context.Context, location string) ([]*Verification, error) {
	v, err := openView(ctx, location)
	if err != nil {
		return nil, err
	}
	var out []*Verification
	for _, f := range v.found {
		res, err := v.verify(ctx, f)
		if err != nil {
			return out, err
		}
		out = append(out, res)
	}
	return out, nil
}

func (v *view) verify(ctx context.Context, f found) (*Verification, error) {
	tmp, err := os.MkdirTemp("", "weir-verify-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	res := &Verification{Info: f.Info, Location: v.objects.Location()}
	for i, file := range f.manifest.Files {
		key := file.Key(f.Dir)
		dst := filepath.Join(tmp, strconv.Itoa(i))
		err := v.objects.Get(ctx, key, dst, objstore.Checksum{Size: file.Size, CRC32C: file.CRC32C})
		switch {
		case errors.Is(err, objstore.ErrNotFound):
			res.Bad = append(res.Bad, BadFile{Path: file.Path, Object: key, Problem: "missing"})
		case errors.Is(err, objstore.ErrCorrupt):
			res.Bad = append(res.Bad, BadFile{Path: file.Path, Object: key, Problem: err.Error()})
		case err != nil:
			return nil, fmt.Errorf("%s %d: %w", f.Kind, f.ID, err)
		}
		os.Remove(dst)
	}
	return res, nil
}
