package operators

import (
	"errors"
	"fmt"
	"sync"

	"github.com/weirstream/weir/runtime"
)

// ErrUndeclaredSideOutput is reported (through Pipeline.Err, or as the
// job's failure when a function emits to it) for an OutputTag used with an
// operator it was not declared on with WithSideOutputs.
var ErrUndeclaredSideOutput = errors.New("operators: side output not declared")

// Side outputs, as Flink's: an operator emits to its main output and to
// any number of side outputs, each named by a typed OutputTag. The runtime
// has one output per operator, so an operator with side outputs emits
// envelopes (sideEnvelope), and chained operators split them: one picks
// the main records, one the side records, and one per tag picks that
// tag's records and unboxes them. Chained, the split costs a function call
// per record; a side record is boxed once (any), which side outputs, for
// the exceptional records (invalid, late), can afford.

// OutputTag names a side output of type T. Create it once, declare it on
// the operators that emit to it (WithSideOutputs), emit with Emit and get
// the side stream with SideOutput. A tag can be used by several operators
// and pipelines: each declaration makes a side stream of its own.
type OutputTag[T any] struct {
	name    string
	mu      sync.Mutex // pipelines may be built concurrently
	streams map[streamID]runtime.Stream[T]
}

// streamID identifies a main stream: its pipeline and its operator's name,
// which is unique in the pipeline.
type streamID struct {
	p    *runtime.Pipeline
	name string
}

// NewOutputTag returns a tag for side outputs of type T called name. The
// name names the side stream's operator (the declaring operator's name,
// '.', name), so it must be a valid operator name and unique among the
// tags of one operator.
func NewOutputTag[T any](name string) *OutputTag[T] {
	return &OutputTag[T]{name: name, streams: map[streamID]runtime.Stream[T]{}}
}

// Name returns the tag's name.
func (t *OutputTag[T]) Name() string { return t.name }

// Emit sends v to the tag's side output of the operator whose function ctx
// was given to (a Context or TimerContext). A tag that was not declared on
// the operator fails the job with ErrUndeclaredSideOutput.
func (t *OutputTag[T]) Emit(ctx OutputContext, v T) { ctx.outputs().emit(t, v) }

// bind makes the side stream of t from the side records of the operator
// called op, whose main stream is main; t's records are tagged i.
func (t *OutputTag[T]) bind(sides runtime.Stream[sideRecord], op string, i int, main streamID) {
	s := runtime.Apply(sides, op+"."+t.name, func() runtime.Operator[sideRecord, T] {
		return &splitOp[sideRecord, T]{pick: func(r sideRecord) (T, bool) {
			if r.tag != i {
				var zero T
				return zero, false
			}
			return r.v.(T), true
		}}
	})
	t.mu.Lock()
	defer t.mu.Unlock()
	t.streams[main] = s
}

func (t *OutputTag[T]) stream(main streamID) (runtime.Stream[T], bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.streams[main]
	return s, ok
}

// AnyOutputTag is an OutputTag of any type, as WithSideOutputs takes them.
type AnyOutputTag interface {
	Name() string
	bind(sides runtime.Stream[sideRecord], op string, i int, main streamID)
}

// OutputContext is a per-call context through which a function emits to
// side outputs: Context, TimerContext.
type OutputContext interface {
	outputs() *sideOutputs
}

// SideOutput returns the side stream of tag emitted by the operator that
// produces main. A tag not declared on that operator (WithSideOutputs) is a
// pipeline error (ErrUndeclaredSideOutput), and the stream returned is
// then empty.
func SideOutput[Out, T any](main runtime.Stream[Out], tag *OutputTag[T]) runtime.Stream[T] {
	p := main.Pipeline()
	if tag != nil {
		if s, ok := tag.stream(streamID{p, main.Name()}); ok {
			return s
		}
		p.Fail(fmt.Errorf("side output %q of %q: %w: declare the tag with operators.WithSideOutputs on the operator that produces the stream",
			tag.name, main.Name(), ErrUndeclaredSideOutput))
	} else {
		p.Fail(fmt.Errorf("side output of %q: nil OutputTag", main.Name()))
	}
	// A stream of nothing: the pipeline does not run with the error.
	return runtime.Apply(main, p.UniqueName("SideOutput"), func() runtime.Operator[Out, T] {
		return &splitOp[Out, T]{pick: func(Out) (T, bool) {
			var zero T
			return zero, false
		}}
	})
}

// ProcessOption configures Process and ProcessWithTimers.
type ProcessOption func(*processConfig)

type processConfig struct {
	tags []AnyOutputTag
}

