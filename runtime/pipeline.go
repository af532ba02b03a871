package runtime

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/weirstream/weir/internal/engine"
	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/keying"
	"github.com/weirstream/weir/internal/statebackend"
	"github.com/weirstream/weir/state"
)

// ErrInvalidPipeline wraps every error found while building a pipeline.
var ErrInvalidPipeline = errors.New("weir: invalid pipeline")

// Pipeline is a job graph under construction. Build it with From, the
// functions of package operators and To, then hand it to Run or Main.
// Construction never fails on the spot: the first error is kept and returned
// by Err, Run and Main, as in Beam.
type Pipeline struct {
	name  string
	g     *engine.Graph // what the engine runs
	names map[string]bool
	err   error
	// For group mode (exchange.go): the exchange replacing each keyed
	// operator's input, and the record codecs WithCodec gave.
	cuts   map[*engine.Node]exchangeCut
	codecs map[*engine.Node]any
}

// NewPipeline returns an empty pipeline for the job called name.
func NewPipeline(name string) *Pipeline {
	p := &Pipeline{name: name, g: &engine.Graph{Name: name}, names: map[string]bool{}}
	if !validName.MatchString(name) {
		p.Fail(fmt.Errorf("job name %q: use letters, digits, '.', '_', '-'", name))
	}
	return p
}

// Name returns the job name.
func (p *Pipeline) Name() string { return p.name }

// Err returns the first error met while building the pipeline.
func (p *Pipeline) Err() error { return p.err }

// Fail records an error found while building the pipeline; operator
// libraries call it for invalid arguments. The first error is kept.
func (p *Pipeline) Fail(err error) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: %w", ErrInvalidPipeline, err)
	}
}

// validName restricts operator names to what is safe in file names: state is
// stored under the operator's name.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._#-]{0,127}$`)

// UniqueName returns name with a numeric suffix that no other operator of p
// uses, for operators that keep no state and so need no stable name.
func (p *Pipeline) UniqueName(name string) string {
	for i := len(p.g.Nodes); ; i++ {
		n := fmt.Sprintf("%s#%d", name, i)
		if !p.names[n] {
			return n
		}
	}
}

// Stream is a typed stream of records of type T in a Pipeline.
type Stream[T any] struct {
	p *Pipeline
	n *engine.Node // a placeholder without Build after a construction error
}

// Pipeline returns the pipeline s belongs to.
func (s Stream[T]) Pipeline() *Pipeline { return s.p }

// Name returns the name of the operator that produces s.
func (s Stream[T]) Name() string {
	if s.n == nil {
		return ""
	}
	return s.n.Name
}

// SetParallelism sets the number of subtasks of the operator that produces s
// and returns s. Operators whose parallelism is not set run with the job's
// (the --parallelism flag); a change of parallelism between operators
// redistributes records round robin.
func (s Stream[T]) SetParallelism(n int) Stream[T] {
	if n < 1 {
		s.p.Fail(fmt.Errorf("operator %q: parallelism %d < 1", s.n.Name, n))
		return s
	}
	s.n.Parallelism = n
	return s
}

// KeyedStream is a stream partitioned by a key of type K: all records with
// the same key go to the same subtask of the next operator, which sees them
// with that key's state. Create one with operators.KeyBy.
type KeyedStream[K comparable, T any] struct {
	Stream[T]
	key  func(T) K
	keys state.Codec[K]
}

// newKeyedStream keys s by key. keys encodes keys for hashing and storage;
// nil selects the built-in codec for K. Users call operators.KeyBy, which
// reaches it through package keying.
func newKeyedStream[K comparable, T any](s Stream[T], key func(T) K, keys state.Codec[K]) KeyedStream[K, T] {
	if keys == nil {
		keys = state.CodecFor[K]()
	}
	if keys == nil && s.p != nil {
		var zero K
		s.p.Fail(fmt.Errorf("KeyBy after %q: keys of type %T need a codec", s.Name(), zero))
	}
	return KeyedStream[K, T]{Stream: s, key: key, keys: keys}
}

// keyedParts is implemented by every KeyedStream[K, T], so that the
// functions of package keying, which cannot be generic, reach the typed
// constructor and fields.
type keyedParts interface {
	bind(s, key, codec any)
	parts() (key, codec any)
}

func init() {
	keying.Key = func(dst, s, key, codec any) { dst.(keyedParts).bind(s, key, codec) }
	keying.Parts = func(ks any) (any, any) { return ks.(keyedParts).parts() }
}

func (s *KeyedStream[K, T]) bind(in, key, codec any) {
	keys, _ := codec.(state.Codec[K]) // nil: the built-in codec
	*s = newKeyedStream(in.(Stream[T]), key.(func(T) K), keys)
}

func (s *KeyedStream[K, T]) parts() (key, codec any) { return s.key, s.keys }

