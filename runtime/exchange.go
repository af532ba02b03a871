package runtime

import (
	"bytes"
	"context"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/weirstream/weir/internal/engine"
	"github.com/weirstream/weir/state"
)

// Exchanges. In a job spread over processes (Config.Group) records cross
// tasks only through the Cluster's exchanges. The task's graph is the
// pipeline's with every keyed edge (KeyBy into a keyed operator) cut in two:
//
//	upstream → OP.exchange.send     (a sink, in the upstream task's chain)
//	OP.exchange.receive → OP        (a source, Forward into the keyed operator)
//
// The send side encodes each record with its record codec (WithCodec) and
// its key with the key codec, and names the receiving task with the edge's
// own router (the subtask of the key's key group), so a key's state lives
// in one task. The receive side decodes. Both take part in checkpoints like
// any connector: the exchange is exactly once when the Cluster's sink
// commits in two phases and its source keeps read positions in the
// checkpoint.
//
// Names: the exchange into operator OP is called "OP.exchange" (the name
// given to Cluster.Exchange: a Kafka cluster makes a topic of it), and its
// two nodes "OP.exchange.send" and "OP.exchange.receive", the names their
// state has in checkpoints. They derive from OP alone, so they are stable
// across runs and unique as operator names are; a pipeline whose own names
// collide with them is refused.
//
// Event time crosses an exchange whose input carries it (as Flink's
// per-channel watermarks, with Kafka's transactions in between):
//
//   - A record keeps its timestamp (ExchangeRecord.Timestamp).
//   - The send side keeps its task's watermark, and at each pre-commit,
//     if it advanced since the last, writes a WatermarkMarker to every
//     task, last in the checkpoint's transaction: markers become visible
//     with the records before them, in order, and cost one record per
//     task and checkpoint at most. At the end of input the watermark is
//     MaxWatermark, so an ended sender holds no one back. Watermarks thus
//     cross at checkpoints, as records do: a window downstream fires one
//     checkpoint later than in one process, never earlier.
//   - A task that turned idle (WatermarkStrategy.IdleTimeout, as within a
//     job) writes an IdleMarker at its next pre-commit: its readers ignore
//     it until its next WatermarkMarker. A sender without idle timeout
//     that receives nothing holds its readers back, as a subtask does in
//     one process.
//   - The receive side keeps the largest watermark of each sending task
//     (the task count is the number of senders) and whether it is idle;
//     its watermark is the minimum over the senders not idle (idle itself
//     when all are). It takes a watermark lower than the sender's last as
//     no change: a sender restarted from a checkpoint sends them again.
//     The senders' watermarks are in the receive side's state, before the
//     Cluster's source's, so a restored task resumes at the watermark it
//     had, and a sender that sends no more (its input ended) does not hold
//     it back. A state without them (the job ran without event time)
//     starts every sender at MinWatermark.
//
// The watermark a reader computes never passes what a sender had reached
// when it wrote the records read so far, so a record on time at its
// sender is on time downstream; one late at its sender may be on time
// downstream (its marker follows it), where in one process it could be
// late. Markers are not records: the runtime consumes them, users never
// see them, and they count in no record metric (the Cluster's source may
// count them as offsets of its lag).
//
// End of input: the send side passes EndOfInput on to the Cluster's sink
// if it is an EndOfInputHandler. A bounded group job ends only if the
// Cluster's source returns ErrEndOfInput once every task's writer has ended
// and it has read all (package internal/clustertest does); a Cluster that
// never ends its exchanges (Kafka's, for unbounded inputs) keeps the tasks
// running until they are stopped.

// exchangeName returns the name of the exchange into operator op.
func exchangeName(op string) string { return op + ".exchange" }

// WithCodec gives the records of s a codec, and returns s. Records need one
// to cross processes: in a job spread over processes (Config.Group) a KeyBy
// after s encodes each record with it. Without WithCodec the runtime picks
// state.CodecFor's codec for built-in types, and state.JSON for types that
// JSON carries without loss (exported fields only, no func, chan, interface
// or complex fields, no field tagged json:"-", recursively; types with
// their own MarshalJSON and UnmarshalJSON, or MarshalText and
// UnmarshalText, are taken as they are). Any other type makes a group job
// refuse to start, naming the KeyBy and the type. A job in one process
// never encodes records and ignores it.
func WithCodec[T any](s Stream[T], c state.Codec[T]) Stream[T] {
	if c == nil {
		s.p.Fail(fmt.Errorf("WithCodec after %q: nil codec", s.Name()))
		return s
	}
	if s.n == nil {
		return s
	}
	if s.p.codecs == nil {
		s.p.codecs = map[*engine.Node]any{}
	}
	s.p.codecs[s.n] = c
	return s
}