// WithSideOutputs declares the side outputs the operator's functions emit
// to (OutputTag.Emit); SideOutput then returns each one's stream.
func WithSideOutputs(tags ...AnyOutputTag) ProcessOption {
	return func(c *processConfig) { c.tags = append(c.tags, tags...) }
}

func newProcessConfig(opts []ProcessOption) processConfig {
	var c processConfig
	for _, opt := range opts {
		opt(&c)
	}
	return c
}

// checkTags reports nil and duplicate tags of the operator called op.
func checkTags(p *runtime.Pipeline, op string, tags []AnyOutputTag) bool {
	names := map[string]bool{}
	for _, t := range tags {
		if t == nil {
			p.Fail(fmt.Errorf("operator %q: nil OutputTag in WithSideOutputs", op))
			return false
		}
		if names[t.Name()] {
			p.Fail(fmt.Errorf("operator %q: two side outputs called %q: give each tag its own name", op, t.Name()))
			return false
		}
		names[t.Name()] = true
	}
	return true
}

// sideRecord is a record of a side output: the tag's index (from 1) and
// the boxed record.
type sideRecord struct {
	tag int
	v   any
}

// sideEnvelope is what an operator with side outputs emits: a main record
// (side.tag == 0) or a side record.
type sideEnvelope[Out any] struct {
	main Out
	side sideRecord
}

// sideOutputs is how a running operator emits to its side outputs.
type sideOutputs struct {
	tags     []AnyOutputTag
	collect  func(sideRecord) // nil without tags
	operator string
	fail     func(error)
}

func (s *sideOutputs) emit(tag AnyOutputTag, v any) {
	for i, t := range s.tags {
		if t == tag {
			s.collect(sideRecord{tag: i + 1, v: v})
			return
		}
	}
	s.fail(fmt.Errorf("operator %q: side output %q: %w: pass the tag to operators.WithSideOutputs", s.operator, tag.Name(), ErrUndeclaredSideOutput))
}

// mainCollector wraps main records in sideEnvelope.
type mainCollector[Out any] struct {
	out runtime.Collector[sideEnvelope[Out]]
}

func (c mainCollector[Out]) Collect(v Out) { c.out.Collect(sideEnvelope[Out]{main: v}) }

// newOutputs returns the main output and the side outputs of an operator
// whose output out takes W: Out without tags, sideEnvelope[Out] with.
func newOutputs[Out, W any](out runtime.Collector[W], tags []AnyOutputTag, operator string, fail func(error)) (runtime.Collector[Out], *sideOutputs) {
	s := &sideOutputs{tags: tags, operator: operator, fail: fail}
	if len(tags) == 0 {
		return any(out).(runtime.Collector[Out]), s
	}
	env := any(out).(runtime.Collector[sideEnvelope[Out]])
	s.collect = func(r sideRecord) { env.Collect(sideEnvelope[Out]{side: r}) }
	return mainCollector[Out]{out: env}, s
}

// applySided adds the keyed operator called name, made by plain without
// side outputs and by sided with, and splits the side outputs off.
func applySided[K comparable, In, Out any](s runtime.KeyedStream[K, In], name string, c processConfig,
	plain func() runtime.KeyedOperator[K, In, Out], sided func() runtime.KeyedOperator[K, In, sideEnvelope[Out]]) runtime.Stream[Out] {
	if len(c.tags) == 0 || !checkTags(s.Pipeline(), name, c.tags) {
		return runtime.ApplyKeyed(s, name, plain)
	}
	return splitSides(runtime.ApplyKeyed(s, name, sided), name, ".main", c.tags)
}

// splitSides splits the envelopes of the operator called op into its main
// stream, which it returns (op+suffix names its operator), and the side
// streams of tags.
func splitSides[Out any](raw runtime.Stream[sideEnvelope[Out]], op, suffix string, tags []AnyOutputTag) runtime.Stream[Out] {
	main := runtime.Apply(raw, op+suffix, func() runtime.Operator[sideEnvelope[Out], Out] {
		return &splitOp[sideEnvelope[Out], Out]{pick: func(e sideEnvelope[Out]) (Out, bool) { return e.main, e.side.tag == 0 }}
	})
	sides := runtime.Apply(raw, op+".sides", func() runtime.Operator[sideEnvelope[Out], sideRecord] {
		return &splitOp[sideEnvelope[Out], sideRecord]{pick: func(e sideEnvelope[Out]) (sideRecord, bool) { return e.side, e.side.tag != 0 }}
	})
	id := streamID{raw.Pipeline(), main.Name()}
	for i, t := range tags {
		t.bind(sides, op, i+1, id)
	}
	return main
}
