package file_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/weirstream/weir/connectors/file"
	"github.com/weirstream/weir/runtime"
)

func ExampleNewSink() {
	dir, _ := os.MkdirTemp("", "weir-example")
	defer os.RemoveAll(dir)
	newSink, err := file.NewSink(file.LinesTo(dir))
	if err != nil {
		panic(err)
	}
	ls := func(when string) {
		entries, _ := os.ReadDir(dir)
		fmt.Printf("%-15s", when)
		for _, e := range entries {
			fmt.Print(" ", e.Name())
		}
		fmt.Println()
	}
	ctx := context.Background()
	s, err := newSink() // what the runtime does for each subtask
	if err != nil {
		panic(err)
	}
	s.Open(ctx, runtime.TaskInfo{Subtask: 0, Parallelism: 1}, nil)
	s.Write(ctx, "hello")
	s.Write(ctx, "world")
	s.PreCommit(ctx, 1)
	ls("pre-committed:")
	s.Commit(ctx, 1)
	ls("committed:")
	s.Close()
	b, _ := os.ReadFile(filepath.Join(dir, "part-000-0000000001"))
	fmt.Print(string(b))
	// Output:
	// pre-committed:  .weir
	// committed:      .weir part-000-0000000001
	// hello
	// world
}
