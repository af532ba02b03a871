package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/clustertest"
	"github.com/weirstream/weir/internal/manifest"
	"github.com/weirstream/weir/internal/tasklineage"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// halvedWords emits the words of records 0..n-1 (its subtask's share),
// holding back the second half until resume is closed; paused is called
// once when it reaches the second half.
type halvedWords struct {
	n       uint64
	resume  <-chan struct{}
	paused  func()
	pos     uint64 // next record
	step    uint64
	waiting bool
}

func (s *halvedWords) Open(_ context.Context, info runtime.TaskInfo, restored []byte) error {
	s.pos, s.step = uint64(info.Subtask), uint64(info.Parallelism)
	if restored != nil {
		_, err := fmt.Sscan(string(restored), &s.pos)
		return err
	}
	return nil
}

func (s *halvedWords) Read(ctx context.Context, out runtime.Collector[count]) error {
	if s.pos >= s.n {
		return runtime.ErrEndOfInput
	}
	if s.pos >= s.n/2 {
		select {
		case <-s.resume:
		default:
			if !s.waiting {
				s.waiting = true
				s.paused()
			}
			select {
			case <-s.resume:
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond): // Read returns now and then, to let barriers pass
			}
			return nil
		}
	}
	for range 16 {
		if s.pos >= s.n {
			break
		}
		out.Collect(count{Word: fmt.Sprintf("w%d", s.pos*7919%37), N: 1})
		s.pos += s.step
	}
	return nil
}

func (s *halvedWords) Snapshot() ([]byte, error) { return []byte(fmt.Sprint(s.pos)), nil }
func (s *halvedWords) Close() error              { return nil }

// halvedCount is the word count of records words, whose second half waits
// for resume, into out; paused is called as each task reaches it.
func halvedCount(name string, records uint64, resume <-chan struct{}, paused func(), out *clustertest.Output[string]) *runtime.Pipeline {
	p := runtime.NewPipeline(name)
	words := runtime.From(p, "words", func() (runtime.Source[count], error) {
		return &halvedWords{n: records, resume: resume, paused: paused}, nil
	})
	counts := operators.Reduce(operators.KeyBy(words, func(c count) string { return c.Word }), "count",
		func(acc, c count) count { return count{Word: acc.Word, N: acc.N + c.N} }, state.JSON[count]())
	runtime.To(operators.Map(counts, func(c count) string { return fmt.Sprintf("%s=%d", c.Word, c.N) }), "out", out.Sink())
	return p
}

// wantCounts is what the word count of records words commits.
func wantCounts(records uint64) []string {
	n := map[string]int{}
	var out []string
	for seq := range records {
		w := fmt.Sprintf("w%d", seq*7919%37)
		n[w]++
		out = append(out, fmt.Sprintf("%s=%d", w, n[w]))
	}
	return sorted(out)
}

