package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/weirstream/weir/connectors/file"
	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/internal/twophase"
)

// The checkpoint stores an operator's state as opaque bytes, and the
// manifest does not say which connector wrote them. decodeState recognises
// the formats it knows by decoding them strictly (every byte accounted
// for, and for the file source the subtask and parallelism the bytes name
// matching the manifest's), so an unknown format is shown as bytes rather
// than misread.
//
// The state of a sink built by runtime.NewTwoPhaseSink (the file and Kafka
// sinks) is decoded by package internal/twophase, the owner of its format,
// and each pending commit is shown as the sink described it
// (runtime.CommittableDescriber): nothing of it is copied here.
//
// The Kafka and file sources' positions and the file sink's state from
// before NewTwoPhaseSink are decoded by their packages (DescribeSourceState,
// DescribeLegacySinkState), every version of them: no layout is copied here.

// kafkaSourceState is a Kafka source's position, as connectors/kafka
// describes it.
type kafkaSourceState struct {
	Format string `json:"format"` // "kafka source"
	kafka.SourceState
}

// fileSourceState is a file source's position, as connectors/file
// describes it.
type fileSourceState struct {
	Format string `json:"format"` // "file source"
	file.SourceState
}

// twoPhaseSinkState is the state of a sink built by runtime.NewTwoPhaseSink.
type twoPhaseSinkState struct {
	Format string `json:"format"` // "two-phase sink"
	// Checkpoint is the checkpoint whose pre-commit wrote the state.
	Checkpoint uint64          `json:"checkpoint"`
	Pending    []pendingCommit `json:"pending"`
	// InProgress is a rolling file sink's in-progress part file, its
	// writer state; WriterStateBytes the size of a writer state of another
	// format.
	InProgress       *file.InProgressFile `json:"in_progress,omitempty"`
	WriterStateBytes int                  `json:"writer_state_bytes,omitempty"`
}

// pendingCommit is a committable (a transaction, a staged file) that a
// checkpoint promised and that is committed once it completes.
type pendingCommit struct {
	Checkpoint uint64 `json:"checkpoint"` // that prepared it
	// Commit is the sink's description of it (JSON); Encoded, in hex, its
	// encoding when the sink gives none.
	Commit  json.RawMessage `json:"commit,omitempty"`
	Encoded string          `json:"encoded,omitempty"`
}

// fileSinkState is the state of a file sink from before NewTwoPhaseSink,
// as connectors/file describes it.
type fileSinkState struct {
	Format string `json:"format"` // "file sink"
	file.LegacySinkState
}

// decodeState returns the decoded operator state of subtask of an operator
// with parallelism subtasks: JSON as is, or a Kafka or file source position;
// nil if the format is not known.
func decodeState(b []byte, subtask, parallelism int) any {
	if len(b) == 0 {
		return nil
	}
	if st := decodeTwoPhaseSink(b, subtask); st != nil {
		return st
	}
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	if st, ok := decodeFileSource(b, subtask, parallelism); ok {
		return st
	}
	if st, ok := decodeFileSink(b, subtask); ok {
		return st
	}
	if st, ok := decodeKafkaSource(b); ok {
		return st
	}
	return nil
}

