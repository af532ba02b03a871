package file

import (
	"bufio"
	"bytes"
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
	"time"

	"github.com/weirstream/weir/runtime"
)

// Defaults applied by SinkConfig.EnsureDefaults.
const (
	// DefaultPrefix starts the name of every visible output file.
	DefaultPrefix = "part"
	// DefaultSinkBufferSize is the write buffer of each sink instance.
	DefaultSinkBufferSize = 256 << 10
	// DefaultMaxFileAge is SinkConfig.MaxFileAge when only MaxFileSize is
	// set (as Flink's default rollover interval).
	DefaultMaxFileAge = time.Minute
)

// stagingDir is the dot-directory inside SinkConfig.Dir that holds the
// in-progress and pending files of each subtask, in stagingDir/<subtask>/.
// Shell globs such as DIR/* skip it.
const stagingDir = ".weir"

var (
	// ErrDataLoss reports that a file a complete checkpoint promised can no
	// longer be found (neither staged nor committed) or has the wrong size.
	// The sink never continues past it: the output would be incomplete.
	// It wraps runtime.ErrUnrecoverable: restarting the job cannot help.
	ErrDataLoss = fmt.Errorf("file sink: committed data is missing (%w)", runtime.ErrUnrecoverable)
	// ErrConflict reports a visible file that the sink did not write in the
	// place of a file it has to commit. The sink never overwrites it. It
	// wraps runtime.ErrUnrecoverable.
	ErrConflict = fmt.Errorf("file sink: output file already exists (%w)", runtime.ErrUnrecoverable)
)

// stateVersion is the first byte of every state returned by PreCommit.
const stateVersion = 1

// SinkMode selects the delivery guarantee of the sink, as the Kafka and
// Postgres sinks' Mode does.
type SinkMode int

const (
	// ExactlyOnce writes each checkpoint's records to staged files that
	// become visible when the checkpoint completes. It is the default.
	ExactlyOnce SinkMode = iota
	// AtLeastOnce writes records straight to visible files and makes
	// Commit a no-op: after a crash, records since the last checkpoint are
	// written again (duplicated). A visible file may end in a partial line
	// until the restart trims it. It exists to test that crash checkers
	// detect duplicates.
	AtLeastOnce
)

func (m SinkMode) String() string {
	switch m {
	case ExactlyOnce:
		return "exactly-once"
	case AtLeastOnce:
		return "at-least-once"
	}
	return fmt.Sprintf("SinkMode(%d)", int(m))
}

// SinkConfig configures a file sink.
type SinkConfig[T any] struct {
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
	// Mode is ExactlyOnce (the default) or AtLeastOnce.
	Mode SinkMode
	// BufferSize is the write buffer size in bytes (DefaultSinkBufferSize if
	// zero).
	BufferSize int
	// MaxFileSize and MaxFileAge switch on rolling: a part file then spans
	// checkpoints, and is rolled (and made visible at the next checkpoint)
	// once the next record would take it past MaxFileSize bytes (a record
	// larger than that gets a file of its own), or at the first checkpoint
	// after it is MaxFileAge old, or at the end of a bounded input. Both
	// zero (the default) rolls a file at every checkpoint: one file per
	// subtask and checkpoint with records, visible as soon as the
	// checkpoint completes. With rolling, MaxFileAge bounds how long
	// records stay invisible; zero then means DefaultMaxFileAge, and a zero
	// MaxFileSize means no size limit. See the package documentation for
	// how rolled files stay exactly-once. Exactly-once mode only.
	MaxFileSize int64
	MaxFileAge  time.Duration
}

// rolling reports whether part files span checkpoints.
func (c *SinkConfig[T]) rolling() bool { return c.MaxFileSize > 0 || c.MaxFileAge > 0 }

// EnsureDefaults fills in zero fields with their defaults.
func (c *SinkConfig[T]) EnsureDefaults() {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.BufferSize == 0 {
		c.BufferSize = DefaultSinkBufferSize
	}
	if c.MaxFileSize > 0 && c.MaxFileAge == 0 {
		c.MaxFileAge = DefaultMaxFileAge
	}
}