// exchangeCut makes the two ends of the exchange that replaces a keyed
// edge in group mode. ApplyKeyed registers one per keyed operator (cutAt),
// with the record and key types in its closure.
type exchangeCut struct {
	from *engine.Node      // the node whose records cross
	out  engine.StreamType // their type
	// ends opens the exchange called name of the cluster and returns the
	// Builds of its send and receive nodes.
	ends func(ctx context.Context, cl Cluster, name string, tasks, maxParallelism int) (send, receive buildFunc, err error)
}

type buildFunc = func(*engine.Env) (engine.Subtask, error)

// cutAt registers the exchange that replaces the keyed input of n in
// group mode.
func (p *Pipeline) cutAt(n *engine.Node, x exchangeCut) {
	if p.cuts == nil {
		p.cuts = map[*engine.Node]exchangeCut{}
	}
	p.cuts[n] = x
}

// keyedExchange returns the exchangeCut of a keyed edge from from, whose
// records are keyed by key (encoded with keys) and routed by router.
func keyedExchange[K comparable, T any](p *Pipeline, from *engine.Node, into string, key func(T) K, keys state.Codec[K], router func(maxParallelism, parallelism int) any) exchangeCut {
	ends := func(ctx context.Context, cl Cluster, name string, tasks, maxParallelism int) (buildFunc, buildFunc, error) {
		codec, err := recordCodec[T](p, from, into)
		if err != nil {
			return nil, nil, err
		}
		newSink, newSource, err := cl.Exchange(ctx, name, tasks)
		if err != nil {
			return nil, nil, fmt.Errorf("exchange %q: %w", name, err)
		}
		encode := encoderOf(codec)
		eventTime := from.EventTime
		send := func(env *engine.Env) (engine.Subtask, error) {
			var x *exchangeSink[K, T]
			st, err := sinkBuild(func() (Sink[T], error) {
				inner, err := newSink()
				if err != nil {
					return nil, err
				}
				route := router(maxParallelism, tasks).(func(T) int)
				x = &exchangeSink[K, T]{inner: inner, encode: encode, key: key, keys: keys, route: route, tasks: tasks, ts: env.Timestamp}
				if eventTime {
					x.time = &senderTime{wm: MinWatermark, sent: MinWatermark, idle: env.Idle}
				}
				return x, nil
			})(env)
			if err != nil || x.time == nil {
				return st, err
			}
			st.Instance = sendInstance{Instance: st.Instance, time: x.time}
			return st, nil
		}
		receive := func(env *engine.Env) (engine.Subtask, error) {
			var x *exchangeSource[T]
			st, err := sourceBuild(func() (Source[T], error) {
				inner, err := newSource()
				if err != nil {
					return nil, err
				}
				x = &exchangeSource[T]{inner: inner, codec: codec, name: name, ts: env.Timestamp}
				if eventTime {
					x.time = newReceiverTime(tasks)
				}
				return x, nil
			}, sourceOptions[T]{})(env)
			if err != nil || x.time == nil {
				return st, err
			}
			st.Instance = receiveInstance{readerInstance: st.Instance.(readerInstance), time: x.time}
			return st, nil
		}
		return send, receive, nil
	}
	return exchangeCut{from: from, out: engine.TypeOf[T](), ends: ends}
}

// taskGraph returns the graph a task of a group job runs: p's, with every
// keyed edge cut into an exchange of cl.
func (p *Pipeline) taskGraph(ctx context.Context, cl Cluster, tasks, maxParallelism int) (*engine.Graph, error) {
	g := &engine.Graph{Name: p.g.Name}
	copies := make(map[*engine.Node]*engine.Node, len(p.g.Nodes))
	for _, n := range p.g.Nodes {
		inputs := make([]*engine.Node, len(n.Inputs))
		for i, e := range n.Inputs {
			inputs[i] = copies[e.From]
			if e.Part == engine.Hashed {
				recv, err := p.cut(ctx, g, cl, inputs[i], n, tasks, maxParallelism)
				if err != nil {
					return nil, err
				}
				inputs[i] = recv
			}
		}
		c := g.Add(n.Name, n.Kind, n.Out)
		c.Parallelism, c.Keyed, c.Build = n.Parallelism, n.Keyed, n.Build
		c.AssignsEventTime, c.EventTime = n.AssignsEventTime, n.EventTime
		for _, from := range inputs {
			engine.Connect(from, c, engine.Forward, nil)
		}
		copies[n] = c
	}
	return g, nil
}

