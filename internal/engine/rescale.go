package engine

import (
	"fmt"
	"os"
	"strconv"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/statebackend"
)

// A restore with another parallelism (rescaling) moves keyed state by key
// group: each subtask of a keyed operator owns a contiguous range of the
// job's key groups (keygroup.Range), whose state it gathers from the
// old subtasks whose ranges overlap it (statebackend.RescaleKeyGroups). Operator
// state (outside keys) is handed to every new subtask whole (Rescaled),
// which takes its share (see runtime.Rescalable).

// restoredParallelism returns the parallelism operator ran with in the
// restored checkpoint, or 0 if the checkpoint has no state of it.
func (j *job) restoredParallelism(operator string) int {
	for _, st := range j.restored.Operators {
		if st.Operator == operator {
			return st.Parallelism
		}
	}
	return 0
}

// Rescaled is the operator state of every old subtask of a node whose
// parallelism changed since the restored checkpoint. Like Flink's union
// redistribution, every new subtask gets all of it and takes its share;
// the runtime refuses the restore for a source, sink or operator that
// cannot.
type Rescaled struct {
	// OldParallelism is the node's parallelism in the restored checkpoint.
	OldParallelism int
	// States holds each old subtask's state, by subtask; nil for none.
	States [][]byte
	// Committed is set for each old sink subtask whose Commit of the
	// restored checkpoint had returned (see Env.RestoredCommitted).
	Committed []bool
}

// restoreOperatorState sets env.Restored (and for a sink
// env.RestoredCommitted), or env.Rescaled if n's parallelism changed and
// its old subtasks kept operator state.
func (j *job) restoreOperatorState(env *Env, n *Node, subtask int) error {
	old := j.restoredParallelism(n.Name)
	if old == 0 || old == j.parallelism(n) {
		data, err := j.store.ReadOperatorState(j.restored, n.Name, subtask)
		if err != nil {
			return err
		}
		env.Restored = data
		if n.Kind == SinkNode {
			env.RestoredCommitted = j.store.Committed(j.restored.ID, n.Name, subtask)
		}
		return nil
	}
	r := &Rescaled{OldParallelism: old, States: make([][]byte, old), Committed: make([]bool, old)}
	some := false
	for o := range old {
		data, err := j.store.ReadOperatorState(j.restored, n.Name, o)
		if err != nil {
			return err
		}
		r.States[o], some = data, some || data != nil
		if n.Kind == SinkNode {
			r.Committed[o] = j.store.Committed(j.restored.ID, n.Name, o)
		}
	}
	if some {
		env.Rescaled = r
	}
	return nil
}

// restoreKeyed materializes the keyed state of subtask of n from the
// restored checkpoint into the live directory dir: the subtask's own
// state, or, if n's parallelism changed, the key groups it owns now.
func (j *job) restoreKeyed(n *Node, subtask int, dir string) error {
	old, p := j.restoredParallelism(n.Name), j.parallelism(n)
	if old == 0 || old == p {
		_, err := j.store.RestoreKeyed(j.restored, n.Name, subtask, dir)
		return err
	}
	first, end := keygroup.Range(subtask, j.cfg.MaxParallelism, p)
	var srcs []statebackend.KeyGroupSource
	for _, o := range statebackend.OverlappingSubtasks(first, end, j.cfg.MaxParallelism, old) {
		src := dir // the first source is restored in place, the others beside it
		if len(srcs) > 0 {
			src = dir + ".from-" + strconv.Itoa(o) // not a subtask's directory
			defer os.RemoveAll(src)
		}
		ok, err := j.store.RestoreKeyed(j.restored, n.Name, o, src)
		if err != nil {
			return err
		}
		if ok {
			f, e := keygroup.Range(o, j.cfg.MaxParallelism, old)
			srcs = append(srcs, statebackend.KeyGroupSource{Dir: src, First: f, End: e})
		}
	}
	if len(srcs) == 0 {
		return nil
	}
	j.logger.Info("rescaling keyed state", "operator", n.Name, "subtask", subtask, "parallelism", p,
		"old_parallelism", old, "key_groups", fmt.Sprintf("[%d, %d)", first, end), "old_subtasks", len(srcs))
	if err := statebackend.RescaleKeyGroups(dir, first, end, srcs, j.logger.With("operator", n.Name, "subtask", subtask)); err != nil {
		return fmt.Errorf("checkpoint %d: rescale keyed state of %s/%d: %w", j.restored.ID, n.Name, subtask, err)
	}
	return nil
}

// restoredEventTime returns the event time the restored checkpoint kept for
// the head of t. After a rescale it is the smallest of the old subtasks'
// (the watermark may only move forward from what every old subtask had
// reached, so no record is taken for late that was not).
func (j *job) restoredEventTime(t *task) (int64, bool) {
	old := j.restoredParallelism(t.head.Name)
	if old == j.parallelism(t.head) || old == 0 {
		st, ok := j.restored.Subtask(t.head.Name, t.subtask)
		if !ok || st.EventTime == nil {
			return 0, false
		}
		return *st.EventTime, true
	}
	var ts int64
	found := false
	for _, st := range j.restored.Operators {
		if st.Operator == t.head.Name && st.EventTime != nil && (!found || *st.EventTime < ts) {
			ts, found = *st.EventTime, true
		}
	}
	return ts, found
}
