package file

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/weirstream/weir/runtime"
)

// Defaults applied by SourceConfig.EnsureDefaults.
const (
	// DefaultMaxLinesPerRead bounds the lines one Read call emits, so that
	// the runtime can inject barriers between Reads.
	DefaultMaxLinesPerRead = 4096
	// DefaultSourceBufferSize is the size of the bufio.Reader of each source.
	// Lines longer than the buffer are still read whole, with one extra copy.
	DefaultSourceBufferSize = 1 << 20
	// DefaultMergeBufferSize is the size of the bufio.Reader of each file
	// of a source that reads its files together (SourceConfig.Timestamp
	// set), which has one per open file.
	DefaultMergeBufferSize = 64 << 10
)

// ErrSnapshotMismatch marks input that is not what the job started with: on
// a restore, the file list or an input file changed since the job first
// started, or the state is of another subtask or another kind of source;
// while the job runs, a file it has not reached yet changed since then. Reading on would silently produce wrong data, so the
// source fails. Test for it with errors.Is. It wraps runtime.ErrUnrecoverable:
// restarting the job cannot help.
var ErrSnapshotMismatch = fmt.Errorf("file source: snapshot does not match the input (%w)", runtime.ErrUnrecoverable)

// snapshotVersion is the first byte of the snapshot of a source that reads
// its files one after the other; mergeSnapshotVersion of one that keeps an
// offset per file: it reads them together (SourceConfig.Timestamp set), or
// several are part read (after a change of parallelism). Version 1 (no
// fingerprints) is still restored.
const (
	snapshotVersion      = 2
	mergeSnapshotVersion = 3
)

// SourceConfig configures a source of the lines of files.
type SourceConfig struct {
	// Paths lists files or filepath.Match glob patterns. They are expanded
	// when the source is constructed; the union is deduplicated and sorted
	// by path. As in the shell, a wildcard in the last path element does
	// not match names starting with a dot (write ".*" for those). A pattern
	// that matches nothing, or a file that cannot be opened, is an error
	// naming it.
	Paths []string
	// MaxLinesPerRead bounds the number of lines one Read emits
	// (DefaultMaxLinesPerRead if zero).
	MaxLinesPerRead int
	// BufferSize is the read buffer size in bytes (DefaultSourceBufferSize if
	// zero, DefaultMergeBufferSize per file with Timestamp; bufio enforces
	// a minimum of 16).
	BufferSize int
	// Timestamp, if set, is the event time of a line, and a subtask reads
	// its files together instead of one after the other: each Read emits
	// the earliest pending line of all its files, so that the stream's
	// watermark, which follows the largest timestamp emitted, does not
	// make the early lines of one file late because another file's late
	// lines came first. Set it whenever a subtask may read more than one
	// file (more files than the source's parallelism) of a stream with
	// event time. The source gives each line this time
	// (runtime.TimestampCollector), so the stream's
	// runtime.WatermarkStrategy needs no Timestamp function (one, if set,
	// decides instead). Every unread file of a subtask is then open at
	// once, each with a BufferSize buffer. See the package documentation.
	Timestamp func(line string) int64
	// MonitorInterval, if positive, makes the source unbounded: it keeps
	// watching Paths for files that appear, checking every MonitorInterval,
	// and reads each new file once, as Flink's FileSource in continuous
	// mode. Patterns need not match anything at the start, but the
	// directory of each must exist. See "The source: watching a
	// directory" in the package documentation for what growing and renamed
	// files do. It cannot be combined with Timestamp.
	MonitorInterval time.Duration
}

// EnsureDefaults fills in zero fields with their defaults.
func (c *SourceConfig) EnsureDefaults() {
	if c.MaxLinesPerRead == 0 {
		c.MaxLinesPerRead = DefaultMaxLinesPerRead
	}
	if c.BufferSize == 0 {
		c.BufferSize = DefaultSourceBufferSize
		if c.Timestamp != nil {
			c.BufferSize = DefaultMergeBufferSize
		}
	}
}