// savepointedGroup runs the first half of a group word count of tasks
// tasks in a checkpoint directory, stops every member (final checkpoints)
// and writes a group savepoint of it; it returns the savepoint, the
// cluster (the group's repartition topics) and the output so far.
func savepointedGroup(t *testing.T, name string, records uint64, tasks int) (*tasklineage.GroupSavepoint, *clustertest.Cluster, *clustertest.Output[string]) {
	t.Helper()
	out := &clustertest.Output[string]{}
	cl := clustertest.New(tasks)
	stop := make(chan struct{})
	var pausedTasks atomic.Int32
	p := halvedCount(name, records, make(chan struct{}), func() {
		if int(pausedTasks.Add(1)) == tasks {
			// Every task has read its first half; the counts cross the
			// exchange only as checkpoints commit, so stop once some
			// have come out, or the savepoint would hold no output yet.
			go func() {
				for len(out.Records()) == 0 {
					time.Sleep(10 * time.Millisecond) // polls a condition; no signal to wait on
				}
				close(stop)
			}()
		}
	}, out)
	cfg := groupConfig(cl)
	cfg.CheckpointDir, cfg.Stop = filepath.Join(t.TempDir(), "checkpoints"), stop
	if err := runtime.Run(t.Context(), p, cfg); err != nil {
		t.Fatalf("first run: %v", err)
	}
	lineage, err := tasklineage.Open(t.Context(), cfg.CheckpointDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := lineage.WriteSavepoint(t.Context(), filepath.Join(t.TempDir(), "savepoints"))
	if err != nil {
		t.Fatal(err)
	}
	if g.Tasks != tasks || g.Job != name || g.Group != cfg.Group {
		t.Fatalf("group savepoint of %d tasks of job %q in group %q, want %d of %q in %q", g.Tasks, g.Job, g.Group, tasks, name, cfg.Group)
	}
	return g, cl, out
}

// TestGroupSavepointResumesExactly stops a group job halfway, writes a
// group savepoint of its checkpoint location, and starts the group from it
// in a new checkpoint location: every task restores its savepoint, and the
// two runs together commit exactly what one run commits.
func TestGroupSavepointResumesExactly(t *testing.T) {
	const records, tasks = 2000, 3
	g, cl, out := savepointedGroup(t, "wordcount", records, tasks)
	if n := len(out.Records()); n == 0 || n >= records {
		t.Fatalf("the first run committed %d records, want some but not all %d", n, records)
	}

	resume := make(chan struct{})
	close(resume)
	p := halvedCount("wordcount", records, resume, func() {}, out)
	cfg := groupConfig(cl)
	cfg.CheckpointDir, cfg.FromSavepoint = filepath.Join(t.TempDir(), "new-checkpoints"), g.Path
	var started, restored, ended atomic.Int32
	cfg.Events.Started = func(info runtime.StartInfo) {
		started.Add(1)
		if info.RestoredFrom != 0 {
			restored.Add(1)
		}
	}
	// A member runs until stopped: stop it once every task has ended its
	// input (with a final checkpoint).
	stop := make(chan struct{})
	cfg.Stop = stop
	cfg.Events.CheckpointCompleted = func(info runtime.CheckpointInfo) {
		if info.Final && int(ended.Add(1)) == tasks {
			close(stop)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute) // a guard, not a synchronization
	defer cancel()
	if err := runtime.Run(ctx, p, cfg); err != nil {
		t.Fatalf("run from the group savepoint: %v", err)
	}
	if started.Load() != tasks || restored.Load() != tasks {
		t.Fatalf("%d tasks started, %d of them from a checkpoint; want each of the %d from its savepoint", started.Load(), restored.Load(), tasks)
	}
	compare(t, sorted(out.Records()), wantCounts(records), records)
}

// TestGroupSavepointRefused: a group savepoint is refused, naming what is
// wrong, when a task's savepoint is missing or of another job or group,
// when it is of another job, when the job has another task count, and when
// it is of another group (the job has exchanges).
func TestGroupSavepointRefused(t *testing.T) {
	const records, tasks = 400, 3
	g, _, _ := savepointedGroup(t, "wordcount", records, tasks)
	other, _, _ := savepointedGroup(t, "other", records, tasks)

	start := func(t *testing.T, path string, tasks int, group string) error {
		resume := make(chan struct{})
		close(resume)
		cfg := groupConfig(clustertest.New(tasks))
		if group != "" {
			cfg.Group = group
		}
		cfg.CheckpointDir, cfg.FromSavepoint = filepath.Join(t.TempDir(), "checkpoints"), path
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a guard: each case fails at start
		defer cancel()
		return runtime.Run(ctx, halvedCount("wordcount", records, resume, func() {}, &clustertest.Output[string]{}), cfg)
	}
	// copyGroup copies g's savepoint with task 1's replaced by change.
	copyGroup := func(t *testing.T, change func(task1 string)) string {
		dst := filepath.Join(t.TempDir(), "copy")
		if err := os.CopyFS(dst, os.DirFS(g.Path)); err != nil {
			t.Fatal(err)
		}
		change(filepath.Join(dst, "task-1"))
		return dst
	}
	for _, tc := range []struct {
		name  string
		path  func(t *testing.T) string
		tasks int
		want  string
		group string // "": groupConfig's
	}{
		{"task missing", func(t *testing.T) string {
			return copyGroup(t, func(task1 string) { os.RemoveAll(task1) })
		}, tasks, "the savepoint of task 1 (", ""},
		{"task of another job", func(t *testing.T) string {
			return copyGroup(t, func(task1 string) {
				os.RemoveAll(task1)
				if err := os.CopyFS(task1, os.DirFS(other.TaskPath(1))); err != nil {
					t.Fatal(err)
				}
			})
		}, tasks, `task 1 belongs to job "other", task 0 to "wordcount"`, ""},
		{"task of another group", func(t *testing.T) string {
			return copyGroup(t, func(task1 string) {
				path := filepath.Join(task1, manifest.Name)
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				m, err := manifest.Decode(data)
				if err != nil {
					t.Fatal(err)
				}
				m.Group = "wc-blue"
				if data, err = manifest.Encode(m); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
			})
		}, tasks, `task 1 was checkpointed by group "wc-blue", task 0 by "wc"`, ""},
		{"another job", func(*testing.T) string { return other.Path }, tasks, `it is of job "other", not "wordcount"`, ""},
		{"not a group savepoint", func(*testing.T) string { return g.TaskPath(0) }, tasks, "it has no GROUP", ""},
		{"task count", func(*testing.T) string { return g.Path }, 2, "holds 3 tasks, the job has 2: the partition count of the input topics must be the savepoint's", ""},
		{"another group", func(*testing.T) string { return g.Path }, tasks,
			`it was taken from group "wc", and this member is of group "wc-blue": the job's exchanges read the repartition topics of their group (wc-…-repartition)`, "wc-blue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := start(t, tc.path(t), tc.tasks, tc.group)
			if !errors.Is(err, runtime.ErrUnrecoverable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("start from it: %v, want ErrUnrecoverable naming %q", err, tc.want)
			}
		})
	}
}