// cut adds to g the exchange that replaces the keyed edge from from into
// to, and returns its receive node, which feeds to.
func (p *Pipeline) cut(ctx context.Context, g *engine.Graph, cl Cluster, from, to *engine.Node, tasks, maxParallelism int) (*engine.Node, error) {
	x, ok := p.cuts[to]
	if !ok {
		return nil, fmt.Errorf("internal error: keyed edge into %q has no exchange", to.Name)
	}
	name := exchangeName(to.Name)
	sendName, recvName := name+".send", name+".receive"
	for _, s := range []string{sendName, recvName} {
		if p.names[s] || !validName.MatchString(s) {
			return nil, fmt.Errorf("%w: operator %q: the exchange into it in a job spread over processes needs an operator called %q, which is taken or too long: rename %q",
				ErrInvalidPipeline, to.Name, s, to.Name)
		}
	}
	send, receive, err := x.ends(ctx, cl, name, tasks, maxParallelism)
	if err != nil {
		return nil, err
	}
	sink := g.Add(sendName, engine.SinkNode, nil)
	sink.Build = send
	engine.Connect(from, sink, engine.Forward, nil)
	recv := g.Add(recvName, engine.SourceNode, x.out)
	recv.Build, recv.EventTime = receive, x.from.EventTime
	return recv, nil
}

// recordCodec returns the codec of the records from sends into the keyed
// operator into: WithCodec's, the built-in one, or JSON if it is lossless
// for T.
func recordCodec[T any](p *Pipeline, from *engine.Node, into string) (state.Codec[T], error) {
	if c, ok := p.codecs[from]; ok {
		return c.(state.Codec[T]), nil
	}
	if c := state.CodecFor[T](); c != nil {
		return c, nil
	}
	t := reflect.TypeFor[T]()
	if err := jsonLossless(t, t.String(), map[reflect.Type]bool{}); err != nil {
		return nil, fmt.Errorf("%w: KeyBy after %q (into %q): records of type %s need a codec to cross processes (--group), and JSON would lose %v; give one with runtime.WithCodec(stream, codec) on the stream before KeyBy",
			ErrInvalidPipeline, from.Name, into, t, err)
	}
	return state.JSON[T](), nil
}

var (
	jsonMarshaler   = reflect.TypeFor[json.Marshaler]()
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// jsonLossless reports what of a value of type t (called path in the
// error) JSON would drop or could not decode back; seen ends recursive
// types.
func jsonLossless(t reflect.Type, path string, seen map[reflect.Type]bool) error {
	if seen[t] {
		return nil
	}
	seen[t] = true
	if ownEncoding(t) {
		return nil
	}
	switch t.Kind() {
	case reflect.Bool, reflect.String, reflect.Float32, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return nil
	case reflect.Pointer:
		return jsonLossless(t.Elem(), path, seen)
	case reflect.Slice, reflect.Array:
		return jsonLossless(t.Elem(), path+"[]", seen)
	case reflect.Map:
		if k := t.Key(); k.Kind() != reflect.String && !isInteger(k) && !ownEncoding(k) {
			return fmt.Errorf("the keys of %s (type %s)", path, k)
		}
		return jsonLossless(t.Elem(), path+"[]", seen)
	case reflect.Struct:
		return structLossless(t, path, seen)
	}
	return fmt.Errorf("%s (a %s)", path, t.Kind())
}

// structLossless is jsonLossless for a struct.
func structLossless(t reflect.Type, path string, seen map[reflect.Type]bool) error {
	names := map[string]string{} // JSON name → field, to catch collisions
	for i := range t.NumField() {
		f := t.Field(i)
		fp := path + "." + f.Name
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case f.Tag.Get("json") == "-":
			return fmt.Errorf("field %s (tagged json:\"-\")", fp)
		case f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct:
			// Embedded: JSON promotes its fields, exported or not.
			if err := jsonLossless(f.Type, fp, seen); err != nil {
				return err
			}
			continue
		case !f.IsExported():
			return fmt.Errorf("unexported field %s", fp)
		}
		name := f.Name
		if tag != "" {
			name = tag
		}
		if prev, dup := names[name]; dup {
			return fmt.Errorf("fields %s and %s, both %q in JSON", prev, fp, name)
		}
		names[name] = fp
		if err := jsonLossless(f.Type, fp, seen); err != nil {
			return err
		}
	}
	return nil
}

