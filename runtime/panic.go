package runtime

import "github.com/weirstream/weir/internal/engine"

// ErrPanic is wrapped by the error of a job that failed because user code
// panicked: an operator's function, a source, a sink, a codec or a timer
// handler. The error names the operator, the subtask, the panic value (also
// wrapped when it is an error) and the function that panicked; the stack is
// logged at debug level. The job fails over like after any task error: no
// checkpoint completes after the panic, and a restart resumes from the last
// completed one.
var ErrPanic = engine.ErrPanic
