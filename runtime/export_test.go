package runtime

// RunTask and TaskRun expose runTask, which the member runner calls, to
// the tests of package runtime_test.
var RunTask = runTask

type TaskRun = taskRun
