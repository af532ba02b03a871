package file

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/weirstream/weir/runtime"
)

// watchSnapshotVersion is the first byte of the snapshot of a source that
// watches for new files (SourceConfig.MonitorInterval set).
const watchSnapshotVersion = 4

// maxIdleWait bounds how long a Read with nothing to read waits, so that
// the runtime can inject barriers (runtime.Source).
const maxIdleWait = 100 * time.Millisecond

// watchSource is the source of one subtask that watches Paths for new files
// and reads each of its files once, in the order they were found (sorted
// by path within one scan). A file belongs to subtask hash(path) %
// parallelism: the set of files grows while the job runs, so the index in
// a sorted list, which the bounded source uses, would move.
type watchSource struct {
	files *files
	info  runtime.TaskInfo

	// seen holds every file of the subtask found so far: read to the end,
	// or in queue.
	seen map[string]bool
	// queue holds the files found and not read to the end, each with its
	// fingerprint when found; queue[0] is being read, from pos.
	queue    []snapshotFile
	nextScan time.Time

	f *os.File
	lineReader
}

func (s *watchSource) Open(ctx context.Context, info runtime.TaskInfo, restored []byte) error {
	if err := checkInfo(info); err != nil {
		return err
	}
	s.info, s.seen = info, map[string]bool{}
	if restored != nil {
		return s.restore(restored)
	}
	return nil
}

// owns reports whether path belongs to the subtask.
func (s *watchSource) owns(path string) bool {
	h := fnv.New32a()
	h.Write([]byte(path))
	return int(h.Sum32()%uint32(s.info.Parallelism)) == s.info.Subtask
}

// scan adds the subtask's files that appeared since the last scan to the
// queue. Entries that are not regular files are skipped: they may be a
// directory the pattern happens to match, or a file being replaced.
func (s *watchSource) scan() error {
	var found []snapshotFile
	for _, p := range s.files.cfg.Paths {
		matches, err := match(p)
		if err != nil {
			return err
		}
		for _, path := range matches {
			if s.seen[path] || !s.owns(path) {
				continue
			}
			if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
				continue // gone again, or not a file
			}
			fp, err := fingerprintPath(path)
			if err != nil {
				return err
			}
			s.seen[path] = true
			found = append(found, snapshotFile{path: path, print: fp})
		}
	}
	slices.SortFunc(found, func(a, b snapshotFile) int { return strings.Compare(a.path, b.path) })
	s.queue = append(s.queue, found...)
	return nil
}

func (s *watchSource) Read(ctx context.Context, out runtime.Collector[string]) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(s.queue) == 0 {
		if now := time.Now(); !now.Before(s.nextScan) {
			s.nextScan = now.Add(s.files.cfg.MonitorInterval)
			if err := s.scan(); err != nil {
				return err
			}
		}
		if len(s.queue) == 0 {
			return s.wait(ctx)
		}
	}
	if s.f == nil {
		if err := s.openHead(); err != nil {
			return err
		}
	}
	for emitted := 0; emitted < s.files.cfg.MaxLinesPerRead; {
		line, ok, err := s.next()
		if err != nil {
			return fmt.Errorf("file source: read %s at offset %d: %w", s.queue[0].path, s.pos, err)
		}
		if ok {
			out.Collect(string(line))
			emitted++
			continue
		}
		err = s.f.Close()
		s.f = nil
		if err != nil {
			return fmt.Errorf("file source: close %s: %w", s.queue[0].path, err)
		}
		s.queue, s.pos = s.queue[1:], 0
		if len(s.queue) == 0 {
			return nil
		}
		if err := s.openHead(); err != nil {
			return err
		}
	}
	return nil
}

// wait waits until the next scan is due, at most maxIdleWait.
func (s *watchSource) wait(ctx context.Context) error {
	t := time.NewTimer(min(time.Until(s.nextScan), maxIdleWait))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// openHead opens queue[0] at pos. It reads the file only up to the size it
// had when it was found: a file still being written when found is not
// followed, and lines appended later are not read. A file that shrank was
// replaced or truncated, and reading on would silently skip data.
func (s *watchSource) openHead() error {
	w := s.queue[0]
	f, err := os.Open(w.path)
	if err != nil {
		return fmt.Errorf("file source: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("file source: %w", err)
	}
	if st.Size() < w.print.size {
		f.Close()
		return fmt.Errorf("%w: input file %s had %d bytes when the source found it, now %d; "+
			"files in a watched directory must not be truncated or replaced", ErrSnapshotMismatch, w.path, w.print.size, st.Size())
	}
	if _, err := f.Seek(s.pos, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("file source: %w", err)
	}
	s.f = f
	s.reset(io.LimitReader(f, w.print.size-s.pos), s.files.cfg.BufferSize)
	return nil
}

// Snapshot encodes the files found so far:
//
//	version byte (4)
//	uvarint parallelism, subtask, byte offset of the next unread line of
//	  the first file in the queue
//	uvarint number of files read to the end, then each path (uvarint
//	  length, bytes)
//	uvarint number of files in the queue, then each as appendFile encodes
//	  it, with its fingerprint when found
func (s *watchSource) Snapshot() ([]byte, error) {
	b := []byte{watchSnapshotVersion}
	for _, v := range []uint64{uint64(s.info.Parallelism), uint64(s.info.Subtask), uint64(s.pos),
		uint64(len(s.seen) - len(s.queue))} {
		b = binary.AppendUvarint(b, v)
	}
	queued := make(map[string]bool, len(s.queue))
	for _, w := range s.queue {
		queued[w.path] = true
	}
	for path := range s.seen {
		if !queued[path] {
			b = binary.AppendUvarint(b, uint64(len(path)))
			b = append(b, path...)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(s.queue)))
	for _, w := range s.queue {
		b = appendFile(b, w.path, w.print)
	}
	return b, nil
}

func (s *watchSource) restore(b []byte) error {
	if len(b) == 0 || b[0] != watchSnapshotVersion {
		return fmt.Errorf("%w: the snapshot was taken by a source not watching for new files "+
			"(SourceConfig.MonitorInterval unset); restore it with the same setting", ErrSnapshotMismatch)
	}
	d := decoder{b: b[1:]}
	par, sub, pos := d.int(), d.int(), int64(d.int())
	n := d.int()
	for i := 0; i < n && d.err == nil; i++ {
		s.seen[string(d.bytes(d.int()))] = true
	}
	n = d.int()
	for i := 0; i < n && d.err == nil; i++ {
		w := d.file()
		s.queue = append(s.queue, w)
		s.seen[w.path] = true
	}
	if d.err != nil || len(d.b) != 0 || (len(s.queue) == 0 && pos != 0) || (len(s.queue) > 0 && pos > s.queue[0].print.size) {
		return errors.New("file source: corrupt snapshot")
	}
	if par != s.info.Parallelism || sub != s.info.Subtask {
		return fmt.Errorf("%w: snapshot of subtask %d of %d restored into subtask %d of %d; files are assigned "+
			"to subtasks by a hash of their path, so the parallelism of a watching source cannot change",
			ErrSnapshotMismatch, sub, par, s.info.Subtask, s.info.Parallelism)
	}
	s.pos = pos
	return nil
}

func (s *watchSource) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
