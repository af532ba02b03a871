package file

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Rolling (SinkConfig.MaxFileSize, MaxFileAge): a part file spans
// checkpoints. It keeps one name in the staging directory,
// inprogress-<random>, while it is written, and sealed-<random> once rolled.
// At each checkpoint the in-progress file is flushed and fsynced, and the
// checkpoint's writer state records its name, its size and when it was
// started; files rolled since the last checkpoint are the checkpoint's
// committables, committed (renamed to their final names) when it
// completes. A restore finds the in-progress file of the restored state by
// its random part (under either name: it may have been rolled after the
// checkpoint), truncates it to the recorded size, which drops exactly the
// records written after the checkpoint (the runtime replays them), and
// appends to it again; everything else staged is deleted.

// rollState is the rolling state of a sink.
type rollState struct {
	restored uint64    // the restored checkpoint (0 on a fresh start)
	started  time.Time // when the in-progress file was created
	synced   bool      // the staging directory holds the in-progress file durably
	sealed   []sealedFile
	scratch  []byte
}

// sealedFile is a rolled file, waiting for the next checkpoint.
type sealedFile struct {
	name string
	size int64
}

// rollFile flushes, fsyncs and closes the in-progress file, renames it to
// sealed-<random> and fsyncs the staging directory.
func (s *sink[T]) rollFile() error {
	name := "sealed-" + strings.TrimPrefix(filepath.Base(s.path), "inprogress-")
	size := s.size
	if err := s.sealEpoch(name); err != nil {
		return fmt.Errorf("file sink: roll %s: %w", name, err)
	}
	s.roll.sealed = append(s.roll.sealed, sealedFile{name: name, size: size})
	return nil
}

// prepareRolling is Prepare in rolling mode: it rolls the in-progress file
// if it is due, returns the files rolled since the last checkpoint as
// committables (named <prefix>-<subtask>-<checkpoint>, then -001, -002 … in
// the order they were rolled) and the in-progress file's position as the
// writer state.
func (s *sink[T]) prepareRolling(id uint64, endOfInput bool) ([]pendingFile, []byte, error) {
	if s.f != nil && (endOfInput || time.Since(s.roll.started) >= s.cfg.MaxFileAge) {
		if err := s.rollFile(); err != nil {
			return nil, nil, err
		}
	}
	var files []pendingFile
	for k, sf := range s.roll.sealed {
		final := fmt.Sprintf("%s-%03d-%010d", s.cfg.Prefix, s.info.Subtask, id)
		if k > 0 {
			final += fmt.Sprintf("-%03d", k)
		}
		files = append(files, pendingFile{checkpoint: id, pending: sf.name, final: final, size: sf.size})
	}
	s.roll.sealed = nil
	if s.f == nil {
		return files, nil, nil
	}
	if err := s.w.Flush(); err != nil {
		return nil, nil, fmt.Errorf("file sink: flush %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return nil, nil, fmt.Errorf("file sink: %w", err)
	}
	if !s.roll.synced {
		if err := syncDir(s.staging); err != nil {
			return nil, nil, err
		}
		s.roll.synced = true
	}
	ws := binary.AppendUvarint(nil, uint64(s.size))
	ws = binary.AppendVarint(ws, s.roll.started.UnixMilli())
	return files, append(ws, strings.TrimPrefix(filepath.Base(s.path), "inprogress-")...), nil
}

// decodeRollWriterState decodes the writer state of prepareRolling: the
// in-progress file's size, start (Unix milliseconds) and random part.
func decodeRollWriterState(ws []byte) (size uint64, started int64, id string, err error) {
	size, n := binary.Uvarint(ws)
	started, m := binary.Varint(ws[max(n, 0):])
	if n <= 0 || m <= 0 || size > 1<<62 {
		return 0, 0, "", errCorruptState
	}
	id = string(ws[n+m:])
	if id == "" || strings.ContainsAny(id, `/\.`) {
		return 0, 0, "", errCorruptState
	}
	return size, started, id, nil
}

// resume reopens the in-progress file that writer state ws of checkpoint
// restored describes (none if ws is empty), truncated to its checkpointed
// size, and returns its name in the staging directory. If an earlier
// takeover after a change of parallelism committed the file already (see
// Seal), there is nothing to resume.
func (s *sink[T]) resume(ws []byte, restored uint64) (string, error) {
	s.roll.restored = restored
	if len(ws) == 0 {
		return "", nil
	}
	size, started, id, err := decodeRollWriterState(ws)
	if err != nil {
		return "", err
	}
	name := "inprogress-" + id
	path := filepath.Join(s.staging, name)
	if err := os.Rename(filepath.Join(s.staging, "sealed-"+id), path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("file sink: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if st, err := os.Stat(filepath.Join(s.cfg.Dir, s.sealedName())); err == nil && st.Size() == int64(size) {
			return "", nil // committed by an earlier Seal
		}
		return "", fmt.Errorf("%w: the in-progress file %s of the restored checkpoint (%d bytes) is gone", ErrDataLoss, path, size)
	}
	if err != nil {
		return "", fmt.Errorf("file sink: %w", err)
	}
	err = s.truncate(f, path, int64(size))
	if err != nil {
		f.Close()
		return "", err
	}
	s.f, s.path, s.size = f, path, int64(size)
	s.roll.started, s.roll.synced = time.UnixMilli(started), false
	if s.w == nil {
		s.w = bufio.NewWriterSize(f, s.cfg.BufferSize)
	} else {
		s.w.Reset(f)
	}
	return name, nil
}

// truncate cuts f to size, the size its checkpoint recorded, and positions
// it there.
func (s *sink[T]) truncate(f *os.File, path string, size int64) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	if fi.Size() < size {
		return fmt.Errorf("%w: the in-progress file %s has %d bytes, the checkpoint recorded %d",
			ErrDataLoss, path, fi.Size(), size)
	}
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	if _, err := f.Seek(size, 0); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	return f.Sync()
}

// Seal implements runtime.TwoPhaseSealer: when a new subtask takes this
// one over after a change of parallelism, the in-progress file Recover
// resumed (truncated to what the restored checkpoint covers) is rolled and
// returned, to be committed at once as <prefix>-<subtask>-<checkpoint>-rescaled
// (after the checkpoint's other files in name order). A second takeover
// from the same checkpoint finds that file committed (see resume).
func (s *sink[T]) Seal(ctx context.Context) ([]pendingFile, error) {
	if s.f == nil || !s.cfg.rolling() {
		return nil, nil
	}
	size := s.size
	name := "sealed-" + strings.TrimPrefix(filepath.Base(s.path), "inprogress-")
	if err := s.sealEpoch(name); err != nil {
		return nil, fmt.Errorf("file sink: seal %s: %w", name, err)
	}
	return []pendingFile{{checkpoint: s.roll.restored, pending: name, final: s.sealedName(), size: size}}, nil
}

// sealedName is the final name of the in-progress file of the restored
// checkpoint that Seal commits.
func (s *sink[T]) sealedName() string {
	return fmt.Sprintf("%s-%03d-%010d-rescaled", s.cfg.Prefix, s.info.Subtask, s.roll.restored)
}
