package file

import (
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"time"
)

// fingerprint identifies the content of an input file as the job first saw
// it, so that a restore (or the job itself, when it reaches the file) can
// tell that the file changed. Reading every file whole at the job's first
// start would double its input I/O; size, modification time and the bytes at
// both ends catch rewrites, appends, truncations and edits that leave the
// size alone, except an edit in the middle of a large file made with the
// modification time put back.
type fingerprint struct {
	size    int64
	modTime int64  // Unix nanoseconds
	ends    uint32 // CRC-32C of the first and the last fingerprintEnds bytes
}

// fingerprintEnds is how many bytes at each end of a file its fingerprint
// covers.
const fingerprintEnds = 64 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fingerprintOf fingerprints the open file f.
func fingerprintOf(f *os.File) (fingerprint, error) {
	st, err := f.Stat()
	if err != nil {
		return fingerprint{}, err
	}
	fp := fingerprint{size: st.Size(), modTime: st.ModTime().UnixNano()}
	head := min(fp.size, fingerprintEnds)
	tail := min(fp.size-head, fingerprintEnds)
	buf := make([]byte, head+tail)
	if _, err := f.ReadAt(buf[:head], 0); err != nil && err != io.EOF {
		return fingerprint{}, err
	}
	if _, err := f.ReadAt(buf[head:], fp.size-tail); err != nil && err != io.EOF {
		return fingerprint{}, err
	}
	fp.ends = crc32.Checksum(buf, castagnoli)
	return fp, nil
}

// fingerprintPath fingerprints the file at path.
func fingerprintPath(path string) (fingerprint, error) {
	f, err := os.Open(path)
	if err != nil {
		return fingerprint{}, fmt.Errorf("file source: %w", err)
	}
	defer f.Close()
	fp, err := fingerprintOf(f)
	if err != nil {
		return fingerprint{}, fmt.Errorf("file source: fingerprint %s: %w", path, err)
	}
	return fp, nil
}

// changed describes how now differs from fp, or returns "" if it does not.
func (fp fingerprint) changed(now fingerprint) string {
	switch {
	case now.size != fp.size:
		return fmt.Sprintf("it had %d bytes, now %d", fp.size, now.size)
	case now.ends != fp.ends:
		return "its content changed (same size)"
	case now.modTime != fp.modTime:
		return fmt.Sprintf("it was modified at %s (it was last modified at %s before)",
			time.Unix(0, now.modTime).UTC().Format(time.RFC3339Nano), time.Unix(0, fp.modTime).UTC().Format(time.RFC3339Nano))
	}
	return ""
}