// stateText is one line describing an operator state for the text output.
func stateText(b []byte, subtask, parallelism int) string {
	switch st := decodeState(b, subtask, parallelism).(type) {
	case json.RawMessage:
		return "state " + string(st)
	case *kafkaSourceState:
		var parts []string
		for _, o := range st.Offsets {
			p := fmt.Sprintf("%s/%d@%d", o.Topic, o.Partition, o.Next)
			if o.End != nil {
				p += fmt.Sprintf(" (end %d)", *o.End)
			}
			parts = append(parts, p)
		}
		return "kafka source offsets (next to read): " + strings.Join(parts, ", ")
	case *fileSourceState:
		var parts []string
		for _, f := range st.Files {
			switch {
			case f.Size >= 0 && f.Offset >= f.Size:
				parts = append(parts, f.Path+" (read)")
			default:
				parts = append(parts, fmt.Sprintf("%s at byte %d", f.Path, f.Offset))
			}
		}
		if st.Watching {
			return fmt.Sprintf("file source watching: %d files read, queued: %s", len(st.Done), listText(parts))
		}
		return fmt.Sprintf("file source (%d files in the job): %s", st.NumFiles, listText(parts))
	case *twoPhaseSinkState:
		var parts []string
		for _, p := range st.Pending {
			what := "encoded " + p.Encoded
			if p.Commit != nil {
				what = fieldsText(p.Commit)
			}
			parts = append(parts, fmt.Sprintf("checkpoint %d: %s", p.Checkpoint, what))
		}
		text := "sink pending commits: " + listText(parts)
		switch {
		case st.InProgress != nil:
			f := st.InProgress
			text += fmt.Sprintf("; in progress: %s (%d bytes, started %s)", f.Staged, f.Bytes, f.Started.Format(time.RFC3339))
		case st.WriterStateBytes > 0:
			text += fmt.Sprintf("; writer state of %d bytes", st.WriterStateBytes)
		}
		return text
	case *fileSinkState:
		var parts []string
		for _, p := range st.Pending {
			parts = append(parts, fmt.Sprintf("%s -> %s (%d bytes, checkpoint %d)", p.Staged, p.Final, p.Size, p.Checkpoint))
		}
		return "file sink pending files: " + listText(parts)
	}
	shown := b[:min(len(b), 48)]
	more := ""
	if len(shown) < len(b) {
		more = "…"
	}
	return fmt.Sprintf("state (unknown format) %s%s", hex.EncodeToString(shown), more)
}

// fieldsText shows a JSON object as name=value pairs, in its order (values
// as JSON), and anything else as it is.
func fieldsText(raw json.RawMessage) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return string(raw)
	}
	var parts []string
	for dec.More() {
		name, err := dec.Token()
		var v json.RawMessage
		if err == nil {
			err = dec.Decode(&v)
		}
		if err != nil {
			return string(raw)
		}
		parts = append(parts, fmt.Sprintf("%v=%s", name, v))
	}
	return strings.Join(parts, " ")
}

func listText(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}

func decodeKafkaSource(b []byte) (*kafkaSourceState, bool) {
	st, ok := kafka.DescribeSourceState(b)
	if !ok {
		return nil, false
	}
	return &kafkaSourceState{Format: "kafka source", SourceState: st}, true
}

func decodeFileSource(b []byte, subtask, parallelism int) (*fileSourceState, bool) {
	st, ok := file.DescribeSourceState(b)
	if !ok || st.Subtask != subtask || st.Parallelism != parallelism {
		return nil, false
	}
	return &fileSourceState{Format: "file source", SourceState: st}, true
}

func decodeFileSink(b []byte, subtask int) (*fileSinkState, bool) {
	st, ok := file.DescribeLegacySinkState(b)
	if !ok || st.Subtask != subtask {
		return nil, false
	}
	return &fileSinkState{Format: "file sink", LegacySinkState: st}, true
}

// decodeTwoPhaseSink decodes the state of subtask of a sink built by
// runtime.NewTwoPhaseSink; nil if it is not one.
func decodeTwoPhaseSink(b []byte, subtask int) *twoPhaseSinkState {
	st, err := twophase.Decode(b)
	if err != nil || st.Subtask != uint64(subtask) {
		return nil
	}
	out := &twoPhaseSinkState{Format: "two-phase sink", Checkpoint: st.Checkpoint, Pending: []pendingCommit{}}
	if f, ok := file.DescribeSinkWriterState(st.WriterState); ok {
		out.InProgress = &f
	} else {
		out.WriterStateBytes = len(st.WriterState)
	}
	for _, p := range st.Pending {
		c := pendingCommit{Checkpoint: p.Checkpoint, Commit: p.Description}
		if c.Commit == nil {
			c.Encoded = hex.EncodeToString(p.Value)
		}
		out.Pending = append(out.Pending, c)
	}
	return out
}
