package file

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/weirstream/weir/runtime"
)

// Defaults applied by Config.EnsureDefaults.
const (
	// DefaultPrefix starts the name of every visible output file.
	DefaultPrefix = "part"
	// DefaultBufferSize is the write buffer of each sink instance.
	DefaultBufferSize = 256 << 10
)

// StagingDir is the dot-directory inside Config.Dir that holds the
// in-progress and pending files of each subtask, in StagingDir/<subtask>/.
// Shell globs such as DIR/* skip it.
const StagingDir = ".weir"

var (
	// ErrDataLoss reports that a file a complete checkpoint promised can no
	// longer be found (neither staged nor committed) or has the wrong size.
	// The sink never continues past it: the output would be incomplete.
	// It wraps runtime.ErrUnrecoverable: restarting the job cannot help.
	ErrDataLoss = fmt.Errorf("sinks/file: committed data is missing (%w)", runtime.ErrUnrecoverable)
	// ErrConflict reports a visible file that the sink did not write in the
	// place of a file it has to commit. The sink never overwrites it. It
	// wraps runtime.ErrUnrecoverable.
	ErrConflict = fmt.Errorf("sinks/file: output file already exists (%w)", runtime.ErrUnrecoverable)
)

// stateVersion is the first byte of every state returned by PreCommit.
const stateVersion = 1

// Config describes a file sink.
type Config[T any] struct {
	// Dir is the output directory. It is created if missing. Several
	// subtasks of one sink share it; two sinks, or two runs of a job,
	// must not share a Dir and Prefix.
	Dir string
	// Prefix starts every visible file name (DefaultPrefix if empty). It
	// must not contain a path separator nor start with a dot.
	Prefix string
	// Format appends exactly one output line for rec to dst, including its
	// line terminator, and returns the extended slice. The sink writes
	// these bytes as they are and adds nothing.
	Format func(dst []byte, rec T) []byte
	// AtLeastOnce writes records straight to visible files and makes
	// Commit a no-op: after a crash, records since the last checkpoint are
	// written again (duplicated), and a visible file may end in a partial
	// line. It exists to test that crash checkers detect duplicates.
	AtLeastOnce bool
	// BufferSize is the write buffer size in bytes (DefaultBufferSize if
	// zero).
	BufferSize int
}

// EnsureDefaults fills in zero fields with their defaults.
func (c *Config[T]) EnsureDefaults() {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.BufferSize == 0 {
		c.BufferSize = DefaultBufferSize
	}
}

