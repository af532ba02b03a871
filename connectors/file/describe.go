package file

import "time"

// SourceState is a file source subtask's checkpointed position as tools show
// it (weir checkpoints inspect): every snapshot version decodes to it, so
// that the tools need not know the layout.
type SourceState struct {
	Subtask     int `json:"subtask"`
	Parallelism int `json:"parallelism"`
	// Watching is set for a source watching a directory
	// (SourceConfig.MonitorInterval).
	Watching bool `json:"watching"`
	// NumFiles is the number of files of the whole job (a file list; 0
	// when watching).
	NumFiles int `json:"num_files,omitempty"`
	// Files are the subtask's files with the byte offset of the next line
	// to read in each; a file of Offset Size is read to the end. A watching
	// source lists its queued files.
	Files []FilePosition `json:"files"`
	// Done are the files a watching source has read to the end.
	Done []string `json:"done,omitempty"`
}

// FilePosition is where a source stands in one file.
type FilePosition struct {
	Path   string `json:"path"`
	Offset int64  `json:"offset"`
	// Size is the file's size when the job first saw it, -1 if the
	// snapshot (version 1) did not record it.
	Size int64 `json:"size"`
}

// DescribeSourceState decodes the state a file source's subtask left in a
// checkpoint; ok is false if b is not one.
func DescribeSourceState(b []byte) (st SourceState, ok bool) {
	if len(b) > 0 && isWatchVersion(b[0]) {
		snap, err := decodeWatchSnapshot(b)
		if err != nil {
			return st, false
		}
		st = SourceState{Subtask: snap.subtask, Parallelism: snap.parallelism, Watching: true, Done: snap.done, Files: []FilePosition{}}
		for _, q := range snap.queue {
			st.Files = append(st.Files, FilePosition{Path: q.path, Offset: q.start, Size: q.print.size})
		}
		return st, true
	}
	snap, err := decodeSnapshot(b)
	if err != nil {
		return st, false
	}
	st = SourceState{Subtask: snap.subtask, Parallelism: snap.parallelism, NumFiles: snap.numFiles, Files: []FilePosition{}}
	if snap.files == nil { // version 1: the current file only
		if snap.cur < snap.numFiles {
			st.Files = append(st.Files, FilePosition{Path: snap.path, Offset: snap.pos, Size: -1})
		}
		return st, true
	}
	for k, f := range snap.files {
		pos := FilePosition{Path: f.path, Size: f.print.size}
		switch i := snap.subtask + k*snap.parallelism; {
		case snap.offsets != nil:
			pos.Offset = snap.offsets[k]
		case i < snap.cur:
			pos.Offset = f.print.size
		case i == snap.cur:
			pos.Offset = snap.pos
		}
		st.Files = append(st.Files, pos)
	}
	return st, true
}

// LegacySinkState is the state a file sink's subtask left in a checkpoint
// taken before the sink was built on runtime.NewTwoPhaseSink (state version
// 1), as tools show it. Later states are runtime.NewTwoPhaseSink's, whose
// pending files describe themselves.
type LegacySinkState struct {
	Subtask int          `json:"subtask"`
	Pending []StagedFile `json:"pending"`
}

// StagedFile is a file the sink staged and publishes (renames) when its
// checkpoint completes.
type StagedFile struct {
	Checkpoint uint64 `json:"checkpoint"`
	Size       int64  `json:"size"`
	// Staged and Final are its base names in the staging directory and in
	// the output directory.
	Staged string `json:"staged"`
	Final  string `json:"final"`
}

// DescribeLegacySinkState decodes a file sink state of version 1; ok is
// false if b is not one.
func DescribeLegacySinkState(b []byte) (st LegacySinkState, ok bool) {
	subtask, files, err := decodeState(b)
	if err != nil {
		return st, false
	}
	st = LegacySinkState{Subtask: subtask, Pending: make([]StagedFile, 0, len(files))}
	for _, p := range files {
		st.Pending = append(st.Pending, StagedFile{Checkpoint: p.checkpoint, Size: p.size, Staged: p.pending, Final: p.final})
	}
	return st, true
}

// InProgressFile is the part file a rolling file sink's subtask was writing
// at a checkpoint (SinkConfig.MaxFileSize, MaxFileAge), as tools show it:
// the writer state the sink keeps beside its pending files. A restore
// truncates the file to Bytes and appends to it again.
type InProgressFile struct {
	// Staged is its base name in the staging directory (it may have been
	// rolled since, to sealed-<the same random part>).
	Staged  string    `json:"staged"`
	Bytes   int64     `json:"bytes"`
	Started time.Time `json:"started"`
}

// DescribeSinkWriterState decodes the writer state of a rolling file sink
// (runtime.Recovery's WriterState); ok is false if b is not one.
func DescribeSinkWriterState(b []byte) (f InProgressFile, ok bool) {
	size, started, id, err := decodeRollWriterState(b)
	if err != nil {
		return f, false
	}
	return InProgressFile{Staged: "inprogress-" + id, Bytes: int64(size), Started: time.UnixMilli(started).UTC()}, true
}
