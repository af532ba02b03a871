// Command wordcount counts words in text files with keyed state and writes a
// line "<word>\t<running count>" for every word it reads, through the
// exactly-once file sink.
//
// With no flags it counts the bundled sample text and writes under ./data:
//
//	go run ./examples/wordcount
//	cat data/wordcount/output/*
//
// Kill it at any moment and start it again with the same flags: it resumes
// from the last complete checkpoint, and the committed output is exactly
// what an uninterrupted run would have written.
package main

import (
	"bytes"
	_ "embed"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"github.com/weirstream/weir/connectors/file"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

//go:embed sample.txt
var sample []byte

func main() {
	input := flag.String("input", "", "text files or glob patterns, comma-separated (default: the bundled sample text)")
	output := flag.String("output", "data/wordcount/output", "directory for the committed output")
	atLeastOnce := flag.Bool("at-least-once", false, "write output at least once instead of exactly once (for crash tests that must see duplicates)")
	flags := runtime.RegisterFlags(flag.CommandLine, runtime.Config{CheckpointDir: "data/wordcount/checkpoints"})
	flag.Parse()
	cfg := flags.Config()

	paths, err := inputPaths(*input)
	if err != nil {
		fail(err)
	}
	p, err := pipeline(paths, *output, *atLeastOnce)
	if err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "wordcount: counting %s\n  output:      %s (read it with: cat %s)\n  checkpoints: %s\n",
		strings.Join(paths, ", "), *output, filepath.Join(*output, "*"), cfg.CheckpointDir)
	runtime.Main(p, cfg)
}

// inputPaths returns the files to count, writing the sample text to the data
// directory when none are given.
func inputPaths(input string) ([]string, error) {
	if input != "" {
		return strings.Split(input, ","), nil
	}
	path := filepath.Join("data", "wordcount", "input", "sample.txt")
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, sample) {
		// Unchanged: rewriting it would change its modification time, and
		// the file source refuses to resume over an input that changed.
		return []string{path}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return []string{path}, os.WriteFile(path, sample, 0o644)
}

func pipeline(paths []string, output string, atLeastOnce bool) (*runtime.Pipeline, error) {
	source, err := file.NewSource(file.SourceConfig{Paths: paths})
	if err != nil {
		return nil, err
	}
	sinkCfg := file.LinesTo(output)
	if atLeastOnce {
		sinkCfg.Mode = file.AtLeastOnce
	}
	sink, err := file.NewSink(sinkCfg)
	if err != nil {
		return nil, err
	}

	p := runtime.NewPipeline("wordcount")
	lines := runtime.From(p, "lines", source)
	words := operators.FlatMap(lines, splitWords)
	counts := operators.Process(operators.KeyBy(words, func(w string) string { return w }), "count",
		func(sc *operators.SetupContext[string]) (operators.ProcessFunc[string, string, string], error) {
			count, err := state.NewValue(sc.Scope, "count", state.Int64)
			if err != nil {
				return nil, err
			}
			return func(ctx *operators.Context[string], _ string, out runtime.Collector[string]) error {
				n, _ := count.Get()
				n++
				count.Put(n)
				out.Collect(ctx.Key() + "\t" + strconv.FormatInt(n, 10))
				return nil
			}, nil
		})
	runtime.To(counts, "output", sink)
	return p, p.Err()
}

// splitWords emits the lower-cased words of a line: runs of letters, digits
// and apostrophes.
func splitWords(line string, out runtime.Collector[string]) {
	start := -1
	for i, r := range line {
		word := unicode.IsLetter(r) || unicode.IsDigit(r) || r == '\''
		switch {
		case word && start < 0:
			start = i
		case !word && start >= 0:
			out.Collect(strings.ToLower(line[start:i]))
			start = -1
		}
	}
	if start >= 0 {
		out.Collect(strings.ToLower(line[start:]))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "wordcount:", err)
	os.Exit(2)
}