// Validate reports a configuration error without touching the file system.
func (c *Config[T]) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("sinks/file: no output directory")
	case c.Format == nil:
		return errors.New("sinks/file: no Format function")
	case c.Prefix == "" || strings.HasPrefix(c.Prefix, ".") || strings.ContainsAny(c.Prefix, `/\`):
		return fmt.Errorf("sinks/file: invalid prefix %q: it must be non-empty, without a path separator and not start with a dot", c.Prefix)
	case c.BufferSize < 0:
		return fmt.Errorf("sinks/file: BufferSize %d is negative", c.BufferSize)
	}
	return nil
}

// StringLine is a Format for string records: it appends rec and "\n".
func StringLine(dst []byte, rec string) []byte {
	return append(append(dst, rec...), '\n')
}

// Lines returns the Config of an exactly-once sink writing string records
// into dir, one per line.
func Lines(dir string) Config[string] {
	return Config[string]{Dir: dir, Format: StringLine}
}

// Factory validates cfg and returns the per-subtask sink factory the runtime
// needs.
func Factory[T any](cfg Config[T]) (func() runtime.Sink[T], error) {
	if _, err := New(cfg); err != nil {
		return nil, err
	}
	cfg.EnsureDefaults()
	return func() runtime.Sink[T] { return &Sink[T]{cfg: cfg} }, nil
}

// New validates cfg and returns one unopened sink instance.
func New[T any](cfg Config[T]) (*Sink[T], error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Sink[T]{cfg: cfg}, nil
}

// Sink is one subtask's instance of the file sink. It implements
// runtime.Sink[T]; see the package documentation for the protocol.
type Sink[T any] struct {
	cfg     Config[T]
	info    runtime.TaskInfo
	log     *slog.Logger
	opened  bool
	staging string // Dir/StagingDir/<subtask>

	// The file of the current epoch (exactly-once: in-progress, hidden;
	// at-least-once: visible). f is nil until the epoch's first record.
	f    *os.File
	path string
	w    *bufio.Writer
	size int64

	pending []pendingFile // pre-committed, not yet committed, by checkpoint
}

var _ runtime.Sink[string] = (*Sink[string])(nil)

// pendingFile is a staged file waiting for its checkpoint to complete.
type pendingFile struct {
	checkpoint uint64
	pending    string // base name in the staging directory
	final      string // base name in Dir
	size       int64
}

// Open prepares the subtask's output. With restored state (from PreCommit of
// the checkpoint being restored) it first commits every file the state
// lists, then deletes everything else in the subtask's staging directory. On
// a fresh start it only cleans the staging directory. It never removes a
// visible file. In at-least-once mode it removes nothing.
func (s *Sink[T]) Open(ctx context.Context, info runtime.TaskInfo, restored []byte) error {
	if s.opened {
		return errors.New("sinks/file: Open called twice")
	}
	if info.Parallelism < 1 || info.Subtask < 0 || info.Subtask >= info.Parallelism {
		return fmt.Errorf("sinks/file: invalid task info: subtask %d of %d", info.Subtask, info.Parallelism)
	}
	s.info = info
	s.log = info.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("sink", "file", "dir", s.cfg.Dir, "subtask", info.Subtask)
	if err := mkdirDurable(s.cfg.Dir); err != nil {
		return err
	}
	s.opened = true
	if s.cfg.AtLeastOnce {
		return nil
	}
	s.staging = filepath.Join(s.cfg.Dir, StagingDir, strconv.Itoa(info.Subtask))
	if err := mkdirDurable(filepath.Join(s.cfg.Dir, StagingDir)); err != nil {
		return err
	}
	if err := mkdirDurable(s.staging); err != nil {
		return err
	}
	var promised []pendingFile
	if restored != nil {
		subtask, files, err := decodeState(restored)
		if err != nil {
			return err
		}
		if subtask != info.Subtask {
			return fmt.Errorf("sinks/file: state of subtask %d restored into subtask %d", subtask, info.Subtask)
		}
		promised = files
	}
	// (a) The restored checkpoint is complete: commit what it promises.
	if err := s.commitFiles(promised); err != nil {
		return fmt.Errorf("sinks/file: restore: %w", err)
	}
	// (b) Everything else staged by this subtask belongs to epochs after
	// the restored checkpoint; the runtime replays their records.
	entries, err := os.ReadDir(s.staging)
	if err != nil {
		return fmt.Errorf("sinks/file: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.staging, e.Name())); err != nil {
			return fmt.Errorf("sinks/file: discard staged file: %w", err)
		}
	}
	if len(entries) > 0 {
		if err := syncDir(s.staging); err != nil {
			return err
		}
	}
	s.log.Debug("sinks/file: opened", "restored_files", len(promised), "discarded_files", len(entries))
	return nil
}

// Write appends the formatted record to the current epoch's file, creating
// the file on the epoch's first record.
func (s *Sink[T]) Write(ctx context.Context, rec T) error {
	if s.f == nil {
		if err := s.startEpoch(); err != nil {
			return err
		}
	}
	b := s.cfg.Format(s.w.AvailableBuffer(), rec)
	if len(b) > s.w.Available() && s.w.Buffered() > 0 {
		// NB: flush at a record boundary so that a record never spans two
		// writes unless it is larger than the buffer. b no longer aliases
		// the buffer: append had to grow it.
		if err := s.w.Flush(); err != nil {
			return fmt.Errorf("sinks/file: write %s: %w", s.path, err)
		}
	}
	n, err := s.w.Write(b)
	s.size += int64(n)
	if err != nil {
		return fmt.Errorf("sinks/file: write %s: %w", s.path, err)
	}
	return nil
}

func (s *Sink[T]) startEpoch() error {
	if !s.opened {
		return errors.New("sinks/file: Write before Open")
	}
	var err error
	if s.cfg.AtLeastOnce {
		s.f, s.path, err = s.createAtLeastOnceFile()
	} else {
		s.path = filepath.Join(s.staging, "inprogress-"+rand.Text())
		s.f, err = os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	}
	if err != nil {
		return fmt.Errorf("sinks/file: %w", err)
	}
	s.size = 0
	if s.w == nil {
		s.w = bufio.NewWriterSize(s.f, s.cfg.BufferSize)
	} else {
		s.w.Reset(s.f)
	}
	return nil
}

// createAtLeastOnceFile creates the visible file of this incarnation:
// <prefix>-<subtask>-alo-<k> with k one more than any existing k.
func (s *Sink[T]) createAtLeastOnceFile() (*os.File, string, error) {
	stem := fmt.Sprintf("%s-%03d-alo-", s.cfg.Prefix, s.info.Subtask)
	matches, err := filepath.Glob(filepath.Join(s.cfg.Dir, stem+"*"))
	if err != nil {
		return nil, "", err
	}
	next := 0
	for _, m := range matches {
		if k, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(m), stem)); err == nil && k >= next {
			next = k + 1
		}
	}
	for {
		path := filepath.Join(s.cfg.Dir, fmt.Sprintf("%s%06d", stem, next))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			next++
			continue
		}
		return f, path, err
	}
}

// PreCommit makes the epoch's records durable. In exactly-once mode it
// flushes, fsyncs and closes the in-progress file, renames it to
// pending-<checkpointID> in the staging directory and fsyncs that directory;
// an epoch without records creates nothing. The returned state lists every
// pre-committed file not yet committed, with its checkpoint, final name and
// size. In at-least-once mode PreCommit flushes and fsyncs the visible file
// and returns nil.
func (s *Sink[T]) PreCommit(ctx context.Context, checkpointID uint64) ([]byte, error) {
	if !s.opened {
		return nil, errors.New("sinks/file: PreCommit before Open")
	}
	if s.cfg.AtLeastOnce {
		if s.f != nil {
			if err := s.w.Flush(); err != nil {
				return nil, fmt.Errorf("sinks/file: flush %s: %w", s.path, err)
			}
			if err := s.f.Sync(); err != nil {
				return nil, fmt.Errorf("sinks/file: %w", err)
			}
		}
		return nil, nil
	}
	if s.f != nil {
		if n := len(s.pending); n > 0 && s.pending[n-1].checkpoint >= checkpointID {
			return nil, fmt.Errorf("sinks/file: PreCommit(%d) after PreCommit(%d): checkpoint ids must increase",
				checkpointID, s.pending[n-1].checkpoint)
		}
		p := pendingFile{
			checkpoint: checkpointID,
			pending:    "pending-" + strconv.FormatUint(checkpointID, 10),
			final:      fmt.Sprintf("%s-%03d-%010d", s.cfg.Prefix, s.info.Subtask, checkpointID),
			size:       s.size,
		}
		if err := s.sealEpoch(p.pending); err != nil {
			return nil, fmt.Errorf("sinks/file: checkpoint %d: %w", checkpointID, err)
		}
		s.pending = append(s.pending, p)
	}
	return encodeState(s.info.Subtask, s.pending), nil
}

// sealEpoch flushes, fsyncs and closes the in-progress file and renames it
// to name in the staging directory.
func (s *Sink[T]) sealEpoch(name string) error {
	f, path := s.f, s.path
	s.f, s.path = nil, ""
	err := s.w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	if err := os.Rename(path, filepath.Join(s.staging, name)); err != nil {
		return err
	}
	return syncDir(s.staging)
}

// Commit makes visible every file pre-committed at or before checkpointID by
// renaming it to <prefix>-<subtask>-<checkpoint> in Dir, then fsyncs Dir. A
// file already renamed (by an earlier attempt) counts as committed if it has
// the recorded size; a file found neither staged nor visible is ErrDataLoss.
// In at-least-once mode Commit does nothing.
func (s *Sink[T]) Commit(ctx context.Context, checkpointID uint64) error {
	if s.cfg.AtLeastOnce {
		return nil
	}
	i := 0
	for i < len(s.pending) && s.pending[i].checkpoint <= checkpointID {
		i++
	}
	if i == 0 {
		return nil
	}
	if err := s.commitFiles(s.pending[:i]); err != nil {
		return fmt.Errorf("sinks/file: commit checkpoint %d: %w", checkpointID, err)
	}
	s.pending = slices.Delete(s.pending, 0, i)
	return nil
}

// commitFiles moves files from the staging directory to Dir, idempotently,
// and fsyncs both directories.
func (s *Sink[T]) commitFiles(files []pendingFile) error {
	if len(files) == 0 {
		return nil
	}
	for _, p := range files {
		if err := s.commitFile(p); err != nil {
			return err
		}
	}
	// NB: sync even if every file had been renamed before: the process that
	// renamed them may have died before its fsync.
	if err := syncDir(s.cfg.Dir); err != nil {
		return err
	}
	return syncDir(s.staging)
}

func (s *Sink[T]) commitFile(p pendingFile) error {
	src := filepath.Join(s.staging, p.pending)
	dst := filepath.Join(s.cfg.Dir, p.final)
	si, serr := os.Lstat(src)
	if serr != nil && !errors.Is(serr, fs.ErrNotExist) {
		return serr
	}
	di, derr := os.Lstat(dst)
	if derr != nil && !errors.Is(derr, fs.ErrNotExist) {
		return derr
	}
	switch {
	case serr == nil && derr != nil: // staged: commit it
		if si.Size() != p.size {
			return fmt.Errorf("%w: checkpoint %d: staged %s has %d bytes, the checkpoint recorded %d",
				ErrDataLoss, p.checkpoint, src, si.Size(), p.size)
		}
		s.log.Debug("sinks/file: commit", "checkpoint", p.checkpoint, "file", p.final, "bytes", p.size)
		return os.Rename(src, dst)
	case serr == nil: // both exist
		if os.SameFile(si, di) {
			return os.Remove(src) // a rename half made durable: finish it
		}
		return fmt.Errorf("%w: checkpoint %d: %s exists and is not the staged file %s; refusing to overwrite it",
			ErrConflict, p.checkpoint, dst, src)
	case derr == nil: // already committed
		if di.Size() != p.size {
			return fmt.Errorf("%w: checkpoint %d: %s has %d bytes, the checkpoint recorded %d",
				ErrConflict, p.checkpoint, dst, di.Size(), p.size)
		}
		return nil
	default:
		return fmt.Errorf("%w: checkpoint %d: neither the staged file %s nor the output file %s exists",
			ErrDataLoss, p.checkpoint, src, dst)
	}
}

// Close releases the sink. In exactly-once mode it deletes the in-progress
// file, whose records were never pre-committed; pre-committed files stay
// for a later Open to commit. In at-least-once mode it flushes the visible
// file.
func (s *Sink[T]) Close() error {
	if s.f == nil {
		return nil
	}
	f, path := s.f, s.path
	s.f, s.path = nil, ""
	if s.cfg.AtLeastOnce {
		err := s.w.Flush()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	err := f.Close()
	if rerr := os.Remove(path); err == nil {
		err = rerr
	}
	return err
}

// mkdirDurable creates dir if missing and makes its entry durable.
func mkdirDurable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sinks/file: %w", err)
	}
	return syncDir(filepath.Dir(dir))
}

// syncDir fsyncs a directory so that renames and removals in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sinks/file: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sinks/file: sync %s: %w", dir, err)
	}
	return nil
}

// encodeState encodes the pending files:
//
//	version byte (1)
//	uvarint subtask, uvarint number of files
//	per file: uvarint checkpoint, uvarint size,
//	          uvarint length + staged base name, uvarint length + final base name
func encodeState(subtask int, files []pendingFile) []byte {
	b := make([]byte, 0, 8+len(files)*48)
	b = append(b, stateVersion)
	b = binary.AppendUvarint(b, uint64(subtask))
	b = binary.AppendUvarint(b, uint64(len(files)))
	for _, p := range files {
		b = binary.AppendUvarint(b, p.checkpoint)
		b = binary.AppendUvarint(b, uint64(p.size))
		b = binary.AppendUvarint(b, uint64(len(p.pending)))
		b = append(b, p.pending...)
		b = binary.AppendUvarint(b, uint64(len(p.final)))
		b = append(b, p.final...)
	}
	return b
}

var errCorruptState = errors.New("sinks/file: corrupt state")

func decodeState(b []byte) (subtask int, files []pendingFile, err error) {
	if len(b) == 0 {
		return 0, nil, errCorruptState
	}
	if b[0] != stateVersion {
		return 0, nil, fmt.Errorf("sinks/file: unknown state version %d", b[0])
	}
	b = b[1:]
	next := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			err = errCorruptState
			return 0
		}
		b = b[n:]
		return v
	}
	name := func() string {
		n := next()
		if err != nil || n > uint64(len(b)) {
			err = errCorruptState
			return ""
		}
		s := string(b[:n])
		b = b[n:]
		if s == "" || s == "." || s == ".." || strings.ContainsAny(s, `/\`) {
			err = errCorruptState
		}
		return s
	}
	st := next()
	n := next()
	if err != nil || st > 1<<31 || n > uint64(len(b)) {
		return 0, nil, errCorruptState
	}
	files = make([]pendingFile, 0, n)
	for range n {
		var p pendingFile
		p.checkpoint = next()
		p.size = int64(next())
		p.pending = name()
		p.final = name()
		if err != nil || p.size < 0 {
			return 0, nil, errCorruptState
		}
		files = append(files, p)
	}
	if len(b) != 0 {
		return 0, nil, errCorruptState
	}
	return int(st), files, nil
}