func (p *Pipeline) add(name string, kind engine.Kind, out engine.StreamType) (*engine.Node, bool) {
	if !validName.MatchString(name) {
		p.Fail(fmt.Errorf("operator name %q: use 1-128 letters, digits, '.', '_', '-', '#'", name))
		return nil, false
	}
	if p.names[name] {
		p.Fail(fmt.Errorf("operator name %q used twice: names identify state and must be unique", name))
		return nil, false
	}
	p.names[name] = true
	return p.g.Add(name, kind, out), true
}

// placeholder stands for an operator that could not be added: streams
// built on it add nothing more.
func placeholder(name string) *engine.Node { return &engine.Node{Name: name} }

// info returns the TaskInfo of the subtask env opens.
func info(env *engine.Env) TaskInfo {
	ti := TaskInfo{Job: env.Job, Operator: env.Operator, Subtask: env.Subtask, Parallelism: env.Parallelism,
		Logger: env.Logger, RestoredCommitted: env.RestoredCommitted, CheckpointInterval: env.CheckpointInterval}
	if ts := env.Task; ts != nil {
		ti.Group, ti.Epoch, ti.PriorEpochs = ts.Group, ts.Epoch, ts.PriorEpochs
	}
	return ti
}

// From adds a source called name. newSource is called once per subtask at
// every start of the job (see SourceFactory). WithWatermarks gives the stream
// event time as AssignTimestamps would, inside the source's subtasks.
func From[T any](p *Pipeline, name string, newSource SourceFactory[T], opts ...SourceOption[T]) Stream[T] {
	var o sourceOptions[T]
	for _, opt := range opts {
		opt(&o)
	}
	if newSource == nil {
		p.Fail(fmt.Errorf("source %q: nil SourceFactory: pass the factory a connector's NewSource returned", name))
	}
	n, ok := p.add(name, engine.SourceNode, engine.TypeOf[T]())
	if !ok {
		return Stream[T]{p: p, n: placeholder(name)}
	}
	n.EventTime = o.watermarks != nil
	n.Build = sourceBuild(newSource, o)
	return Stream[T]{p: p, n: n}
}

// sourceBuild returns the Build of a source node.
func sourceBuild[T any](newSource SourceFactory[T], o sourceOptions[T]) buildFunc {
	return func(env *engine.Env) (engine.Subtask, error) {
		src, err := newSource()
		if err != nil {
			return engine.Subtask{}, fmt.Errorf("new source: %w", err)
		}
		restored, err := restoredState(env, src)
		if err != nil {
			return engine.Subtask{}, err
		}
		if err := src.Open(env.Ctx, info(env), restored); err != nil {
			return engine.Subtask{}, err
		}
		inst := &sourceInstance[T]{src: src, out: env.Out.(Collector[T])}
		if o.watermarks != nil {
			inst.wm = newWatermarker(*o.watermarks, inst.out, env)
			inst.out = inst.wm
		}
		return engine.Subtask{Instance: inst, Reports: reports(src)}, nil
	}
}

// To adds a sink called name that consumes s. newSink is called once per
// subtask at every start of the job (see SinkFactory).
func To[T any](s Stream[T], name string, newSink SinkFactory[T]) SinkHandle {
	p := s.p
	if s.n == nil || s.n.Build == nil {
		return SinkHandle{}
	}
	if newSink == nil {
		p.Fail(fmt.Errorf("sink %q: nil SinkFactory: pass the factory a connector's NewSink returned", name))
	}
	n, ok := p.add(name, engine.SinkNode, nil)
	if !ok {
		return SinkHandle{}
	}
	n.Build = sinkBuild(newSink)
	engine.Connect(s.n, n, engine.Forward, nil)
	return SinkHandle{p: p, n: n}
}

// sinkBuild returns the Build of a sink node.
func sinkBuild[T any](newSink SinkFactory[T]) buildFunc {
	return func(env *engine.Env) (engine.Subtask, error) {
		sink, err := newSink()
		if err != nil {
			return engine.Subtask{}, fmt.Errorf("new sink: %w", err)
		}
		restored := env.Restored
		if env.Rescaled != nil {
			if restored, err = rescaleSink(env, sink, newSink); err != nil {
				return engine.Subtask{}, err
			}
		}
		if err := sink.Open(env.Ctx, info(env), restored); err != nil {
			return engine.Subtask{}, err
		}
		inst := &sinkInstance[T]{sink: sink, ctx: env.Ctx, fail: env.Fail}
		return engine.Subtask{Instance: inst, In: Collector[T](inst), Reports: reports(sink)}, nil
	}
}

// SinkHandle refers to a sink in a pipeline.
type SinkHandle struct {
	p *Pipeline
	n *engine.Node
}

