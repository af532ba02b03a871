package chkstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/weirstream/weir/internal/manifest"
)

// MarkCommitted records durably that the sink subtask (operator, subtask)
// finished committing checkpoint id, so that a restore from id need not (and
// does not try to) commit it again. If the checkpoint is gone (retention
// deleted it after a newer one completed), nothing can restore it and
// nothing is recorded.
//
// For a location in object storage the record is an empty object; if
// retention deleted the checkpoint meanwhile, the object is an orphan that
// the next Retain deletes.
func (s *Store) MarkCommitted(id uint64, operator string, subtask int) error {
	if s.remote != nil {
		_, err := s.remote.objects.PutBytes(s.remote.ctx, committedKey(manifest.DirName(id), operator, subtask), nil)
		if err != nil {
			return fmt.Errorf("checkpoint %d: record commit of %s/%d: %w", id, operator, subtask, err)
		}
		return nil
	}
	chk := s.Dir(id)
	dir := filepath.Join(chk, manifest.CommittedName)
	// NB: Mkdir, not MkdirAll, which would bring a deleted checkpoint back.
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("checkpoint %d: record commit of %s/%d: %w", id, operator, subtask, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%s.%d", operator, subtask)), os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		err = f.Close()
	}
	// The file is empty: its directory entry, and the one of committed/
	// (which another subtask may have just created), are what must last.
	if err == nil {
		err = syncDir(dir)
	}
	if err == nil {
		err = syncDir(chk)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return fmt.Errorf("checkpoint %d: record commit of %s/%d: %w", id, operator, subtask, err)
	}
	return nil
}

// Committed reports whether MarkCommitted recorded that the sink subtask
// (operator, subtask) finished committing checkpoint id.
func (s *Store) Committed(id uint64, operator string, subtask int) bool {
	if s.remote != nil {
		_, err := s.remote.objects.Stat(s.remote.ctx, committedKey(manifest.DirName(id), operator, subtask))
		return err == nil
	}
	_, err := os.Stat(filepath.Join(s.Dir(id), manifest.CommittedName, fmt.Sprintf("%s.%d", operator, subtask)))
	return err == nil
}

// committedKey is the key of the record of MarkCommitted in the checkpoint
// whose directory has the key dir.
func committedKey(dir, operator string, subtask int) string {
	return fmt.Sprintf("%s/%s/%s.%d", dir, manifest.CommittedName, operator, subtask)
}
