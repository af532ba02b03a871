package runtime

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

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
	nodes []*node
	names map[string]bool
	err   error
}

// NewPipeline returns an empty pipeline for the job called name.
func NewPipeline(name string) *Pipeline {
	p := &Pipeline{name: name, names: map[string]bool{}}
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
	for i := len(p.nodes); ; i++ {
		n := fmt.Sprintf("%s#%d", name, i)
		if !p.names[n] {
			return n
		}
	}
}

type nodeKind uint8

const (
	sourceNode nodeKind = iota
	operatorNode
	sinkNode
)

type partitioning uint8

const (
	forward partitioning = iota // subtask i to subtask i, or round robin if parallelism differs
	hashed                      // by key group
)

// node is one operator of the job graph.
type node struct {
	id          int
	name        string
	kind        nodeKind
	parallelism int // 0: the job default
	inputs      []*edge
	outputs     []*edge
	keyed       bool
	out         streamType // type of the records the node emits
	// build makes one subtask's instance. It returns the Collector[In] that
	// feeds it (nil for sources).
	build func(env *subtaskEnv) (instance, any, error)
}

// edge connects the output of from to input number index of to.
type edge struct {
	from, to *node
	index    int
	part     partitioning
	// router returns, for hashed edges, a function from record to target
	// subtask; it is called once per sending subtask.
	router func(maxParallelism, parallelism int) any
}

// Stream is a typed stream of records of type T in a Pipeline.
type Stream[T any] struct {
	p *Pipeline
	n *node
}

// Pipeline returns the pipeline s belongs to.
func (s Stream[T]) Pipeline() *Pipeline { return s.p }

// Name returns the name of the operator that produces s.
func (s Stream[T]) Name() string {
	if s.n == nil {
		return ""
	}
	return s.n.name
}