// Validate reports a configuration error without touching the file system.
func (c *SourceConfig) Validate() error {
	switch {
	case len(c.Paths) == 0:
		return errors.New("file source: no paths given")
	case c.MaxLinesPerRead < 0:
		return fmt.Errorf("file source: MaxLinesPerRead %d is negative", c.MaxLinesPerRead)
	case c.BufferSize < 0:
		return fmt.Errorf("file source: BufferSize %d is negative", c.BufferSize)
	case c.MonitorInterval < 0:
		return fmt.Errorf("file source: MonitorInterval %v is negative", c.MonitorInterval)
	case c.MonitorInterval > 0 && c.Timestamp != nil:
		return errors.New("file source: MonitorInterval and Timestamp cannot be combined: " +
			"a file that appears later may hold lines earlier than the watermark; leave Timestamp unset")
	}
	return nil
}

// NewSource validates cfg, expands its patterns, checks that every file can
// be opened for reading and returns the source factory for runtime.From.
// File i of the sorted list is read by subtask i % parallelism.
func NewSource(cfg SourceConfig) (runtime.SourceFactory[string], error) {
	f, err := newFiles(cfg)
	if err != nil {
		return nil, err
	}
	return func() (runtime.Source[string], error) { return f.newSource(), nil }, nil
}

// files is a validated, sorted list of input files. It is immutable and
// makes one source per subtask with newSource.
type files struct {
	cfg   SourceConfig
	paths []string
}

// newFiles validates cfg, expands its patterns and checks that every file
// can be opened for reading.
func newFiles(cfg SourceConfig) (*files, error) {
	cfg.Paths = slices.Clone(cfg.Paths)
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MonitorInterval > 0 {
		// The files are found while the job runs; check the patterns now.
		for _, p := range cfg.Paths {
			if _, err := match(p); err != nil {
				return nil, err
			}
			if dir := filepath.Dir(p); !hasMeta(dir) {
				if st, err := os.Stat(dir); err != nil {
					return nil, fmt.Errorf("file source: directory to watch: %w", err)
				} else if !st.IsDir() {
					return nil, fmt.Errorf("file source: %s (in pattern %q) is not a directory", dir, p)
				}
			}
		}
		return &files{cfg: cfg}, nil
	}
	paths, err := expand(cfg.Paths)
	if err != nil {
		return nil, err
	}
	return &files{cfg: cfg, paths: paths}, nil
}

// newSource returns a new, unopened source of one subtask.
func (f *files) newSource() runtime.Source[string] {
	if f.cfg.MonitorInterval > 0 {
		return &watchSource{files: f}
	}
	if f.cfg.Timestamp != nil {
		return &mergeSource{lineSource: lineSource{files: f}, timestamp: f.cfg.Timestamp}
	}
	return &lineSource{files: f}
}

func expand(patterns []string) ([]string, error) {
	var out []string
	for _, p := range patterns {
		matches, err := match(p)
		if err != nil {
			return nil, err
		}
		if len(matches) == 0 {
			if !hasMeta(p) {
				// A plain path: the stat error says why (missing, permission).
				if _, err := os.Stat(p); err != nil {
					return nil, fmt.Errorf("file source: %w", err)
				}
			}
			return nil, fmt.Errorf("file source: pattern %q matches no file", p)
		}
		out = append(out, matches...)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	for _, p := range out {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("file source: %w", err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("file source: %s is not a regular file (mode %s)", p, st.Mode())
		}
		fh, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("file source: %w", err)
		}
		fh.Close()
	}
	return out, nil
}

