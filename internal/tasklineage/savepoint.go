package tasklineage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/weirstream/weir/internal/chkstore"
	"github.com/weirstream/weir/internal/manifest"
	"github.com/weirstream/weir/internal/objstore"
)

// A group savepoint is the savepoint of a job spread over processes: the
// tasks checkpoint on their own, and each task's checkpoint is consistent
// with the repartition topics by itself (its read offsets and its pending
// transactions are in it), so the savepoint is the set of the tasks'
// newest checkpoints, each copied as a savepoint of its own:
//
//	group-savepoint-<time>/
//	    task-0/MANIFEST, task-0/…   a savepoint (package chkstore)
//	    task-1/…
//	    GROUP                       written last: job, task count, sources
//
// Taken once every member has stopped (final checkpoints), it is the
// group's state at the stop; a group started from it with the same --group
// resumes there, since the repartition topics of the group still hold what
// was in flight between tasks.
//
// Hence GROUP names the group (GroupSavepoint.Group, from the tasks'
// manifests), and package runtime refuses to start another group from it
// when the job has exchanges: the tasks' read offsets are in the first
// group's repartition topics, and what was in flight there would be lost.
// A job without exchanges has nothing outside its savepoint, so, as a Flink
// savepoint starts any job, its savepoint starts any group. (For the same
// reason the engine refuses, in a job with exchanges, to restore a
// checkpoint of another group: engine.TaskScope.Exchanges.)

// GroupName is the file written last into a group savepoint.
const GroupName = "GROUP"

// groupSavepointPrefix begins the name of a group savepoint's directory.
const groupSavepointPrefix = "group-savepoint-"

// ErrGroupSavepoint is wrapped when a group savepoint cannot be written, or
// is not one a group can start from.
var ErrGroupSavepoint = errors.New("tasklineage: group savepoint")

// GroupSavepoint describes a group savepoint (its GROUP file).
type GroupSavepoint struct {
	Path string `json:"-"` // its directory
	Job  string `json:"job"`
	// Group is the group whose tasks took the checkpoints copied; ""
	// for a savepoint written before groups were recorded.
	Group   string    `json:"group,omitempty"`
	Tasks   int       `json:"tasks"`
	Created time.Time `json:"created"`
	// Sources are the checkpoints copied, by task.
	Sources []Point `json:"sources"`
}

// TaskPath returns the path of the savepoint of task.
func (g *GroupSavepoint) TaskPath(task int) string {
	return chkstore.JoinLocation(g.Path, taskPrefix(task))
}

// WriteSavepoint copies the start point of every task (what its next owner
// would restore: after a stop of the group, its final checkpoint) into a
// new group savepoint under location (a directory or s3://) and returns it.
// Every task of the job must have a complete checkpoint.
func (l *Lineage) WriteSavepoint(ctx context.Context, location string) (*GroupSavepoint, error) {
	g := &GroupSavepoint{Created: time.Now().UTC()}
	name := groupSavepointPrefix + g.Created.Format("20060102T150405.000Z")
	g.Path = chkstore.JoinLocation(location, name)
	tmp, err := os.MkdirTemp("", "weir-savepoint-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for task := 0; task == 0 || task < g.Tasks; task++ {
		sp, err := l.taskStart(ctx, task, g)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w; nothing was written for the later tasks", ErrGroupSavepoint, g.Path, err)
		}
		if _, err := sp.WriteSavepoint(ctx, g.Path, taskPrefix(task), tmp); err != nil {
			return nil, fmt.Errorf("%w %s: task %d: %w", ErrGroupSavepoint, g.Path, task, err)
		}
	}
	if err := writeGroup(ctx, g, l.logger); err != nil {
		return nil, err
	}
	return g, nil
}

