package engine

import (
	"fmt"
	"os"
	"strconv"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/manifest"
	"github.com/weirstream/weir/internal/statebackend"
)

// A restore with another parallelism (rescaling) moves keyed state by key
// group: each subtask of a keyed operator owns a contiguous range of the
// job's key groups (keygroup.Range), whose state it gathers from the
// old subtasks whose ranges overlap it (statebackend.RescaleKeyGroups). Operator
// state (outside keys) is redistributed by its operator; until it can be,
// a restore that would need it is refused.

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

// checkRescale reports why n, which ran with another parallelism in m,
// cannot be restored: operator state that is not redistributed yet.
func (j *job) checkRescale(m *manifest.Manifest, n *Node, old int) error {
	for _, st := range m.Operators {
		if st.Operator == n.Name && st.StateFile != "" {
			return fmt.Errorf("%w: operator %q ran with parallelism %d in checkpoint %d, now %d, and has operator state (outside keys), which cannot be redistributed yet; restart it with parallelism %d",
				ErrIncompatibleCheckpoint, n.Name, old, m.ID, j.parallelism(n), old)
		}
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
