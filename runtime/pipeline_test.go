package runtime_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/weirstream/weir/runtime"
)

func TestNilFactoryIsAPipelineError(t *testing.T) {
	p := runtime.NewPipeline("nil")
	s := runtime.From[uint64](p, "gen", nil)
	runtime.To[uint64](s, "sink", nil)
	err := p.Err()
	if !errors.Is(err, runtime.ErrInvalidPipeline) || !strings.Contains(err.Error(), `source "gen": nil SourceFactory`) {
		t.Fatalf("Err() = %v, want the nil SourceFactory named", err)
	}
}

// TestMergeErrors checks that Merge reports misuse through the pipeline's
// error, not a panic: streams of two pipelines, and a name used twice.
func TestMergeErrors(t *testing.T) {
	src := func() (runtime.Source[int], error) { return nil, errors.New("not run") }
	p, q := runtime.NewPipeline("p"), runtime.NewPipeline("q")
	a, b := runtime.From(p, "a", src), runtime.From(q, "b", src)
	runtime.Merge(a, "merged", b)
	if err := p.Err(); !errors.Is(err, runtime.ErrInvalidPipeline) || !strings.Contains(err.Error(), `Merge "merged": streams of different pipelines`) {
		t.Fatalf("Err() = %v, want streams of different pipelines", err)
	}

	p = runtime.NewPipeline("p")
	a = runtime.From(p, "a", src)
	runtime.Merge(a, "a")
	if err := p.Err(); !errors.Is(err, runtime.ErrInvalidPipeline) || !strings.Contains(err.Error(), `"a" used twice`) {
		t.Fatalf("Err() = %v, want the name used twice", err)
	}
}