// taskStart opens the start point of task for a copy into g, and records it
// there; the first task's sets g's job and task count.
func (l *Lineage) taskStart(ctx context.Context, task int, g *GroupSavepoint) (*chkstore.Savepoint, error) {
	pt, err := l.Start(ctx, task)
	if err != nil {
		return nil, err
	}
	if pt == nil && task == 0 {
		return nil, fmt.Errorf("task 0 has no complete checkpoint in %s: give the --checkpoint-dir of a job spread over processes (--group), once it has checkpointed (a job in one process writes savepoints with --savepoint-dir or weir savepoint)", l.root)
	}
	if pt == nil {
		return nil, fmt.Errorf("task %d has no complete checkpoint in %s; let the group run until every task has checkpointed", task, l.root)
	}
	sp, err := chkstore.ReadCheckpoint(ctx, l.Location(task, pt.Epoch), pt.Checkpoint)
	if err != nil {
		return nil, err
	}
	if task == 0 {
		g.Job, g.Group = sp.Manifest.Job, sp.Manifest.Group
		g.Tasks = taskCount(sp.Manifest)
	}
	if err := checkTask(sp.Manifest, g, task); err != nil {
		return nil, fmt.Errorf("checkpoint %d of epoch %d: %w", pt.Checkpoint, pt.Epoch, err)
	}
	g.Sources = append(g.Sources, *pt)
	return sp, nil
}

// taskCount returns the task count of a task's checkpoint: the parallelism
// of its operators.
func taskCount(m *manifest.Manifest) int {
	if len(m.Operators) == 0 {
		return 0
	}
	return m.Operators[0].Parallelism
}

// checkTask refuses a checkpoint m that is not of task of g's job.
func checkTask(m *manifest.Manifest, g *GroupSavepoint, task int) error {
	if m.Job != g.Job {
		return fmt.Errorf("task %d belongs to job %q, task 0 to %q", task, m.Job, g.Job)
	}
	if m.Group != "" && g.Group != "" && m.Group != g.Group {
		return fmt.Errorf("task %d was checkpointed by group %q, task 0 by %q: the checkpoints of one group are needed, as they read its repartition topics", task, m.Group, g.Group)
	}
	if len(m.Operators) == 0 {
		return fmt.Errorf("task %d has no operator state", task)
	}
	for _, st := range m.Operators {
		if st.Subtask != task || st.Parallelism != g.Tasks {
			return fmt.Errorf("task %d holds subtask %d of %d of operator %q, want %d of %d", task, st.Subtask, st.Parallelism, st.Operator, task, g.Tasks)
		}
	}
	return nil
}

// writeGroup writes g's GROUP file, last.
func writeGroup(ctx context.Context, g *GroupSavepoint, logger *slog.Logger) error {
	objects, err := objstore.Open(ctx, g.Path, objstore.Options{CreateBucket: true, Logger: logger})
	if err == nil {
		var data []byte
		if data, err = json.MarshalIndent(g, "", "  "); err == nil {
			_, err = objects.PutBytes(ctx, GroupName, data)
		}
	}
	if err != nil {
		return fmt.Errorf("%w %s: %s: %w", ErrGroupSavepoint, g.Path, GroupName, err)
	}
	return nil
}

// ReadGroupSavepoint opens the group savepoint at path and checks that it
// holds a savepoint of each of its tasks, of its job.
func ReadGroupSavepoint(ctx context.Context, path string) (*GroupSavepoint, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrGroupSavepoint, path, fmt.Sprintf(format, args...))
	}
	objects, err := objstore.Open(ctx, path, objstore.Options{ReadOnly: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fail("%v", err)
	}
	data, err := objects.GetBytes(ctx, GroupName)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fail("it has no %s: not a savepoint of a job spread over processes (--group), or one not completely written; write one with 'weir checkpoints savepoint CHECKPOINT_DIR --dir DIR' once the group has stopped", GroupName)
	}
	if err != nil {
		return nil, fail("%v", err)
	}
	g := &GroupSavepoint{}
	if err := json.Unmarshal(data, g); err != nil || g.Tasks < 1 {
		return nil, fail("%s is damaged (%v)", GroupName, err)
	}
	g.Path = objects.Location()
	for task := range g.Tasks {
		key := taskPrefix(task) + "/" + manifest.Name
		data, err := objects.GetBytes(ctx, key)
		if errors.Is(err, objstore.ErrNotFound) {
			return nil, fail("the savepoint of task %d (%s) is missing", task, g.TaskPath(task))
		}
		if err != nil {
			return nil, fail("task %d: %v", task, err)
		}
		m, err := manifest.Decode(data)
		if err == nil {
			err = checkTask(m, g, task)
		}
		if err != nil {
			return nil, fail("the savepoint of task %d (%s): %v", task, g.TaskPath(task), err)
		}
	}
	return g, nil
}
