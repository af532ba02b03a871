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
// watches for new files (SourceConfig.MonitorInterval set), which keeps an
// offset per queued file; watchSnapshotVersion1, with one for the first
// queued file only, is still restored.
const (
	watchSnapshotVersion1 = 4
	watchSnapshotVersion  = 5
)

// isWatchVersion reports whether v is the version of a watching source's
// snapshot.
func isWatchVersion(v byte) bool { return v == watchSnapshotVersion1 || v == watchSnapshotVersion }

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
	queue    []queued
	nextScan time.Time

	f *os.File
	lineReader
}

// queued is a file a watchSource found and has not read to the end.
type queued struct {
	snapshotFile       // its path, and fingerprint when found
	start        int64 // where reading it starts: 0, unless restored part read
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
	var found []queued
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
			found = append(found, queued{snapshotFile: snapshotFile{path: path, print: fp}})
		}
	}
	slices.SortFunc(found, func(a, b queued) int { return strings.Compare(a.path, b.path) })
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
		s.queue = s.queue[1:]
		if len(s.queue) == 0 {
			s.pos = 0
			return nil
		}
		s.pos = s.queue[0].start
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
//	version byte (5)
//	uvarint parallelism, subtask
//	uvarint number of files read to the end, then each path (uvarint
//	  length, bytes)
//	uvarint number of files in the queue, then each as appendFile encodes
//	  it, with its fingerprint when found, and the uvarint byte offset of
//	  its next unread line
//
// Version 4 had one offset, of the first file in the queue, after the
// subtask.
func (s *watchSource) Snapshot() ([]byte, error) {
	b := []byte{watchSnapshotVersion}
	for _, v := range []uint64{uint64(s.info.Parallelism), uint64(s.info.Subtask), uint64(len(s.seen) - len(s.queue))} {
		b = binary.AppendUvarint(b, v)
	}
	inQueue := make(map[string]bool, len(s.queue))
	for _, w := range s.queue {
		inQueue[w.path] = true
	}
	for path := range s.seen {
		if !inQueue[path] {
			b = binary.AppendUvarint(b, uint64(len(path)))
			b = append(b, path...)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(s.queue)))
	for i, w := range s.queue {
		b = appendFile(b, w.path, w.print)
		if i == 0 {
			w.start = s.pos
		}
		b = binary.AppendUvarint(b, uint64(w.start))
	}
	return b, nil
}

// watchSnapshot is a decoded snapshot of a watchSource.
type watchSnapshot struct {
	parallelism, subtask int
	done                 []string // files read to the end
	queue                []queued
}

func decodeWatchSnapshot(b []byte) (watchSnapshot, error) {
	var snap watchSnapshot
	if len(b) == 0 || !isWatchVersion(b[0]) {
		return snap, fmt.Errorf("%w: the snapshot was taken by a source not watching for new files "+
			"(SourceConfig.MonitorInterval unset); restore it with the same setting", ErrSnapshotMismatch)
	}
	d := decoder{b: b[1:]}
	snap.parallelism, snap.subtask = d.int(), d.int()
	var pos int64 // version 1: the offset in the first queued file
	if b[0] == watchSnapshotVersion1 {
		pos = int64(d.int())
	}
	n := d.int()
	for i := 0; i < n && d.err == nil; i++ {
		snap.done = append(snap.done, string(d.bytes(d.int())))
	}
	n = d.int()
	for i := 0; i < n && d.err == nil; i++ {
		w := queued{snapshotFile: d.file()}
		if b[0] == watchSnapshotVersion {
			w.start = int64(d.int())
		} else if i == 0 {
			w.start = pos
		}
		snap.queue = append(snap.queue, w)
	}
	corrupt := d.err != nil || len(d.b) != 0 || (len(snap.queue) == 0 && pos != 0)
	for _, w := range snap.queue {
		corrupt = corrupt || w.start > w.print.size
	}
	if corrupt {
		return snap, errors.New("file source: corrupt snapshot")
	}
	return snap, nil
}

func (s *watchSource) restore(b []byte) error {
	snap, err := decodeWatchSnapshot(b)
	if err != nil {
		return err
	}
	if snap.parallelism != s.info.Parallelism || snap.subtask != s.info.Subtask {
		return fmt.Errorf("%w: snapshot of subtask %d of %d restored into subtask %d of %d",
			ErrSnapshotMismatch, snap.subtask, snap.parallelism, s.info.Subtask, s.info.Parallelism)
	}
	for _, path := range snap.done {
		s.seen[path] = true
	}
	for _, w := range snap.queue {
		s.seen[w.path] = true
	}
	s.queue = snap.queue
	if len(s.queue) > 0 {
		s.pos = s.queue[0].start
	}
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