// Validate reports a configuration error without touching the file system.
func (c *SinkConfig[T]) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("file sink: no output directory")
	case c.Format == nil:
		return errors.New("file sink: no Format function")
	case c.Prefix == "" || strings.HasPrefix(c.Prefix, ".") || strings.ContainsAny(c.Prefix, `/\`):
		return fmt.Errorf("file sink: invalid prefix %q: it must be non-empty, without a path separator and not start with a dot", c.Prefix)
	case c.BufferSize < 0:
		return fmt.Errorf("file sink: BufferSize %d is negative", c.BufferSize)
	case c.MaxFileSize < 0 || c.MaxFileAge < 0:
		return fmt.Errorf("file sink: MaxFileSize %d or MaxFileAge %v is negative", c.MaxFileSize, c.MaxFileAge)
	case c.Mode != ExactlyOnce && c.Mode != AtLeastOnce:
		return fmt.Errorf("file sink: unknown %v: use file.ExactlyOnce or file.AtLeastOnce", c.Mode)
	case c.Mode == AtLeastOnce && c.rolling():
		return errors.New("file sink: MaxFileSize and MaxFileAge apply to exactly-once mode only; unset them or Mode AtLeastOnce")
	}
	return nil
}

// StringLine is a Format for string records: it appends rec and "\n".
func StringLine(dst []byte, rec string) []byte {
	return append(append(dst, rec...), '\n')
}

// LinesTo returns the SinkConfig of an exactly-once sink writing string
// records into dir, one per line.
func LinesTo(dir string) SinkConfig[string] {
	return SinkConfig[string]{Dir: dir, Format: StringLine}
}

// NewSink validates cfg and returns the sink factory for runtime.To. The
// sink is a runtime.TwoPhaseWriter driven by runtime.NewTwoPhaseSink, which
// keeps the pending files in the checkpoint.
func NewSink[T any](cfg SinkConfig[T]) (runtime.SinkFactory[T], error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return func() (runtime.Sink[T], error) {
		return runtime.NewTwoPhaseSink[T, pendingFile](&sink[T]{cfg: cfg}, fileCodec{}), nil
	}, nil
}

// sink is one subtask's instance of the file sink; see the package
// documentation for the protocol.
type sink[T any] struct {
	cfg     SinkConfig[T]
	info    runtime.TaskInfo
	log     *slog.Logger
	opened  bool
	staging string // Dir/stagingDir/<subtask>

	// The file of the current epoch (exactly-once: in-progress, hidden;
	// at-least-once: visible). f is nil until the epoch's first record.
	f    *os.File
	path string
	w    *bufio.Writer
	size int64
	roll rollState // rolling mode only
}

var (
	_ runtime.TwoPhaseWriter[string, pendingFile] = (*sink[string])(nil)
	_ runtime.TwoPhaseSealer[pendingFile]         = (*sink[string])(nil)
)

// pendingFile is a staged file waiting for its checkpoint to complete: the
// committable of the file sink.
type pendingFile struct {
	checkpoint uint64
	pending    string // base name in the staging directory
	final      string // base name in Dir
	size       int64
}

// DescribeCommittable is what weir checkpoints inspect shows of a pending
// file (runtime.CommittableDescriber): its base names in the staging
// directory and in Dir.
func (p pendingFile) DescribeCommittable() any {
	return struct {
		Staged string `json:"staged"`
		Final  string `json:"final"`
		Bytes  int64  `json:"bytes"`
	}{p.pending, p.final, p.size}
}

// Open creates the output directory and the subtask's staging directory.
func (s *sink[T]) Open(ctx context.Context, info runtime.TaskInfo) error {
	if s.opened {
		return errors.New("file sink: Open called twice")
	}
	if info.Parallelism < 1 || info.Subtask < 0 || info.Subtask >= info.Parallelism {
		return fmt.Errorf("file sink: invalid task info: subtask %d of %d", info.Subtask, info.Parallelism)
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
	if s.cfg.Mode == AtLeastOnce {
		return nil
	}
	s.staging = filepath.Join(s.cfg.Dir, stagingDir, strconv.Itoa(info.Subtask))
	if err := mkdirDurable(filepath.Join(s.cfg.Dir, stagingDir)); err != nil {
		return err
	}
	return mkdirDurable(s.staging)
}

// Recover runs after the files of the restored checkpoint are committed:
// everything else staged by this subtask belongs to epochs after the
// restored checkpoint, whose records the runtime replays, and is deleted.
// On a fresh start it refuses an output directory that already holds
// committed files with the sink's prefix: they are another run's, and the
// first commit would collide with them. It never removes a visible file. In
// at-least-once mode it only trims the partial lines a crash left (see
// trimTornLines).
func (s *sink[T]) Recover(ctx context.Context, r runtime.Recovery[pendingFile]) error {
	if s.cfg.Mode == AtLeastOnce {
		return s.trimTornLines()
	}
	if r.Fresh {
		if err := s.checkNoOtherRun(); err != nil {
			return err
		}
	}
	keep, err := s.resume(r.WriterState, r.Checkpoint)
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(s.staging)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	entries = slices.DeleteFunc(entries, func(e fs.DirEntry) bool { return e.Name() == keep })
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.staging, e.Name())); err != nil {
			return fmt.Errorf("file sink: discard staged file: %w", err)
		}
	}
	if len(entries) > 0 {
		if err := syncDir(s.staging); err != nil {
			return err
		}
	}
	s.log.Debug("file sink: opened", "restored_files", len(r.Committables), "discarded_files", len(entries))
	return nil
}

// checkNoOtherRun fails with ErrConflict if Dir holds a committed file of
// the sink's prefix. A fresh start has committed nothing yet (every
// subtask opens before the first checkpoint can complete), so such a file
// is another job's or an earlier run's.
func (s *sink[T]) checkNoOtherRun() error {
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), s.cfg.Prefix+"-") {
			return fmt.Errorf("%w: %s holds %s, committed by another job or an earlier run; "+
				"a fresh start needs an output directory without files named %s-* (use an empty Dir or another Prefix, "+
				"or restore the job from its checkpoints)",
				ErrConflict, s.cfg.Dir, e.Name(), s.cfg.Prefix)
		}
	}
	return nil
}

// DecodeLegacyState decodes the state of a file sink from before
// runtime.NewTwoPhaseSink, so that its checkpoints stay restorable.
func (s *sink[T]) DecodeLegacyState(b []byte) (runtime.Recovery[pendingFile], error) {
	subtask, files, err := decodeState(b)
	if err != nil {
		return runtime.Recovery[pendingFile]{}, err
	}
	if subtask != s.info.Subtask {
		return runtime.Recovery[pendingFile]{}, fmt.Errorf("file sink: state of subtask %d restored into subtask %d", subtask, s.info.Subtask)
	}
	var r runtime.Recovery[pendingFile]
	for _, p := range files {
		r.Checkpoint = max(r.Checkpoint, p.checkpoint)
		r.Committables = append(r.Committables, runtime.Committable[pendingFile]{Checkpoint: p.checkpoint, Value: p})
	}
	return r, nil
}

// Write appends the formatted record to the current epoch's file, creating
// the file on the epoch's first record.
func (s *sink[T]) Write(ctx context.Context, rec T) error {
	if s.f == nil {
		if err := s.startEpoch(); err != nil {
			return err
		}
	}
	b := s.cfg.Format(s.w.AvailableBuffer(), rec)
	if s.cfg.MaxFileSize > 0 && s.size > 0 && s.size+int64(len(b)) > s.cfg.MaxFileSize {
		b = append(s.roll.scratch[:0], b...) // NB: b aliases the buffer that rolling flushes
		s.roll.scratch = b
		if err := s.rollFile(); err != nil {
			return err
		}
		if err := s.startEpoch(); err != nil {
			return err
		}
	}
	if len(b) > s.w.Available() && s.w.Buffered() > 0 {
		// NB: flush at a record boundary so that a record never spans two
		// writes unless it is larger than the buffer. b no longer aliases
		// the buffer: append had to grow it.
		if err := s.w.Flush(); err != nil {
			return fmt.Errorf("file sink: write %s: %w", s.path, err)
		}
	}
	n, err := s.w.Write(b)
	s.size += int64(n)
	if err != nil {
		return fmt.Errorf("file sink: write %s: %w", s.path, err)
	}
	return nil
}

func (s *sink[T]) startEpoch() error {
	if !s.opened {
		return errors.New("file sink: Write before Open")
	}
	var err error
	if s.cfg.Mode == AtLeastOnce {
		s.f, s.path, err = s.createAtLeastOnceFile()
	} else {
		s.path = filepath.Join(s.staging, "inprogress-"+rand.Text())
		s.f, err = os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	}
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	s.size = 0
	s.roll.started, s.roll.synced = time.Now(), false
	if s.w == nil {
		s.w = bufio.NewWriterSize(s.f, s.cfg.BufferSize)
	} else {
		s.w.Reset(s.f)
	}
	return nil
}

// createAtLeastOnceFile creates the visible file of this incarnation:
// <prefix>-<subtask>-alo-<k> with k one more than any existing k.
func (s *sink[T]) createAtLeastOnceFile() (*os.File, string, error) {
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

// trimTornLines cuts the partial last line off the at-least-once files of
// earlier incarnations. Write hands write(2) whole records, but a process
// killed inside a write is cut short at a page boundary, mid-record (Linux
// stops a buffered write at a fatal signal). The cut record came after the
// restored checkpoint (Prepare flushes whole records), so the replay
// writes it again: trimming loses nothing. Subtask i trims the files of the
// old subtasks j with j mod parallelism = i, before it creates its own
// (startEpoch), so that no file has two trimmers, nor a writer and a
// trimmer, whatever the parallelism was.
func (s *sink[T]) trimTornLines() error {
	matches, err := filepath.Glob(filepath.Join(s.cfg.Dir, s.cfg.Prefix+"-*-alo-*"))
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	for _, path := range matches {
		sub, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(path), s.cfg.Prefix+"-"), "-alo-")
		j, err := strconv.Atoi(sub)
		if !ok || err != nil || j%s.info.Parallelism != s.info.Subtask {
			continue
		}
		cut, err := trimPartialLine(path)
		if err != nil {
			return fmt.Errorf("file sink: trim the partial line a crash left in %s: %w", path, err)
		}
		if cut > 0 {
			s.log.Warn("file sink: removed the partial last line a crash left; the records after the restored checkpoint are written again", "file", path, "bytes", cut)
		}
	}
	return nil
}

// trimPartialLine truncates the file at path after its last newline and
// returns how many bytes it cut.
func trimPartialLine(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size, end := fi.Size(), fi.Size()
	buf := make([]byte, 64<<10)
	for end > 0 {
		n := min(end, int64(len(buf)))
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end += int64(i+1) - n
			break
		}
		end -= n
	}
	if end == size {
		return 0, nil
	}
	if err := f.Truncate(end); err != nil {
		return 0, err
	}
	return size - end, f.Sync()
}

// Prepare makes the epoch's records durable. In exactly-once mode it
// flushes, fsyncs and closes the in-progress file, renames it to
// pending-<checkpointID> in the staging directory and fsyncs that directory;
// the staged file is the committable, with its final name and size. An
// epoch without records creates nothing. In at-least-once mode Prepare
// flushes and fsyncs the visible file and returns no committable.
func (s *sink[T]) Prepare(ctx context.Context, checkpointID uint64, endOfInput bool) ([]pendingFile, []byte, error) {
	if !s.opened {
		return nil, nil, errors.New("file sink: PreCommit before Open")
	}
	if s.cfg.Mode == AtLeastOnce {
		if s.f != nil {
			if err := s.w.Flush(); err != nil {
				return nil, nil, fmt.Errorf("file sink: flush %s: %w", s.path, err)
			}
			if err := s.f.Sync(); err != nil {
				return nil, nil, fmt.Errorf("file sink: %w", err)
			}
		}
		return nil, nil, nil
	}
	if s.cfg.rolling() {
		return s.prepareRolling(checkpointID, endOfInput)
	}
	if s.f == nil {
		return nil, nil, nil
	}
	p := pendingFile{
		checkpoint: checkpointID,
		pending:    "pending-" + strconv.FormatUint(checkpointID, 10),
		final:      fmt.Sprintf("%s-%03d-%010d", s.cfg.Prefix, s.info.Subtask, checkpointID),
		size:       s.size,
	}
	if err := s.sealEpoch(p.pending); err != nil {
		return nil, nil, fmt.Errorf("file sink: checkpoint %d: %w", checkpointID, err)
	}
	return []pendingFile{p}, nil, nil
}

// sealEpoch flushes, fsyncs and closes the in-progress file and renames it
// to name in the staging directory.
func (s *sink[T]) sealEpoch(name string) error {
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

// Commit makes visible the files pre-committed at or before checkpointID
// by renaming each to <prefix>-<subtask>-<checkpoint> in Dir, then fsyncs
// Dir. A file already renamed (by an earlier attempt) counts as committed
// if it has the recorded size; a file found neither staged nor visible is
// ErrDataLoss. In at-least-once mode Commit does nothing.
func (s *sink[T]) Commit(ctx context.Context, checkpointID uint64, files []runtime.Committable[pendingFile]) error {
	if s.cfg.Mode == AtLeastOnce || len(files) == 0 {
		return nil
	}
	for _, c := range files {
		p := c.Value
		p.checkpoint = c.Checkpoint
		if err := s.commitFile(p); err != nil {
			return fmt.Errorf("file sink: commit checkpoint %d: %w", checkpointID, err)
		}
	}
	// NB: sync even if every file had been renamed before: the process that
	// renamed them may have died before its fsync.
	if err := syncDir(s.cfg.Dir); err != nil {
		return err
	}
	return syncDir(s.staging)
}

func (s *sink[T]) commitFile(p pendingFile) error {
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
		s.log.Debug("file sink: commit", "checkpoint", p.checkpoint, "file", p.final, "bytes", p.size)
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
func (s *sink[T]) Close() error {
	if s.f == nil {
		return nil
	}
	f, path := s.f, s.path
	s.f, s.path = nil, ""
	if s.cfg.Mode == AtLeastOnce {
		err := s.w.Flush()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	err := f.Close()
	if s.cfg.rolling() {
		return err // it may hold checkpointed records: the next Recover decides
	}
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
		return fmt.Errorf("file sink: %w", err)
	}
	return syncDir(filepath.Dir(dir))
}

// syncDir fsyncs a directory so that renames and removals in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("file sink: sync %s: %w", dir, err)
	}
	return nil
}

// fileCodec encodes a pendingFile in the checkpoint (its checkpoint is the
// runtime.Committable's):
//
//	uvarint size, uvarint length + staged base name, uvarint length + final base name
type fileCodec struct{}

func (fileCodec) Append(b []byte, p pendingFile) []byte {
	b = binary.AppendUvarint(b, uint64(p.size))
	b = binary.AppendUvarint(b, uint64(len(p.pending)))
	b = append(b, p.pending...)
	b = binary.AppendUvarint(b, uint64(len(p.final)))
	return append(b, p.final...)
}

func (fileCodec) Decode(b []byte) (pendingFile, error) {
	var p pendingFile
	d := stateReader{b: b}
	p.size = int64(d.next())
	p.pending = d.name()
	p.final = d.name()
	if d.err != nil || p.size < 0 || len(d.b) != 0 {
		return pendingFile{}, errCorruptState
	}
	return p, nil
}

// encodeState encodes the pending files in the format of the file sink
// before runtime.NewTwoPhaseSink (read by DecodeLegacyState; tests write it):
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

var errCorruptState = errors.New("file sink: corrupt state")

func decodeState(b []byte) (subtask int, files []pendingFile, err error) {
	if len(b) == 0 {
		return 0, nil, errCorruptState
	}
	if b[0] != stateVersion {
		return 0, nil, fmt.Errorf("file sink: unknown state version %d", b[0])
	}
	d := stateReader{b: b[1:]}
	st := d.next()
	n := d.next()
	if d.err != nil || st > 1<<31 || n > uint64(len(d.b)) {
		return 0, nil, errCorruptState
	}
	files = make([]pendingFile, 0, n)
	for range n {
		var p pendingFile
		p.checkpoint = d.next()
		p.size = int64(d.next())
		p.pending = d.name()
		p.final = d.name()
		if d.err != nil || p.size < 0 {
			return 0, nil, errCorruptState
		}
		files = append(files, p)
	}
	if len(d.b) != 0 {
		return 0, nil, errCorruptState
	}
	return int(st), files, nil
}

// stateReader reads uvarints and base names, keeping the first error.
type stateReader struct {
	b   []byte
	err error
}

func (d *stateReader) next() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorruptState
		return 0
	}
	d.b = d.b[n:]
	return v
}

// name reads a base name; a path separator or "." or ".." is corrupt, so
// that a state can never make the sink touch a file outside its directories.
func (d *stateReader) name() string {
	n := d.next()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errCorruptState
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, `/\`) {
		d.err = errCorruptState
	}
	return s
}
