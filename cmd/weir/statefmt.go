package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/weirstream/weir/connectors/file"
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
// The file source's positions are decoded by connectors/file
// (DescribeSourceState), every snapshot version of it.
//
// NB: two binary formats are still copied here: the Kafka source's
// (connectors/kafka source_state.go, versions 1 and 2) and the file sink's
// state from before NewTwoPhaseSink (sink.go, state version 1). The
// packages that own them should describe them next to their encoders, as
// connectors/file does for its source; until then a change of a format must
// be mirrored here (TestDecodeState pins the layouts).

// kafkaOffset is a partition's position in a Kafka source snapshot.
type kafkaOffset struct {
	Topic     string `json:"topic"`
	Partition int64  `json:"partition"`
	Next      int64  `json:"next_offset"`
	End       *int64 `json:"end_offset,omitempty"` // of a source that stops at the end
}

type kafkaSourceState struct {
	Format  string        `json:"format"` // "kafka source"
	Version int           `json:"version"`
	Offsets []kafkaOffset `json:"offsets"`
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
	// WriterStateBytes is the size of the sink's own state beside them.
	WriterStateBytes int `json:"writer_state_bytes,omitempty"`
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

type fileSinkState struct {
	Format  string            `json:"format"` // "file sink"
	Pending []fileSinkPending `json:"pending"`
}

// fileSinkPending is a file the sink staged and will publish (rename) when
// its checkpoint commits.
type fileSinkPending struct {
	Checkpoint uint64 `json:"checkpoint"`
	Size       uint64 `json:"size"`
	Staged     string `json:"staged"`
	Final      string `json:"final"`
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
		return "sink pending commits: " + listText(parts)
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

// reader reads uvarints and varints strictly; after a failure, ok is false.
type reader struct {
	b  []byte
	ok bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.ok = false
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.ok = false
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if !r.ok || n > uint64(len(r.b)) {
		r.ok = false
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) done() bool { return r.ok && len(r.b) == 0 }

func decodeKafkaSource(b []byte) (*kafkaSourceState, bool) {
	version := int(b[0])
	r := &reader{b: b[1:], ok: true}
	bounded := false
	switch version {
	case 1:
	case 2:
		if len(r.b) == 0 || r.b[0] > 1 {
			return nil, false
		}
		bounded, r.b = r.b[0] == 1, r.b[1:]
	default:
		return nil, false
	}
	st := &kafkaSourceState{Format: "kafka source", Version: version, Offsets: []kafkaOffset{}}
	n := r.uvarint()
	for i := uint64(0); r.ok && i < n; i++ {
		o := kafkaOffset{Topic: r.str(), Partition: r.varint(), Next: r.varint()}
		if bounded {
			end := r.varint()
			o.End = &end
		}
		st.Offsets = append(st.Offsets, o)
	}
	if version == 2 { // the topics of the version-1 assignment: not shown
		for i, n := uint64(0), r.uvarint(); r.ok && i < n; i++ {
			r.str()
			r.varint()
		}
	}
	return st, r.done()
}

func decodeFileSource(b []byte, subtask, parallelism int) (*fileSourceState, bool) {
	st, ok := file.DescribeSourceState(b)
	if !ok || st.Subtask != subtask || st.Parallelism != parallelism {
		return nil, false
	}
	return &fileSourceState{Format: "file source", SourceState: st}, true
}

func decodeFileSink(b []byte, subtask int) (*fileSinkState, bool) {
	r := &reader{b: b[1:], ok: true}
	if b[0] != 1 || r.uvarint() != uint64(subtask) {
		return nil, false
	}
	st := &fileSinkState{Format: "file sink", Pending: []fileSinkPending{}}
	for i, n := uint64(0), r.uvarint(); r.ok && i < n; i++ {
		st.Pending = append(st.Pending, fileSinkPending{Checkpoint: r.uvarint(), Size: r.uvarint(), Staged: r.str(), Final: r.str()})
	}
	return st, r.done()
}

// decodeTwoPhaseSink decodes the state of subtask of a sink built by
// runtime.NewTwoPhaseSink; nil if it is not one.
func decodeTwoPhaseSink(b []byte, subtask int) *twoPhaseSinkState {
	st, err := twophase.Decode(b)
	if err != nil || st.Subtask != uint64(subtask) {
		return nil
	}
	out := &twoPhaseSinkState{Format: "two-phase sink", Checkpoint: st.Checkpoint, Pending: []pendingCommit{}, WriterStateBytes: len(st.WriterState)}
	for _, p := range st.Pending {
		c := pendingCommit{Checkpoint: p.Checkpoint, Commit: p.Description}
		if c.Commit == nil {
			c.Encoded = hex.EncodeToString(p.Value)
		}
		out.Pending = append(out.Pending, c)
	}
	return out
}
