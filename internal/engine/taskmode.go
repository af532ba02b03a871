package engine

import (
	"errors"
	"fmt"

	"github.com/weirstream/weir/internal/chkstore"
)

// Task mode (Config.Task) runs one task of a job spread over processes:
// subtask Task.Index of every node, all of parallelism Config.Parallelism
// (the task count), as a job of its own with its own coordinator and
// checkpoint location. The graph has no Hashed edge (package runtime cut
// each into an exchange sink and source, which cross processes), so every
// edge is Forward between equal parallelisms: the task's subtasks form
// chains and gates among themselves only, and the job needs no other task
// to run or checkpoint. Outside task mode nothing here runs.

// ErrTaskMode is wrapped by the errors of a graph or checkpoint that cannot
// run as one task of a job spread over processes.
var ErrTaskMode = errors.New("weir: cannot run as a task of a job spread over processes")

// checkTask reports a graph that cannot run in task mode. It runs once,
// before the first attempt.
func checkTask(g *Graph, cfg Config) error {
	ts := cfg.Task
	if ts == nil {
		return nil
	}
	if ts.Index < 0 || ts.Index >= cfg.Parallelism {
		return fmt.Errorf("%w: task %d out of range [0, %d)", ErrTaskMode, ts.Index, cfg.Parallelism)
	}
	for _, n := range g.Nodes {
		if n.Parallelism != 0 && n.Parallelism != cfg.Parallelism {
			return fmt.Errorf("%w: operator %q has parallelism %d, the job %d tasks: in a job spread over processes (--group) every operator runs one subtask per task; remove its SetParallelism",
				ErrTaskMode, n.Name, n.Parallelism, cfg.Parallelism)
		}
		for _, e := range n.Inputs {
			if e.Part == Hashed {
				// NB: an internal error: runtime cuts every Hashed edge.
				return fmt.Errorf("%w: internal error: keyed edge %q → %q was not cut into an exchange", ErrTaskMode, e.From.Name, n.Name)
			}
		}
	}
	return nil
}

// subtasks returns the subtasks of n this job runs: all of them, or in task
// mode the task's.
func (j *job) subtasks(n *Node) []int {
	if ts := j.cfg.Task; ts != nil {
		return []int{ts.Index}
	}
	out := make([]int, j.parallelism(n))
	for i := range out {
		out[i] = i
	}
	return out
}

// localSubtasks returns how many subtasks of n this job runs.
func (j *job) localSubtasks(n *Node) int {
	if j.cfg.Task != nil {
		return 1
	}
	return j.parallelism(n)
}

// compatibleTask refuses, in task mode, a checkpoint of another task or
// taken with another task count: a task holds its own subtask only, so
// nothing could be redistributed. Rescaling a job spread over processes is
// changing the partition count of its inputs, not supported yet.
func (j *job) compatibleTask(m *chkstore.Manifest) error {
	ts := j.cfg.Task
	if ts == nil {
		return nil
	}
	if ts.Exchanges && m.Group != "" && m.Group != ts.Group {
		return fmt.Errorf("%w: %w: checkpoint %d in %s was taken by group %q, not %q: its read offsets are in the repartition topics of group %q, where what was in flight between its tasks is, and group %q reads topics of its own; run the members with --group %s, or give group %q a new --checkpoint-dir",
			ErrIncompatibleCheckpoint, ErrTaskMode, m.ID, j.store.Location(), m.Group, ts.Group, m.Group, ts.Group, m.Group, ts.Group)
	}
	for _, st := range m.Operators {
		if st.Parallelism != j.cfg.Parallelism {
			return fmt.Errorf("%w: %w: checkpoint %d in %s was taken with %d tasks (operator %q), the job has %d now: rescaling a job spread over processes (--group), that is changing the partition count of its input topics, is not supported yet; restore with %d partitions",
				ErrIncompatibleCheckpoint, ErrTaskMode, m.ID, j.store.Location(), st.Parallelism, st.Operator, j.cfg.Parallelism, st.Parallelism)
		}
		if st.Subtask != ts.Index {
			return fmt.Errorf("%w: %w: checkpoint %d in %s holds task %d (operator %q), not task %d: each task has a checkpoint location of its own",
				ErrIncompatibleCheckpoint, ErrTaskMode, m.ID, j.store.Location(), st.Subtask, st.Operator, ts.Index)
		}
	}
	return nil
}

// group returns the group of a job in task mode, "" otherwise.
func (j *job) group() string {
	if ts := j.cfg.Task; ts != nil {
		return ts.Group
	}
	return ""
}
