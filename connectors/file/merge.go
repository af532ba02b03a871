package file

import (
	"container/heap"
	"context"
	"fmt"
	"os"

	"github.com/weirstream/weir/runtime"
)

// mergeSource reads the files of one subtask together, always emitting the
// earliest pending line by SourceConfig.Timestamp: a k-way merge of the
// files by the time of their next line (ties go to the file first in the
// list, so a replay emits the same order).
//
// NB: why this keeps every line on time. The runtime's watermark of a
// source subtask trails the largest timestamp it emitted by the
// strategy's MaxOutOfOrderness (d). A line r of file F is emitted after a
// line m of any file G only if m was the earliest pending line when it
// went out, so F's pending line then, r or a line before r in F, was no
// earlier than m; if it was a line before r, F's own bound gives
// ts(r) > ts(m) - d - 1. So the merged output is within d wherever each
// file is, and a line is late only if it is late within its own file.
// Read one after the other, the files would not be: the second file's
// early lines come after the first file's late ones.
type mergeSource struct {
	lineSource // info, files and fingerprints; cur and pos are unused
	timestamp  func(string) int64
	heads      headHeap
	// offsets[i] is the byte offset of the next line not emitted of the
	// subtask's file i: what Snapshot keeps.
	offsets []int64
}

// head is an open file of a mergeSource with its next line read ahead.
type head struct {
	i    int // index among the subtask's files
	path string
	f    *os.File
	lineReader
	line string // the next line, read but not emitted
	ts   int64  // its timestamp
}

func (m *mergeSource) Open(ctx context.Context, info runtime.TaskInfo, restored []byte) error {
	s := &m.lineSource
	if err := checkInfo(info); err != nil {
		return err
	}
	s.info = info
	s.cur, s.pos = info.Subtask, 0
	paths := s.assigned()
	if restored == nil {
		prints, err := s.fingerprintNow()
		if err != nil {
			return err
		}
		s.prints = prints
		m.offsets = make([]int64, len(paths))
	} else {
		if err := s.restore(restored); err != nil {
			return err
		}
		m.offsets = s.offsets
		if m.offsets == nil { // a snapshot of a source reading one file after the other
			m.offsets = s.sequentialOffsets()
		}
		s.cur, s.pos, s.offsets = info.Subtask, 0, nil
	}
	for i, path := range paths {
		if off, size := m.offsets[i], s.prints[i].size; off > size {
			return fmt.Errorf("%w: offset %d is beyond the end of %s (%d bytes)", ErrSnapshotMismatch, off, path, size)
		} else if off == size {
			continue // read to the end
		}
		if err := m.openHead(i, path); err != nil {
			return err
		}
	}
	return nil
}

// sequentialOffsets returns the per-file offsets of the position (cur, pos)
// of a source that reads its files one after the other: the files before
// cur are read to the end, those after it start at their offset.
func (s *lineSource) sequentialOffsets() []int64 {
	offsets := make([]int64, len(s.prints))
	for i := range offsets {
		switch idx := s.info.Subtask + i*s.info.Parallelism; {
		case idx < s.cur:
			offsets[i] = s.prints[i].size
		case idx == s.cur:
			offsets[i] = s.pos
		default:
			offsets[i] = s.start(idx)
		}
	}
	return offsets
}

// openHead opens the subtask's file i at its offset and reads its next line.
func (m *mergeSource) openHead(i int, path string) error {
	f, err := openAt(path, m.prints[i], m.offsets[i])
	if err != nil {
		return err
	}
	h := &head{i: i, path: path, f: f}
	h.pos = m.offsets[i]
	h.reset(f, m.files.cfg.BufferSize)
	ok, err := m.advance(h)
	if err != nil {
		return err
	}
	if ok {
		heap.Push(&m.heads, h)
	}
	return nil
}

// advance reads h's next line; at the end of the file it closes it and
// returns false.
func (m *mergeSource) advance(h *head) (bool, error) {
	line, ok, err := h.next()
	if err != nil {
		return false, fmt.Errorf("file source: read %s at offset %d: %w", h.path, h.pos, err)
	}
	if !ok {
		err := h.f.Close()
		h.f = nil
		if err != nil {
			return false, fmt.Errorf("file source: close %s: %w", h.path, err)
		}
		return false, nil
	}
	h.line = string(line)
	h.ts = m.timestamp(h.line)
	return true, nil
}

func (m *mergeSource) Read(ctx context.Context, out runtime.Collector[string]) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(m.heads) == 0 {
		return runtime.ErrEndOfInput
	}
	timed, isTimed := out.(runtime.TimestampCollector[string])
	for range m.files.cfg.MaxLinesPerRead {
		h := m.heads[0]
		if isTimed {
			timed.CollectAt(h.line, h.ts) // the strategy needs no Timestamp function of its own
		} else {
			out.Collect(h.line)
		}
		m.offsets[h.i] = h.pos
		ok, err := m.advance(h)
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(&m.heads, 0)
			continue
		}
		heap.Pop(&m.heads)
		if len(m.heads) == 0 {
			return nil // ErrEndOfInput on the next call, with nothing emitted
		}
	}
	return nil
}

// Snapshot encodes the fingerprints of the subtask's files and the offset of
// the next line not emitted of each (version 3, see lineSource.encode).
func (m *mergeSource) Snapshot() ([]byte, error) {
	return m.encode(mergeSnapshotVersion, m.offsets), nil
}

func (m *mergeSource) Close() error {
	var first error
	for _, h := range m.heads {
		if err := h.f.Close(); err != nil && first == nil {
			first = err
		}
	}
	m.heads = nil
	return first
}

// headHeap orders open files by the time of their next line, then by their
// place in the list.
type headHeap []*head

func (h headHeap) Len() int { return len(h) }
func (h headHeap) Less(i, j int) bool {
	if h[i].ts != h[j].ts {
		return h[i].ts < h[j].ts
	}
	return h[i].i < h[j].i
}
func (h headHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *headHeap) Push(x any)   { *h = append(*h, x.(*head)) }
func (h *headHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}
