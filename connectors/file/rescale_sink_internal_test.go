package file

import (
	"slices"
	"testing"

	"github.com/weirstream/weir/runtime"
)

// A takeover after a change of parallelism seals the in-progress file of
// the restored checkpoint, truncated to what the checkpoint covers, and the
// runtime commits it. A crash after that commit restores the same state
// again: the second takeover finds the file committed, and neither loses
// nor repeats it.
func TestSealIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	cfg := LinesTo(dir)
	cfg.MaxFileSize = 1 << 20
	info := runtime.TaskInfo{Subtask: 0, Parallelism: 2}
	s, _ := newSinkInstance(cfg)
	if err := s.Open(t.Context(), info, nil); err != nil {
		t.Fatal(err)
	}
	for _, rec := range []string{"a", "b"} {
		if err := s.Write(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
	}
	state, err := s.PreCommit(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(t.Context(), "after the checkpoint"); err != nil {
		t.Fatal(err)
	}
	s.w.w.Flush()
	crash(s)
	want := []string{"part-000-0000000001-rescaled=a,b"}
	for takeover := range 2 {
		old, _ := newSinkInstance(cfg)
		if err := old.Open(t.Context(), info, state); err != nil {
			t.Fatalf("takeover %d: open: %v", takeover, err)
		}
		sealed, err := old.w.Seal(t.Context())
		if err != nil {
			t.Fatalf("takeover %d: seal: %v", takeover, err)
		}
		if takeover == 1 && len(sealed) > 0 {
			t.Fatalf("second takeover sealed %v again", sealed)
		}
		var cs []runtime.Committable[pendingFile]
		for _, p := range sealed {
			cs = append(cs, runtime.Committable[pendingFile]{Checkpoint: 1, Value: p})
		}
		if err := old.w.Commit(t.Context(), 1, cs); err != nil {
			t.Fatalf("takeover %d: commit: %v", takeover, err)
		}
		crash(old)
		if got := visible(t, dir); !slices.Equal(got, want) {
			t.Fatalf("takeover %d: visible %q, want %q", takeover, got, want)
		}
	}
}
