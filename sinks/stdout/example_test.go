package stdout_test

import (
	"context"

	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/sinks/stdout"
)

func Example() {
	newSink, err := stdout.Factory(stdout.Lines())
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	s := newSink() // what the runtime does for each subtask
	s.Open(ctx, runtime.TaskInfo{Subtask: 0, Parallelism: 1}, nil)
	s.Write(ctx, "hello")
	s.Write(ctx, "world")
	s.PreCommit(ctx, 1) // printed here
	s.Commit(ctx, 1)
	s.Close()
	// Output:
	// hello
	// world
}
