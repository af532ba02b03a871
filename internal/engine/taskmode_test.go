package engine

import (
	"errors"
	"strings"
	"testing"
)

// Task mode refuses a graph it cannot run one subtask of: a keyed edge
// left uncut (an internal error of package runtime), a node with a
// parallelism of its own, a task out of range. Outside task mode the same
// graph passes.
func TestCheckTask(t *testing.T) {
	graph := func(part Partitioning, par int) *Graph {
		g := &Graph{Name: "g"}
		src := g.Add("src", SourceNode, nil)
		op := g.Add("op", OperatorNode, nil)
		op.Parallelism = par
		Connect(src, op, part, nil)
		return g
	}
	for _, tc := range []struct {
		g     *Graph
		index int
		want  string
	}{
		{graph(Hashed, 0), 0, `internal error: keyed edge "src" → "op" was not cut into an exchange`},
		{graph(Forward, 2), 0, `operator "op" has parallelism 2, the job 3 tasks`},
		{graph(Forward, 0), 3, "task 3 out of range [0, 3)"},
		{graph(Forward, 3), 2, ""},
	} {
		err := checkTask(tc.g, Config{Parallelism: 3, Task: &TaskScope{Index: tc.index}})
		if tc.want == "" {
			if err != nil {
				t.Errorf("checkTask = %v, want nil", err)
			}
			continue
		}
		if !errors.Is(err, ErrTaskMode) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("checkTask = %v, want ErrTaskMode with %q", err, tc.want)
		}
		if err := checkTask(tc.g, Config{Parallelism: 3}); err != nil {
			t.Errorf("without a task: %v", err)
		}
	}
}
