package file

import (
	"encoding/binary"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/weirstream/weir/runtime"
)

// TestDescribeSourceState decodes the snapshots the sources write, every
// form, into the positions tools show.
func TestDescribeSourceState(t *testing.T) {
	paths := []string{"a", "b", "c", "d", "e"}
	prints := []fingerprint{{size: 10}, {size: 30}, {size: 50}} // of a, c and e: subtask 0 of 2
	line := func(cur int, pos int64, offsets []int64) *lineSource {
		s := &lineSource{files: &files{paths: paths}, info: runtime.TaskInfo{Subtask: 0, Parallelism: 2}, cur: cur, prints: prints, offsets: offsets}
		s.pos = pos
		return s
	}
	watch := &watchSource{info: runtime.TaskInfo{Subtask: 1, Parallelism: 3},
		seen:  map[string]bool{"old": true, "q1": true, "q2": true},
		queue: []queued{{snapshotFile: snapshotFile{path: "q1", print: fingerprint{size: 8}}}, {snapshotFile: snapshotFile{path: "q2", print: fingerprint{size: 9}}, start: 4}}}
	watch.pos = 3
	watchBytes, _ := watch.Snapshot()
	for _, tc := range []struct {
		name string
		b    []byte
		want SourceState
	}{
		{"sequential, in the second file", line(2, 7, nil).encode(snapshotVersion, nil), SourceState{Parallelism: 2, NumFiles: 5,
			Files: []FilePosition{{"a", 10, 10}, {"c", 7, 30}, {"e", 0, 50}}}},
		{"part read after a rescale", line(0, 0, nil).encode(mergeSnapshotVersion, []int64{3, 30, 5}), SourceState{Parallelism: 2, NumFiles: 5,
			Files: []FilePosition{{"a", 3, 10}, {"c", 30, 30}, {"e", 5, 50}}}},
		{"watching", watchBytes, SourceState{Subtask: 1, Parallelism: 3, Watching: true, Done: []string{"old"},
			Files: []FilePosition{{"q1", 3, 8}, {"q2", 4, 9}}}},
	} {
		got, ok := DescribeSourceState(tc.b)
		if !ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, ok, tc.want)
		}
	}
	if _, ok := DescribeSourceState([]byte{9, 1, 2}); ok {
		t.Error("an unknown version was described")
	}
}

// TestDescribeLegacySinkState decodes a sink state of version 1, written
// byte for byte as that sink did: subtask 1, one pending file.
func TestDescribeLegacySinkState(t *testing.T) {
	b := []byte("\x01\x01\x01\x05\xc8\x01\x09pending-5\x0apart-001-5")
	want := LegacySinkState{Subtask: 1, Pending: []StagedFile{{Checkpoint: 5, Size: 200, Staged: "pending-5", Final: "part-001-5"}}}
	if got, ok := DescribeLegacySinkState(b); !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, %v; want %+v", got, ok, want)
	}
	for _, bad := range [][]byte{nil, append(slices.Clone(b), 0), b[:len(b)-1], append([]byte{2}, b[1:]...)} {
		if st, ok := DescribeLegacySinkState(bad); ok {
			t.Errorf("%q described as %+v; want not a file sink state", bad, st)
		}
	}
}

// TestDescribeSinkWriterState decodes a rolling sink's writer state,
// written as prepareRolling does: the in-progress file's size, start and
// random part.
func TestDescribeSinkWriterState(t *testing.T) {
	started := time.Date(2026, 12, 4, 23, 50, 0, 0, time.UTC)
	b := binary.AppendUvarint(nil, 200)
	b = binary.AppendVarint(b, started.UnixMilli())
	b = append(b, "ABC123"...)
	want := InProgressFile{Staged: "inprogress-ABC123", Bytes: 200, Started: started}
	if got, ok := DescribeSinkWriterState(b); !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, %v; want %+v", got, ok, want)
	}
	for _, bad := range [][]byte{nil, b[:1], b[:len(b)-6], append(slices.Clone(b), "/x"...)} {
		if f, ok := DescribeSinkWriterState(bad); ok {
			t.Errorf("%q described as %+v; want not a rolling sink's writer state", bad, f)
		}
	}
}
