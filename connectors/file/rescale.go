package file

import (
	"fmt"

	"github.com/weirstream/weir/runtime"
)

// Redistribute implements runtime.Rescalable for a source of a list of
// files (read in sequence or merged by Timestamp). The old subtasks'
// states together hold, for every file, its fingerprint and the byte
// offset of its next unread line; the new subtask takes those of the files
// it owns at its parallelism (file i to subtask i % parallelism), so each
// file is read on from where it stood, by one subtask. A file of an old
// subtask without state starts at 0. Its share has an offset per file
// (snapshot version 3): after a change of parallelism several of its files
// may be part read.
func (s *lineSource) Redistribute(info runtime.TaskInfo, old [][]byte) ([]byte, error) {
	if err := checkInfo(info); err != nil {
		return nil, err
	}
	n := len(s.files.paths)
	pos := positions{prints: make([]fingerprint, n), offsets: make([]int64, n), known: make([]bool, n)}
	for o, b := range old {
		if b == nil {
			continue
		}
		if err := pos.add(s.files, o, len(old), b); err != nil {
			return nil, fmt.Errorf("file source: state of old subtask %d of %d: %w", o, len(old), err)
		}
	}
	share := &lineSource{files: s.files, info: info, cur: info.Subtask}
	var offsets []int64
	for i := info.Subtask; i < n; i += info.Parallelism {
		if !pos.known[i] {
			fp, err := fingerprintPath(s.files.paths[i])
			if err != nil {
				return nil, err
			}
			pos.prints[i] = fp
		}
		share.prints = append(share.prints, pos.prints[i])
		offsets = append(offsets, pos.offsets[i])
	}
	return share.encode(mergeSnapshotVersion, offsets), nil
}

// positions are the fingerprint and the offset of the next unread line of
// each file of a list, by index, as the old subtasks' states give them.
type positions struct {
	prints  []fingerprint
	offsets []int64
	known   []bool // some old state covers the file
}

// add adds the positions of the state b of old subtask o of p, after
// checking that it covers the files of files as they are listed now.
func (p *positions) add(files *files, o, par int, b []byte) error {
	snap, err := decodeSnapshot(b)
	if err != nil {
		return err
	}
	if snap.files == nil {
		return fmt.Errorf("%w: the state (version 1) has no fingerprint of the files before the current one, "+
			"so it cannot be redistributed; restore it with parallelism %d, and rescale from a later checkpoint", ErrSnapshotMismatch, par)
	}
	src := &lineSource{files: files, info: runtime.TaskInfo{Subtask: o, Parallelism: par}}
	if err := src.check(snap); err != nil {
		return err
	}
	offsets := snap.offsets
	if offsets == nil {
		src.cur, src.pos = snap.cur, snap.pos
		for _, f := range snap.files {
			src.prints = append(src.prints, f.print)
		}
		offsets = src.sequentialOffsets()
	}
	for k, f := range snap.files {
		i := o + k*par
		p.prints[i], p.offsets[i], p.known[i] = f.print, offsets[k], true
	}
	return nil
}

// Redistribute implements runtime.Rescalable for a source watching for new
// files. The new subtask takes, of the files the old subtasks found, those
// it owns at its parallelism (by the hash of their path): it keeps the
// paths read to the end, so as not to read them again, and queues the
// others with their fingerprints and the offsets of their next unread
// lines, so each is read on from where it stood, by one subtask. Files no
// old subtask found yet are found by the scans of their new owner.
func (s *watchSource) Redistribute(info runtime.TaskInfo, old [][]byte) ([]byte, error) {
	if err := checkInfo(info); err != nil {
		return nil, err
	}
	share := &watchSource{files: s.files, info: info, seen: map[string]bool{}}
	for o, b := range old {
		if b == nil {
			continue
		}
		snap, err := decodeWatchSnapshot(b)
		if err == nil && (snap.parallelism != len(old) || snap.subtask != o) {
			err = fmt.Errorf("%w: the state is of subtask %d of %d", ErrSnapshotMismatch, snap.subtask, snap.parallelism)
		}
		if err != nil {
			return nil, fmt.Errorf("file source: state of old subtask %d of %d: %w", o, len(old), err)
		}
		for _, path := range snap.done {
			if share.owns(path) {
				share.seen[path] = true
			}
		}
		for _, w := range snap.queue {
			if share.owns(w.path) {
				share.seen[w.path] = true
				share.queue = append(share.queue, w)
			}
		}
	}
	if len(share.queue) > 0 {
		share.pos = share.queue[0].start
	}
	return share.Snapshot()
}