// ownEncoding reports whether t encodes and decodes itself in JSON.
func ownEncoding(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	self := func(m, u reflect.Type) bool { return (t.Implements(m) || pt.Implements(m)) && pt.Implements(u) }
	return self(jsonMarshaler, jsonUnmarshaler) || self(textMarshaler, textUnmarshaler)
}

func isInteger(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// failingEncoder is implemented by codecs that report a value they cannot
// encode rather than panic (state.JSONCodec).
type failingEncoder[T any] interface {
	Encode(dst []byte, v T) ([]byte, error)
}

// encoderOf returns c's encoding with an error result.
func encoderOf[T any](c state.Codec[T]) func(dst []byte, v T) ([]byte, error) {
	if e, ok := c.(failingEncoder[T]); ok {
		return e.Encode
	}
	return func(dst []byte, v T) ([]byte, error) { return c.Append(dst, v), nil }
}

// exchangeSink is the send side of an exchange: a Sink[T] that encodes
// each record and writes it to the cluster's sink, which carries it to
// the task route names.
type exchangeSink[K comparable, T any] struct {
	inner  Sink[ExchangeRecord]
	encode func(dst []byte, v T) ([]byte, error)
	key    func(T) K
	keys   state.Codec[K]
	route  func(T) int
	tasks  int         // the receiving tasks, which every marker goes to
	self   int         // this task, the Sender of its markers
	ts     *int64      // the record's event time; nil without
	time   *senderTime // nil without event time
}

func (s *exchangeSink[K, T]) Open(ctx context.Context, info TaskInfo, restored []byte) error {
	s.self = info.Subtask
	return s.inner.Open(ctx, info, restored)
}

// Write encodes key and record into one new buffer: the cluster's sink may
// keep the record until it commits.
func (s *exchangeSink[K, T]) Write(ctx context.Context, rec T) error {
	buf := s.keys.Append(make([]byte, 0, 64), s.key(rec))
	n := len(buf)
	buf, err := s.encode(buf, rec)
	if err != nil {
		return err
	}
	ts := NoTimestamp
	if s.ts != nil {
		ts = *s.ts
	}
	return s.inner.Write(ctx, ExchangeRecord{Task: s.route(rec), Key: buf[:n:n], Value: buf[n:], Timestamp: ts})
}

// PreCommit writes the markers of the task's event time, if it changed,
// last in the checkpoint's transaction.
func (s *exchangeSink[K, T]) PreCommit(ctx context.Context, id uint64) ([]byte, error) {
	if s.time != nil {
		if err := s.mark(ctx); err != nil {
			return nil, err
		}
	}
	return s.inner.PreCommit(ctx, id)
}

// mark writes to every task a WatermarkMarker if the task's watermark
// advanced since the last, then an IdleMarker if the task turned idle.
func (s *exchangeSink[K, T]) mark(ctx context.Context) error {
	t := s.time
	if t.wm > t.sent {
		if err := s.writeMarkers(ctx, WatermarkMarker, t.wm); err != nil {
			return err
		}
		t.sent, t.sentIdle = t.wm, false
	}
	if *t.idle && !t.sentIdle {
		if err := s.writeMarkers(ctx, IdleMarker, t.wm); err != nil {
			return err
		}
		t.sentIdle = true
	}
	return nil
}

func (s *exchangeSink[K, T]) writeMarkers(ctx context.Context, m Marker, wm int64) error {
	for task := range s.tasks {
		if err := s.inner.Write(ctx, ExchangeRecord{Task: task, Timestamp: wm, Marker: m, Sender: s.self}); err != nil {
			return fmt.Errorf("write a watermark marker to task %d: %w", task, err)
		}
	}
	return nil
}

func (s *exchangeSink[K, T]) Commit(ctx context.Context, id uint64) error {
	return s.inner.Commit(ctx, id)
}

func (s *exchangeSink[K, T]) Close() error { return s.inner.Close() }

// EndOfInput passes the end of a bounded input on to the cluster's sink, if
// it wants it: an exchange can then tell its readers that every writer has
// ended, and a bounded group job ends.
func (s *exchangeSink[K, T]) EndOfInput() {
	if e, ok := s.inner.(EndOfInputHandler); ok {
		e.EndOfInput()
	}
}

// user makes the optional interfaces of the cluster's sink count (reports).
func (s *exchangeSink[K, T]) user() any { return s.inner }

// exchangeSource is the receive side of an exchange: a Source[T] that
// decodes what the cluster's source reads.
type exchangeSource[T any] struct {
	inner Source[ExchangeRecord]
	codec state.Codec[T]
	name  string
	ts    *int64        // the record's event time; nil without
	time  *receiverTime // nil without event time
	out   Collector[T]  // during Read
	err   error         // the first record that did not decode
}

func (s *exchangeSource[T]) Open(ctx context.Context, info TaskInfo, restored []byte) error {
	if s.time != nil {
		var err error
		if restored, err = s.time.restore(restored); err != nil {
			return fmt.Errorf("exchange %q: restore: %w", s.name, err)
		}
	}
	return s.inner.Open(ctx, info, restored)
}

func (s *exchangeSource[T]) Read(ctx context.Context, out Collector[T]) error {
	s.out = out
	err := s.inner.Read(ctx, s)
	if s.err != nil {
		return s.err
	}
	return err
}

// Collect decodes one record. After a failure it emits nothing more: Read
// fails the job, which restarts from the last checkpoint.
func (s *exchangeSource[T]) Collect(r ExchangeRecord) {
	if s.err != nil {
		return
	}
	if r.Marker != NoMarker {
		// NB: markers on an exchange without event time are left by a
		// run of the job that had it: nothing to do with them.
		if s.time != nil {
			if err := s.time.mark(r); err != nil {
				s.err = fmt.Errorf("exchange %q: %w", s.name, err)
			}
		}
		return
	}
	rec, err := s.codec.Decode(r.Value)
	if err != nil {
		s.err = fmt.Errorf("exchange %q: decode a record: %w", s.name, err)
		return
	}
	if s.ts != nil {
		*s.ts = r.Timestamp
	}
	s.out.Collect(rec)
}

// Snapshot returns the cluster's source's state, after the senders' event
// time if the exchange carries it.
func (s *exchangeSource[T]) Snapshot() ([]byte, error) {
	inner, err := s.inner.Snapshot()
	if err != nil || s.time == nil {
		return inner, err
	}
	return append(s.time.append(nil), inner...), nil
}

func (s *exchangeSource[T]) Close() error { return s.inner.Close() }

// CheckpointComplete passes completed checkpoints on to the cluster's
// source, if it listens.
func (s *exchangeSource[T]) CheckpointComplete(ctx context.Context, id uint64) error {
	if l, ok := s.inner.(CheckpointListener); ok {
		return l.CheckpointComplete(ctx, id)
	}
	return nil
}

// user makes the optional interfaces of the cluster's source count
// (reports).
func (s *exchangeSource[T]) user() any { return s.inner }

// senderTime is what the send side of an exchange that carries event time
// knows of its task's: the watermark and idleness it reached, and what its
// markers said last.
type senderTime struct {
	wm       int64 // the task's watermark (Instance.Watermark)
	idle     *bool // the task is idle (engine.Env.Idle)
	sent     int64 // the watermark of the last WatermarkMarkers, MinWatermark before any
	sentIdle bool  // IdleMarkers were written after them
}

// sendInstance is the Instance of an exchange's send side that carries
// event time: it keeps the task's watermark for the markers.
type sendInstance struct {
	engine.Instance
	time *senderTime
}

func (s sendInstance) Watermark(wm int64) {
	s.time.wm = wm
	s.Instance.Watermark(wm)
}

// receiverTime is what the receive side of an exchange that carries event
// time knows of its senders' (one per task), from their markers.
type receiverTime struct {
	wms     []int64 // per sender: the largest watermark it sent, MinWatermark before any
	idle    []bool  // per sender: idle since its last watermark
	emitted int64   // the watermark EventTime last returned
	idleOut bool    // EventTime reported the receiver idle, and no watermark since
}

func newReceiverTime(senders int) *receiverTime {
	r := &receiverTime{wms: make([]int64, senders), idle: make([]bool, senders), emitted: MinWatermark}
	for i := range r.wms {
		r.wms[i] = MinWatermark
	}
	return r
}

// errMarker is wrapped by the errors of a marker the receiver cannot take.
var errMarker = errors.New("bad watermark marker")

// mark takes in a sender's marker. A watermark below one the sender sent
// before (a sender restarted from a checkpoint sends its watermarks again)
// changes nothing.
func (r *receiverTime) mark(m ExchangeRecord) error {
	if m.Sender < 0 || m.Sender >= len(r.wms) {
		return fmt.Errorf("%w: sender %d of %d tasks", errMarker, m.Sender, len(r.wms))
	}
	switch m.Marker {
	case WatermarkMarker:
		r.wms[m.Sender], r.idle[m.Sender] = max(r.wms[m.Sender], m.Timestamp), false
	case IdleMarker:
		r.idle[m.Sender] = true
	default:
		return fmt.Errorf("%w: unknown kind %d from sender %d", errMarker, m.Marker, m.Sender)
	}
	return nil
}

// eventTime is the receive side's engine.WatermarkGenerator.EventTime: the
// minimum over the senders not idle, if it advanced, or idle when every
// sender is.
func (r *receiverTime) eventTime() (wm int64, advanced, idle bool) {
	wm, active := MaxWatermark, false
	for i, w := range r.wms {
		if !r.idle[i] {
			wm, active = min(wm, w), true
		}
	}
	if !active {
		idle, r.idleOut = !r.idleOut, true
		return 0, false, idle
	}
	if wm <= r.emitted || wm == MinWatermark {
		return 0, false, false
	}
	r.emitted, r.idleOut = wm, false
	return wm, true, false
}

// receiverStateMagic begins the state of a receive side that carries event
// time: then the senders' count, each sender's watermark (varint) and
// idleness (a byte), then the cluster's source's state. A state without it
// was taken by a run of the job without event time: its senders start
// from MinWatermark.
const receiverStateMagic = "weir.exchange.eventtime.1:"

// append appends the senders' event time, as receiverStateMagic says.
func (r *receiverTime) append(dst []byte) []byte {
	dst = binary.AppendUvarint(append(dst, receiverStateMagic...), uint64(len(r.wms)))
	for i, w := range r.wms {
		idle := byte(0)
		if r.idle[i] {
			idle = 1
		}
		dst = append(binary.AppendVarint(dst, w), idle)
	}
	return dst
}

// restore takes the senders' event time from the restored state and
// returns the cluster's source's.
func (r *receiverTime) restore(restored []byte) ([]byte, error) {
	b, ok := bytes.CutPrefix(restored, []byte(receiverStateMagic))
	if !ok {
		return restored, nil
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n != uint64(len(r.wms)) {
		return nil, fmt.Errorf("%w: the senders' event time is for %d tasks, the job has %d", ErrIncompatibleCheckpoint, n, len(r.wms))
	}
	b = b[k:]
	for i := range r.wms {
		w, k := binary.Varint(b)
		if k <= 0 || len(b) < k+1 {
			return nil, fmt.Errorf("%w: the senders' event time is cut short at sender %d", ErrIncompatibleCheckpoint, i)
		}
		r.wms[i], r.idle[i], b = w, b[k] == 1, b[k+1:]
	}
	if len(b) == 0 {
		return nil, nil // the cluster's source had no state: a fresh start
	}
	return b, nil
}

// readerInstance is the Instance of a source.
type readerInstance interface {
	engine.Instance
	engine.Reader
}

// receiveInstance is the Instance of an exchange's receive side that
// carries event time: its watermarks are the senders' (receiverTime). The
// senders' event time is in the source's own state, so the task keeps no
// event time of its own in checkpoints.
type receiveInstance struct {
	readerInstance
	time *receiverTime
}

func (r receiveInstance) EventTime(time.Time) (int64, bool, bool) { return r.time.eventTime() }
func (receiveInstance) MaxEventTime() (int64, bool)               { return 0, false }
func (receiveInstance) RestoreEventTime(int64)                    {}
