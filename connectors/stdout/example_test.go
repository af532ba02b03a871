package stdout_test

import (
	"context"

	"github.com/weirstream/weir/connectors/stdout"
	"github.com/weirstream/weir/runtime"
)

func Example() {
	newSink, err := stdout.NewSink(stdout.Lines())
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	s, err := newSink() // what the runtime does for each subtask
	if err != nil {
		panic(err)
	}
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