// SetParallelism sets the number of sink subtasks.
func (h SinkHandle) SetParallelism(n int) SinkHandle {
	if h.n != nil && n >= 1 {
		h.n.Parallelism = n
	} else if h.p != nil {
		h.p.Fail(fmt.Errorf("sink parallelism %d < 1", n))
	}
	return h
}

// Apply adds an operator called name that transforms s with the operators
// newOp makes, one per subtask. It is how package operators builds Map,
// Filter and the others, and how users add operators of their own. newOp,
// and Open on what it made, may be called concurrently for different
// subtasks (see SourceFactory).
func Apply[In, Out any](s Stream[In], name string, newOp func() Operator[In, Out]) Stream[Out] {
	p := s.p
	if s.n == nil || s.n.Build == nil {
		return Stream[Out]{p: p, n: placeholder(name)}
	}
	n, ok := p.add(name, engine.OperatorNode, engine.TypeOf[Out]())
	if !ok {
		return Stream[Out]{p: p, n: placeholder(name)}
	}
	n.Build = func(env *engine.Env) (engine.Subtask, error) {
		op := newOp()
		ctx, err := operatorContext(env, op)
		if err != nil {
			return engine.Subtask{}, err
		}
		if err := op.Open(ctx, env.Out.(Collector[Out])); err != nil {
			return engine.Subtask{}, err
		}
		return engine.Subtask{Instance: operatorInstance{op}, In: processorCollector[In]{op}}, nil
	}
	engine.Connect(s.n, n, engine.Forward, nil)
	return Stream[Out]{p: p, n: n}
}

// ApplyKeyed adds a keyed operator called name on s; see Apply. Its keyed
// state is checkpointed under name.
func ApplyKeyed[K comparable, In, Out any](s KeyedStream[K, In], name string, newOp func() KeyedOperator[K, In, Out]) Stream[Out] {
	p := s.p
	if s.n == nil || s.n.Build == nil || s.keys == nil {
		return Stream[Out]{p: p, n: placeholder(name)}
	}
	n, ok := p.add(name, engine.OperatorNode, engine.TypeOf[Out]())
	if !ok {
		return Stream[Out]{p: p, n: placeholder(name)}
	}
	n.Keyed = true
	key, keys := s.key, s.keys
	n.Build = func(env *engine.Env) (engine.Subtask, error) {
		scope, err := statebackend.NewScope[K](env.Backend, keys)
		if err != nil {
			return engine.Subtask{}, err
		}
		op := newOp()
		ctx, err := operatorContext(env, op)
		if err != nil {
			return engine.Subtask{}, err
		}
		kctx := &KeyedContext[K]{OperatorContext: *ctx, Scope: (*state.Scope[K])(scope)}
		if _, ok := op.(TimerHandler[K]); ok {
			if kctx.Timers, err = newTimerService(scope); err != nil {
				return engine.Subtask{}, err
			}
		}
		if err := op.Open(kctx, env.Out.(Collector[Out])); err != nil {
			return engine.Subtask{}, err
		}
		return engine.Subtask{
			Instance: keyedInstance[K, In, Out]{op: op, timers: kctx.Timers, ts: env.Timestamp},
			In:       &keyedCollector[K, In, Out]{op: op, key: key, scope: scope, ts: env.Timestamp},
		}, nil
	}
	router := func(maxParallelism, parallelism int) any {
		hash := keygroup.Hasher(keys)
		return func(rec In) int {
			kg := keygroup.Of(hash(key(rec)), maxParallelism)
			return keygroup.SubtaskOf(kg, maxParallelism, parallelism)
		}
	}
	engine.Connect(s.n, n, engine.Hashed, router)
	p.cutAt(n, keyedExchange(p, s.n, name, key, keys, router)) // for group mode (exchange.go)
	return Stream[Out]{p: p, n: n}
}

// Merge returns the union of s and others as one stream, called name, in
// no particular order between them. It is the only way to join streams of
// the same type into one.
func Merge[T any](s Stream[T], name string, others ...Stream[T]) Stream[T] {
	p := s.p
	streams := append([]Stream[T]{s}, others...)
	for _, s := range streams {
		if s.n == nil || s.n.Build == nil {
			return Stream[T]{p: p, n: placeholder(name)}
		}
		if s.p != p {
			p.Fail(fmt.Errorf("Merge %q: streams of different pipelines", name))
			return Stream[T]{p: p, n: placeholder(name)}
		}
	}
	n, ok := p.add(name, engine.OperatorNode, engine.TypeOf[T]())
	if !ok {
		return Stream[T]{p: p, n: placeholder(name)}
	}
	for _, s := range streams {
		engine.Connect(s.n, n, engine.Forward, nil)
	}
	n.Build = func(env *engine.Env) (engine.Subtask, error) {
		return engine.Subtask{Instance: nopInstance{}, In: env.Out}, nil
	}
	return Stream[T]{p: p, n: n}
}
