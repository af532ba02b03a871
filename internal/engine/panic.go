package engine

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	goruntime "runtime"
	"runtime/debug"
	"strings"
)

// ErrPanic is wrapped by the error of a job that failed because user code
// panicked (runtime re-exports it and documents it).
var ErrPanic = errors.New("weir: panic in user code")

// A panic is recovered at the boundary of the task goroutine (task.run), not
// around each call into user code, so that records pay nothing for it. The
// operators of a chain call each other directly, so the boundary does not
// know which one panicked; it finds out after the fact: the task notes the
// member it calls into (task.entry, once per batch or event), and every
// chained edge the call went down left one countingCollector.Collect (or
// countingProcessor.Collect, or DirectProcessor.Collect) frame on the
// panicking stack, which is still there while the deferred recovery runs
// (inlined frames are frames too: CallersFrames lists them). A KeyBy key
// function runs where records are routed, in the writer of the operator
// upstream, which is therefore the one named; the error also names the
// function that panicked.

// countingCollect, countingProcess and directProcess are the function
// names of countingCollector.Collect, countingProcessor.Collect and
// DirectProcessor.Collect in stack frames (inlined ones included).
var (
	countingCollect = goruntime.FuncForPC(reflect.ValueOf((*countingCollector[int]).Collect).Pointer()).Name()
	countingProcess = goruntime.FuncForPC(reflect.ValueOf((*countingProcessor[int]).Collect).Pointer()).Name()
	directProcess   = goruntime.FuncForPC(reflect.ValueOf(DirectProcessor[int].Collect).Pointer()).Name()
)

// recovered turns v, a panic recovered at the task's boundary, into the
// task's error.
func (t *task) recovered(v any) error {
	pcs := callers()
	m := t.culprit(pcs)
	err := panicError(v, pcs)
	t.logger.Debug("user code panicked", "operator", m.node.Name, "err", err, "stack", string(debug.Stack()))
	return fmt.Errorf("operator %q, subtask %d: %w", m.node.Name, t.subtask, err)
}

// guard calls f, code of member m that runs outside the task's loop (its
// opening and closing), and turns a panic into an error.
func (t *task) guard(m *member, f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = panicError(v, callers())
			t.logger.Debug("user code panicked", "operator", m.node.Name, "err", err, "stack", string(debug.Stack()))
		}
	}()
	return f()
}

// build opens member m with env: the node's Build runs the user's setup
// (the Open of an operator, a source or a sink).
func (t *task) build(m *member, env *Env) (sub Subtask, err error) {
	err = t.guard(m, func() (err error) {
		sub, err = m.node.Build(env)
		return err
	})
	return sub, err
}

// panicError describes the panic v raised on the stack pcs.
func panicError(v any, pcs []uintptr) error {
	site := ""
	if f, ok := panicSite(pcs); ok {
		site = fmt.Sprintf(" (in %s at %s:%d)", f.Function, filepath.Base(f.File), f.Line)
	}
	if e, ok := v.(error); ok {
		return fmt.Errorf("%w: %w%s", ErrPanic, e, site)
	}
	return fmt.Errorf("%w: %v%s", ErrPanic, v, site)
}

// callers returns the whole stack of the calling goroutine, which during a
// deferred recovery includes the frames that panicked.
func callers() []uintptr {
	pcs := make([]uintptr, 64)
	for {
		n := goruntime.Callers(1, pcs)
		if n < len(pcs) {
			return pcs[:n]
		}
		pcs = make([]uintptr, 2*len(pcs))
	}
}

// panicSite returns the frame that raised the panic: the first one below
// runtime.gopanic outside package runtime (a nil dereference or an index
// out of range panics from runtime helpers called by the user's function).
func panicSite(pcs []uintptr) (goruntime.Frame, bool) {
	frames := goruntime.CallersFrames(pcs)
	below := false
	for {
		f, more := frames.Next()
		if below && !strings.HasPrefix(f.Function, "runtime.") {
			return f, true
		}
		below = below || f.Function == "runtime.gopanic"
		if !more {
			return goruntime.Frame{}, false
		}
	}
}

// culprit returns the member whose code panicked: the member the task
// called into, followed down one chained edge per countingCollector frame
// on the stack pcs.
func (t *task) culprit(pcs []uintptr) *member {
	hops := 0
	frames := goruntime.CallersFrames(pcs)
	for more := true; more; {
		var f goruntime.Frame
		f, more = frames.Next()
		if f.Function == countingCollect || f.Function == countingProcess || f.Function == directProcess {
			hops++
		}
	}
	i := min(max(t.entry, 0), len(t.members)-1)
	for range hops {
		next, ok := t.inProgress(i)
		if !ok {
			break
		}
		i = next
	}
	return t.members[i]
}

// inProgress returns the chained output of member i whose call is on the
// stack. Member i emits each record to its outputs in turn, in the order of
// t.members, and each counts the record once it has passed it on: all have
// counted equally except during that loop, when those that returned have
// counted one record more. The one in progress is the first that has not.
func (t *task) inProgress(i int) (int, bool) {
	var outs []int
	for j := i + 1; j < len(t.members); j++ {
		if in := t.members[j].node.Inputs; len(in) == 1 && in[0].From == t.members[i].node {
			outs = append(outs, j)
		}
	}
	if len(outs) == 0 {
		return 0, false
	}
	for k := 1; k < len(outs); k++ {
		a, b := t.stats.members[outs[k-1]].in, t.stats.members[outs[k]].in
		if a != nil && b != nil && *a != *b {
			return outs[k], true
		}
	}
	return outs[0], true
}