// SetParallelism sets the number of subtasks of the operator that produces s
// and returns s. Operators whose parallelism is not set run with the job's
// (the --parallelism flag); a change of parallelism between operators
// redistributes records round robin.
func (s Stream[T]) SetParallelism(n int) Stream[T] {
	if n < 1 {
		s.p.Fail(fmt.Errorf("operator %q: parallelism %d < 1", s.n.name, n))
		return s
	}
	s.n.parallelism = n
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

// NewKeyedStream keys s by key. keys encodes keys for hashing and storage;
// nil selects the built-in codec for K. Users call operators.KeyBy.
func NewKeyedStream[K comparable, T any](s Stream[T], key func(T) K, keys state.Codec[K]) KeyedStream[K, T] {
	if keys == nil {
		keys = state.CodecFor[K]()
	}
	if keys == nil && s.p != nil {
		var zero K
		s.p.Fail(fmt.Errorf("KeyBy after %q: keys of type %T need a codec", s.Name(), zero))
	}
	return KeyedStream[K, T]{Stream: s, key: key, keys: keys}
}

// KeyFunc returns the function that gives a record's key, for operators
// that work on the records before they are partitioned (for example the
// local pre-aggregation of operators.WindowedStream.PreAggregate).
func (s KeyedStream[K, T]) KeyFunc() func(T) K { return s.key }

// KeyCodec returns the codec of the keys.
func (s KeyedStream[K, T]) KeyCodec() state.Codec[K] { return s.keys }

func (p *Pipeline) add(name string, kind nodeKind, out streamType) (*node, bool) {
	if !validName.MatchString(name) {
		p.Fail(fmt.Errorf("operator name %q: use 1-128 letters, digits, '.', '_', '-', '#'", name))
		return nil, false
	}
	if p.names[name] {
		p.Fail(fmt.Errorf("operator name %q used twice: names identify state and must be unique", name))
		return nil, false
	}
	p.names[name] = true
	n := &node{id: len(p.nodes), name: name, kind: kind, out: out}
	p.nodes = append(p.nodes, n)
	return n, true
}

func connect(from, to *node, part partitioning, router func(int, int) any) {
	e := &edge{from: from, to: to, index: len(to.inputs), part: part, router: router}
	from.outputs = append(from.outputs, e)
	to.inputs = append(to.inputs, e)
}

// From adds a source called name. newSource is called once per subtask.
// WithWatermarks gives the stream event time.
func From[T any](p *Pipeline, name string, newSource func() Source[T], opts ...SourceOption[T]) Stream[T] {
	var o sourceOptions[T]
	for _, opt := range opts {
		opt(&o)
	}
	if o.watermarks != nil && o.watermarks.Timestamp == nil {
		p.Fail(fmt.Errorf("source %q: watermark strategy without a Timestamp function", name))
	}
	n, ok := p.add(name, sourceNode, typeOf[T]())
	if !ok {
		return Stream[T]{p: p, n: &node{name: name}}
	}
	n.build = func(env *subtaskEnv) (instance, any, error) {
		src := newSource()
		if err := src.Open(env.ctx, env.info, env.restored); err != nil {
			return nil, nil, err
		}
		inst := &sourceInstance[T]{src: src, out: env.out.(Collector[T])}
		if o.watermarks != nil {
			inst.wm = &watermarker[T]{strategy: *o.watermarks, out: inst.out, maxTime: MinWatermark, emitted: MinWatermark, lastRec: time.Now()}
			inst.out = inst.wm
		}
		return inst, nil, nil
	}
	return Stream[T]{p: p, n: n}
}

// To adds a sink called name that consumes s. newSink is called once per
// subtask.
func To[T any](s Stream[T], name string, newSink func() Sink[T]) SinkHandle {
	p := s.p
	if s.n == nil || s.n.build == nil {
		return SinkHandle{}
	}
	n, ok := p.add(name, sinkNode, nil)
	if !ok {
		return SinkHandle{}
	}
	n.build = func(env *subtaskEnv) (instance, any, error) {
		sink := newSink()
		if err := sink.Open(env.ctx, env.info, env.restored); err != nil {
			return nil, nil, err
		}
		inst := &sinkInstance[T]{sink: sink, ctx: env.ctx, fail: env.fail, committed: env.committed}
		return inst, Collector[T](inst), nil
	}
	connect(s.n, n, forward, nil)
	return SinkHandle{p: p, n: n}
}

// SinkHandle refers to a sink in a pipeline.
type SinkHandle struct {
	p *Pipeline
	n *node
}

// SetParallelism sets the number of sink subtasks.
func (h SinkHandle) SetParallelism(n int) SinkHandle {
	if h.n != nil && n >= 1 {
		h.n.parallelism = n
	} else if h.p != nil {
		h.p.Fail(fmt.Errorf("sink parallelism %d < 1", n))
	}
	return h
}

// Apply adds an operator called name that transforms s with the operators
// newOp makes, one per subtask. It is how package operators builds Map,
// Filter and the others, and how users add operators of their own.
func Apply[In, Out any](s Stream[In], name string, newOp func() Operator[In, Out]) Stream[Out] {
	p := s.p
	if s.n == nil || s.n.build == nil {
		return Stream[Out]{p: p, n: &node{name: name}}
	}
	n, ok := p.add(name, operatorNode, typeOf[Out]())
	if !ok {
		return Stream[Out]{p: p, n: &node{name: name}}
	}
	n.build = func(env *subtaskEnv) (instance, any, error) {
		op := newOp()
		octx := &OperatorContext{TaskInfo: env.info, Restored: env.restored, fail: env.fail, watermark: env.watermark}
		if err := op.Open(octx, env.out.(Collector[Out])); err != nil {
			return nil, nil, err
		}
		return operatorInstance{op}, processorCollector[In]{op}, nil
	}
	connect(s.n, n, forward, nil)
	return Stream[Out]{p: p, n: n}
}

// ApplyKeyed adds a keyed operator called name on s; see Apply. Its keyed
// state is checkpointed under name.
func ApplyKeyed[K comparable, In, Out any](s KeyedStream[K, In], name string, newOp func() KeyedOperator[K, In, Out]) Stream[Out] {
	p := s.p
	if s.n == nil || s.n.build == nil || s.keys == nil {
		return Stream[Out]{p: p, n: &node{name: name}}
	}
	n, ok := p.add(name, operatorNode, typeOf[Out]())
	if !ok {
		return Stream[Out]{p: p, n: &node{name: name}}
	}
	n.keyed = true
	key, keys := s.key, s.keys
	n.build = func(env *subtaskEnv) (instance, any, error) {
		scope, err := state.NewScope(env.backend, keys)
		if err != nil {
			return nil, nil, err
		}
		op := newOp()
		kctx := &KeyedContext[K]{
			OperatorContext: OperatorContext{TaskInfo: env.info, Restored: env.restored, fail: env.fail, watermark: env.watermark},
			Scope:           scope,
		}
		if _, ok := op.(TimerHandler[K]); ok {
			if kctx.Timers, err = newTimerService(scope); err != nil {
				return nil, nil, err
			}
		}
		if err := op.Open(kctx, env.out.(Collector[Out])); err != nil {
			return nil, nil, err
		}
		return keyedInstance[K, In, Out]{op: op, timers: kctx.Timers}, &keyedCollector[K, In, Out]{op: op, key: key, scope: scope}, nil
	}
	router := func(maxParallelism, parallelism int) any {
		hash := state.Hasher(keys)
		return func(rec In) int {
			kg := state.KeyGroupOf(hash(key(rec)), maxParallelism)
			return state.SubtaskOf(kg, maxParallelism, parallelism)
		}
	}
	connect(s.n, n, hashed, router)
	return Stream[Out]{p: p, n: n}
}

// Merge returns the union of streams as one stream, in no particular order
// between them.
func Merge[T any](name string, streams ...Stream[T]) Stream[T] {
	if len(streams) == 0 {
		panic("weir: Merge of no streams")
	}
	p := streams[0].p
	for _, s := range streams {
		if s.n == nil || s.n.build == nil {
			return Stream[T]{p: p, n: &node{name: name}}
		}
		if s.p != p {
			p.Fail(fmt.Errorf("Merge %q: streams of different pipelines", name))
			return Stream[T]{p: p, n: &node{name: name}}
		}
	}
	n, ok := p.add(name, operatorNode, typeOf[T]())
	if !ok {
		return Stream[T]{p: p, n: &node{name: name}}
	}
	for _, s := range streams {
		connect(s.n, n, forward, nil)
	}
	n.build = func(env *subtaskEnv) (instance, any, error) {
		return nopInstance{}, env.out, nil
	}
	return Stream[T]{p: p, n: n}
}

// subtaskEnv is what a node's build function needs for one subtask.
type subtaskEnv struct {
	ctx       context.Context
	info      TaskInfo
	restored  []byte
	backend   *state.Backend // keyed nodes only
	out       any            // Collector[Out] of the node, nil for sinks
	fail      func(error)
	watermark *int64                          // the task's current input watermark
	committed func(checkpointID uint64) error // sinks only: see sinkInstance
}
