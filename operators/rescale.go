package operators

import (
	"encoding/binary"
	"fmt"

	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// Window operators keep the watermark they acted on as operator state, and
// pre-aggregation its open panes too; both can be restored with another
// parallelism (runtime.Rescalable). The window state itself is keyed and
// moves by key group.

// Redistribute implements runtime.Rescalable. Every old subtask acted on the
// same watermark at the checkpoint (a barrier follows the same watermarks
// on every input channel of every subtask); the smallest is taken all the
// same, as a larger one could skip a window that has not fired.
func (o *fixedWindowOp[K, T, S, Out]) Redistribute(info runtime.TaskInfo, old [][]byte) ([]byte, error) {
	fired, ok, err := smallestFired(info.Operator, old)
	if err != nil || !ok {
		return nil, err
	}
	return binary.BigEndian.AppendUint64(nil, uint64(fired)), nil
}

// smallestFired returns the smallest watermark that starts the states in
// old, and whether there is one.
func smallestFired(operator string, old [][]byte) (int64, bool, error) {
	var fired int64
	found := false
	for i, b := range old {
		if b == nil {
			continue
		}
		if len(b) < 8 {
			return 0, false, fmt.Errorf("window %q: %w: state of old subtask %d has %d bytes", operator, state.ErrCorruptValue, i, len(b))
		}
		if f := int64(binary.BigEndian.Uint64(b)); !found || f < fired {
			fired, found = f, true
		}
	}
	return fired, found, nil
}

// Redistribute implements runtime.Rescalable: the subtask takes the open
// panes of old subtasks subtask, subtask+parallelism, … (a pane's partial
// aggregates may go to any subtask: they are combined by key after the
// shuffle, and a key that two old subtasks held stays two partials), and
// the smallest watermark acted on (see fixedWindowOp.Redistribute).
func (o *localWindowOp[K, T, S]) Redistribute(info runtime.TaskInfo, old [][]byte) ([]byte, error) {
	fired, ok, err := smallestFired(info.Operator, old)
	if err != nil || !ok {
		return nil, err
	}
	o.panes, o.firstEnd = map[int64]*localPane[K, S]{}, runtime.MaxWatermark
	for i := info.Subtask; i < len(old); i += info.Parallelism {
		if old[i] == nil {
			continue
		}
		if err := o.restore(old[i]); err != nil {
			return nil, fmt.Errorf("operator %q: state of old subtask %d: %w", info.Operator, i, err)
		}
	}
	o.fired = fired
	return o.Snapshot(0)
}
