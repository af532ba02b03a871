package file_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/weirstream/weir/connectors/file"
	"github.com/weirstream/weir/runtime"
)

func ExampleNewSource() {
	dir, _ := os.MkdirTemp("", "weir-example")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "a.log"), []byte("a1\na2\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.log"), []byte("b1\r\nb2"), 0o644)

	newSource, err := file.NewSource(file.SourceConfig{Paths: []string{filepath.Join(dir, "*.log")}})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	src, err := newSource() // what the runtime does for each subtask
	if err != nil {
		panic(err)
	}
	src.Open(ctx, runtime.TaskInfo{Subtask: 0, Parallelism: 1}, nil)
	defer src.Close()
	out := runtime.CollectorFunc[string](func(line string) { fmt.Printf("%q\n", line) })
	for {
		if err := src.Read(ctx, out); errors.Is(err, runtime.ErrEndOfInput) {
			break
		} else if err != nil {
			panic(err)
		}
	}
	// Output:
	// "a1"
	// "a2"
	// "b1"
	// "b2"
}