// match returns the paths p matches, sorted.
func match(p string) ([]string, error) {
	matches, err := filepath.Glob(p)
	if err != nil {
		return nil, fmt.Errorf("file source: pattern %q: %w", p, err)
	}
	if hasMeta(p) && !strings.HasPrefix(filepath.Base(p), ".") {
		// Like the shell, a wildcard does not match a leading dot: "out/*"
		// skips "out/.weir", the staging directory of the file sink.
		matches = slices.DeleteFunc(matches, func(m string) bool {
			return strings.HasPrefix(filepath.Base(m), ".")
		})
	}
	return matches, nil
}

func hasMeta(pattern string) bool { return strings.ContainsAny(pattern, `*?[\`) }

// lineSource reads the files assigned to one subtask, in order.
type lineSource struct {
	files *files
	info  runtime.TaskInfo

	// cur is the index in files.paths of the file being read; it advances
	// by info.Parallelism and is >= len(files.paths) once all are read.
	cur int
	// prints holds the fingerprints of the subtask's files (indexes
	// Subtask, Subtask+Parallelism, …) as the job first saw them.
	prints []fingerprint

	// offsets[i], if not nil, is the byte offset the subtask's file i is
	// read from when the source reaches it: a snapshot that keeps an offset
	// per file (of a merging source, or a share after a change of
	// parallelism, see Redistribute) may have several files part read.
	// Nil when every file after cur starts at 0.
	offsets []int64

	f          *os.File
	lineReader // reads cur; pos is the byte offset of its next unread line
}

// lineReader splits an open file into lines and tracks the byte offset of
// the next unread one.
type lineReader struct {
	r    *bufio.Reader
	pos  int64  // byte offset of the next unread line
	long []byte // scratch for lines longer than the read buffer
}

func (s *lineSource) Open(ctx context.Context, info runtime.TaskInfo, restored []byte) error {
	if err := checkInfo(info); err != nil {
		return err
	}
	s.info = info
	s.cur, s.pos = info.Subtask, 0
	if restored == nil {
		prints, err := s.fingerprintNow()
		if err != nil {
			return err
		}
		s.prints = prints
	} else if err := s.restore(restored); err != nil {
		return err
	}
	if s.offsets != nil {
		if err := s.resume(); err != nil {
			return err
		}
	}
	if s.cur < len(s.files.paths) {
		return s.openCurrent()
	}
	return nil
}

// checkInfo checks the TaskInfo given to Open.
func checkInfo(info runtime.TaskInfo) error {
	if info.Parallelism < 1 || info.Subtask < 0 || info.Subtask >= info.Parallelism {
		return fmt.Errorf("file source: invalid task info: subtask %d of %d", info.Subtask, info.Parallelism)
	}
	return nil
}

// assigned returns the paths of the subtask's files, in reading order.
func (s *lineSource) assigned() []string {
	var paths []string
	for i := s.info.Subtask; i < len(s.files.paths); i += s.info.Parallelism {
		paths = append(paths, s.files.paths[i])
	}
	return paths
}

// fingerprintNow fingerprints the subtask's files as they are now.
func (s *lineSource) fingerprintNow() ([]fingerprint, error) {
	var prints []fingerprint
	for _, path := range s.assigned() {
		fp, err := fingerprintPath(path)
		if err != nil {
			return nil, err
		}
		prints = append(prints, fp)
	}
	return prints, nil
}

// restore sets the position and fingerprints from a snapshot, after checking
// that it was taken by this subtask over the same files, unchanged.
func (s *lineSource) restore(b []byte) error {
	snap, err := decodeSnapshot(b)
	if err != nil {
		return err
	}
	if err := s.check(snap); err != nil {
		return err
	}
	now, err := s.fingerprintNow()
	if err != nil {
		return err
	}
	if snap.files == nil { // version 1: only the current file's size is known
		s.prints = now
		if i := s.printIndex(snap.cur); i < len(now) && now[i].size != snap.size {
			return fmt.Errorf("%w: %s had %d bytes at the checkpoint, now %d", ErrSnapshotMismatch, snap.path, snap.size, now[i].size)
		}
	} else {
		for i, f := range snap.files {
			if d := f.print.changed(now[i]); d != "" {
				return fmt.Errorf("%w: input file %s changed since the job first started: %s; "+
					"put the original back, or start the job afresh with an empty checkpoint directory", ErrSnapshotMismatch, f.path, d)
			}
		}
		s.prints = now
	}
	s.cur, s.pos, s.offsets = snap.cur, snap.pos, snap.offsets
	return nil
}

// resume turns restored per-file offsets into the position (cur, pos) of
// the first file not read to the end; the files after it are read from
// their offsets in turn. It drops offsets when they all are 0, so that
// Snapshot keeps the shorter form.
func (s *lineSource) resume() error {
	for i, off := range s.offsets {
		if off > s.prints[i].size {
			return fmt.Errorf("%w: offset %d is beyond the end of %s (%d bytes)", ErrSnapshotMismatch, off, s.assigned()[i], s.prints[i].size)
		}
	}
	i := 0
	for i < len(s.offsets) && s.offsets[i] == s.prints[i].size {
		i++
	}
	s.cur, s.pos = s.info.Subtask+i*s.info.Parallelism, 0
	if i < len(s.offsets) {
		s.pos = s.offsets[i]
	}
	if !slices.ContainsFunc(s.offsets[min(i+1, len(s.offsets)):], func(off int64) bool { return off != 0 }) {
		s.offsets = nil
	}
	return nil
}

// start returns the byte offset file index i is read from.
func (s *lineSource) start(i int) int64 {
	if s.offsets == nil || i >= len(s.files.paths) {
		return 0
	}
	return s.offsets[s.printIndex(i)]
}

// printIndex returns the index in prints of file index i.
func (s *lineSource) printIndex(i int) int { return (i - s.info.Subtask) / s.info.Parallelism }

// check verifies that snap was taken by this subtask over the same files.
func (s *lineSource) check(snap snapshot) error {
	n := len(s.files.paths)
	switch {
	case snap.parallelism != s.info.Parallelism || snap.subtask != s.info.Subtask:
		return fmt.Errorf("%w: snapshot of subtask %d of %d restored into subtask %d of %d",
			ErrSnapshotMismatch, snap.subtask, snap.parallelism, s.info.Subtask, s.info.Parallelism)
	case snap.numFiles != n:
		return fmt.Errorf("%w: snapshot covers %d files, the pattern now matches %d",
			ErrSnapshotMismatch, snap.numFiles, n)
	case snap.cur%snap.parallelism != snap.subtask:
		return fmt.Errorf("%w: file index %d does not belong to subtask %d", ErrSnapshotMismatch, snap.cur, snap.subtask)
	case snap.files == nil && snap.cur < n && snap.path != s.files.paths[snap.cur]:
		return fmt.Errorf("%w: file %d was %s, now %s", ErrSnapshotMismatch, snap.cur, snap.path, s.files.paths[snap.cur])
	}
	for i, path := range s.assigned() {
		if snap.files != nil && snap.files[i].path != path {
			return fmt.Errorf("%w: file %d was %s, now %s", ErrSnapshotMismatch, snap.subtask+i*snap.parallelism, snap.files[i].path, path)
		}
	}
	return nil
}

// openCurrent opens files.paths[s.cur], checks that it is the file the job
// first saw, and seeks to s.pos.
func (s *lineSource) openCurrent() error {
	f, err := openAt(s.files.paths[s.cur], s.prints[s.printIndex(s.cur)], s.pos)
	if err != nil {
		return err
	}
	s.f = f
	s.reset(f, s.files.cfg.BufferSize)
	return nil
}

// reset makes lr read f, reusing its buffer.
func (lr *lineReader) reset(f io.Reader, size int) {
	if lr.r == nil {
		lr.r = bufio.NewReaderSize(f, size)
	} else {
		lr.r.Reset(f)
	}
}

// openAt opens path, checks that it is the file the job first saw (want),
// and seeks to pos.
func openAt(path string, want fingerprint, pos int64) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("file source: %w", err)
	}
	fp, err := fingerprintOf(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("file source: fingerprint %s: %w", path, err)
	}
	if d := want.changed(fp); d != "" {
		f.Close()
		return nil, fmt.Errorf("%w: input file %s changed since the job first started: %s", ErrSnapshotMismatch, path, d)
	}
	if pos > fp.size {
		f.Close()
		return nil, fmt.Errorf("%w: offset %d is beyond the end of %s (%d bytes)", ErrSnapshotMismatch, pos, path, fp.size)
	}
	if pos > 0 {
		if _, err := f.Seek(pos, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("file source: %w", err)
		}
	}
	return f, nil
}

func (s *lineSource) Read(ctx context.Context, out runtime.Collector[string]) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n := len(s.files.paths)
	if s.cur >= n {
		return runtime.ErrEndOfInput
	}
	for emitted := 0; emitted < s.files.cfg.MaxLinesPerRead; {
		line, ok, err := s.next()
		if err != nil {
			return fmt.Errorf("file source: read %s at offset %d: %w", s.files.paths[s.cur], s.pos, err)
		}
		if ok {
			out.Collect(string(line))
			emitted++
			continue
		}
		// End of the current file: move to the next one of this subtask.
		err = s.f.Close()
		s.f = nil
		if err != nil {
			return fmt.Errorf("file source: close %s: %w", s.files.paths[s.cur], err)
		}
		s.cur += s.info.Parallelism
		s.pos = s.start(s.cur)
		if s.cur >= n {
			if emitted == 0 {
				return runtime.ErrEndOfInput
			}
			return nil // ErrEndOfInput on the next call, with nothing emitted
		}
		if err := s.openCurrent(); err != nil {
			return err
		}
	}
	return nil
}

// next returns the next line of the current file without its "\n" or
// "\r\n"; the slice is valid until the next call. ok is false at the end of
// the file.
func (s *lineReader) next() (line []byte, ok bool, err error) {
	frag, err := s.r.ReadSlice('\n')
	switch err {
	case nil:
	case io.EOF:
		if len(frag) == 0 {
			return nil, false, nil
		}
		// A final line without a newline.
	case bufio.ErrBufferFull:
		// NB: a line longer than the buffer; collect it in s.long.
		s.long = append(s.long[:0], frag...)
		for err == bufio.ErrBufferFull {
			frag, err = s.r.ReadSlice('\n')
			s.long = append(s.long, frag...)
		}
		if err != nil && err != io.EOF {
			return nil, false, err
		}
		frag = s.long
	default:
		return nil, false, err
	}
	s.pos += int64(len(frag))
	return trimEOL(frag), true, nil
}

// trimEOL strips one trailing "\n" or "\r\n". A lone trailing "\r" (without
// "\n") is data and stays.
func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// Snapshot encodes the position of the next unread line and the
// fingerprints of the subtask's files:
//
//	version byte (2)
//	uvarint parallelism, subtask, number of files, file index, byte offset
//	uvarint number of the subtask's files, then for each:
//	  uvarint path length, path bytes, uvarint size, modification time
//	  (Unix nanoseconds), CRC-32C of its ends
//
// When files after the current one are part read (restored from a
// snapshot with an offset per file), it encodes an offset per file instead
// (version 3, see encode).
func (s *lineSource) Snapshot() ([]byte, error) {
	if s.offsets != nil {
		return s.encode(mergeSnapshotVersion, s.sequentialOffsets()), nil
	}
	return s.encode(snapshotVersion, nil), nil
}

// encode encodes the snapshot; version 3 (mergeSnapshotVersion) appends
// offsets[i], the byte offset of the next unread line of the subtask's
// file i, to each file's fingerprint.
func (s *lineSource) encode(version byte, offsets []int64) []byte {
	paths := s.assigned()
	b := make([]byte, 0, 16+len(paths)*64)
	b = append(b, version)
	for _, v := range []uint64{uint64(s.info.Parallelism), uint64(s.info.Subtask),
		uint64(len(s.files.paths)), uint64(s.cur), uint64(s.pos), uint64(len(paths))} {
		b = binary.AppendUvarint(b, v)
	}
	for i, path := range paths {
		b = appendFile(b, path, s.prints[i])
		if version == mergeSnapshotVersion {
			b = binary.AppendUvarint(b, uint64(offsets[i]))
		}
	}
	return b
}

func (s *lineSource) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// appendFile encodes a path and its fingerprint: uvarint path length, path
// bytes, uvarint size, modification time (Unix nanoseconds), CRC-32C of its
// ends.
func appendFile(b []byte, path string, fp fingerprint) []byte {
	b = binary.AppendUvarint(b, uint64(len(path)))
	b = append(b, path...)
	b = binary.AppendUvarint(b, uint64(fp.size))
	b = binary.AppendUvarint(b, uint64(fp.modTime))
	return binary.AppendUvarint(b, uint64(fp.ends))
}

// file decodes what appendFile encoded.
func (d *decoder) file() snapshotFile {
	f := snapshotFile{path: string(d.bytes(d.int()))}
	f.print.size = int64(d.int())
	f.print.modTime = int64(d.uint64())
	f.print.ends = uint32(d.uint64())
	return f
}

type snapshot struct {
	parallelism, subtask, numFiles, cur int
	pos                                 int64
	// files are the subtask's files (version 2); nil in version 1, which
	// has path and size of the current file only.
	files []snapshotFile
	path  string
	size  int64
	// offsets (version 3) are the byte offsets of the next unread line of
	// each of files; nil in versions 1 and 2.
	offsets []int64
}

type snapshotFile struct {
	path  string
	print fingerprint
}

func decodeSnapshot(b []byte) (snapshot, error) {
	var snap snapshot
	switch {
	case len(b) == 0:
		return snap, errors.New("file source: empty snapshot")
	case isWatchVersion(b[0]):
		return snap, fmt.Errorf("%w: the snapshot was taken by a source watching for new files "+
			"(SourceConfig.MonitorInterval set); restore it with the same setting", ErrSnapshotMismatch)
	case b[0] < 1 || b[0] > mergeSnapshotVersion:
		return snap, fmt.Errorf("file source: unknown snapshot version %d", b[0])
	}
	d := decoder{b: b[1:]}
	snap.parallelism = d.int()
	snap.subtask = d.int()
	snap.numFiles = d.int()
	snap.cur = d.int()
	snap.pos = int64(d.int())
	if b[0] == 1 {
		snap.path = string(d.bytes(d.int()))
		snap.size = int64(d.int())
	} else {
		n := d.int()
		if n > len(d.b) {
			d.err = errors.New("too many files")
		}
		snap.files = make([]snapshotFile, 0, min(n, len(d.b)))
		for range n {
			snap.files = append(snap.files, d.file())
			if b[0] == mergeSnapshotVersion {
				snap.offsets = append(snap.offsets, int64(d.int()))
			}
		}
	}
	if d.err != nil || len(d.b) != 0 || snap.parallelism < 1 {
		return snap, errors.New("file source: corrupt snapshot")
	}
	if snap.files != nil && len(snap.files) != (snap.numFiles-snap.subtask+snap.parallelism-1)/snap.parallelism {
		return snap, errors.New("file source: corrupt snapshot: wrong number of files for the subtask")
	}
	return snap, nil
}

// decoder reads uvarints, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

const maxInt = int(^uint(0) >> 1)

func (d *decoder) int() int {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > uint64(maxInt>>1) {
		d.err = errors.New("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return int(v)
}

// uint64 reads a uvarint of any value (int refuses those above maxInt/2).
func (d *decoder) uint64() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = errors.New("short buffer")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}
