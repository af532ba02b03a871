package operators

import (
	"fmt"

	"github.com/weirstream/weir/internal/statebackend"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// KeepLastOption configures KeepLast.
type KeepLastOption func(*keepLastOptions)

type keepLastOptions struct {
	atCheckpoints bool
}

// KeepLastAtCheckpoints makes KeepLast emit each key's latest record once
// per checkpoint, at the barrier, instead of every record that becomes a
// key's latest: the upsert stream then holds one record per key changed in
// the checkpoint's interval, and what its sink commits at each checkpoint
// folds into the same table as without the option. (This is Flink's
// mini-batch for deduplication, which its published Nexmark runs enable,
// and Kafka Streams' record cache in front of a KTable.)
//
// A sink that commits at checkpoints (every exactly-once sink) makes the
// records visible when the checkpoint completes, so its readers see each
// committed table no later than without the option, and with fewer
// intermediate rows: when keys change many times an interval, the writes
// downstream drop by that factor. Readers of a sink that writes at once
// see changes up to one checkpoint interval later. The records are emitted
// while the stream is paused for the barrier, so the pause grows with the
// number of keys changed in the interval. The stream must not carry event
// time: the records emitted at a barrier would be behind the watermark the
// operator forwarded before it.
func KeepLastAtCheckpoints() KeepLastOption {
	return func(o *keepLastOptions) { o.atCheckpoints = true }
}

// KeepLast keeps, per key of s, its latest record by later (later(a, b)
// reports whether a is later than b: by event time, or a version) and
// emits every record that becomes its key's latest: an upsert stream, in
// which a key's last record is its latest so far (SQL's deduplication
// keeping the last row, ROW_NUMBER() OVER (… ORDER BY time DESC) = 1).
// Records not later than their key's latest are dropped, so records that
// arrive out of order do not take a key back. It is Dedup's counterpart,
// which keeps the first record per id. State grows with the number of
// keys. recs encodes a record; nil selects the built-in codec.
func KeepLast[K comparable, T any](s runtime.KeyedStream[K, T], name string, later func(a, b T) bool, recs state.Codec[T], opts ...KeepLastOption) runtime.Stream[T] {
	var o keepLastOptions
	for _, opt := range opts {
		opt(&o)
	}
	p := s.Pipeline()
	recs = codecOr(p, recs, fmt.Sprintf("keep last %q: records", name))
	if later == nil {
		p.Fail(fmt.Errorf("keep last %q: nil later function", name))
	}
	if o.atCheckpoints && s.HasEventTime() {
		p.Fail(fmt.Errorf("keep last %q: KeepLastAtCheckpoints needs a stream without event time (its input %q has): the records it emits at a barrier would be late against the watermark", name, s.Name()))
	}
	return runtime.ApplyKeyed(s, name, func() runtime.KeyedOperator[K, T, T] {
		return &keepLastOp[K, T]{later: later, recs: recs, atCheckpoints: o.atCheckpoints}
	})
}

type keepLastOp[K comparable, T any] struct {
	runtime.OperatorBase
	later         func(a, b T) bool
	recs          state.Codec[T]
	atCheckpoints bool
	ctx           *runtime.KeyedContext[K]
	out           runtime.Collector[T]
	last          *state.Value[K, T]
	finished      bool // Finish emitted the last changes
}

func (o *keepLastOp[K, T]) Open(ctx *runtime.KeyedContext[K], out runtime.Collector[T]) error {
	var err error
	o.ctx, o.out = ctx, out
	o.last, err = state.NewValue(ctx.Scope, "last", o.recs)
	return err
}

func (o *keepLastOp[K, T]) Process(_ K, rec T) {
	if cur, ok := o.last.Get(); ok && !o.later(rec, cur) {
		return
	}
	o.last.Put(rec)
	if !o.atCheckpoints {
		o.out.Collect(rec)
	}
}

// Snapshot emits, with KeepLastAtCheckpoints, the latest record of each
// key changed since the last barrier; they reach the sink ahead of this
// barrier, in the checkpoint whose state holds them.
func (o *keepLastOp[K, T]) Snapshot(uint64) ([]byte, error) {
	if o.atCheckpoints && !o.finished {
		o.emitChanged()
	}
	return nil, nil
}

// Finish emits the last changes: at the end of a bounded input the final
// checkpoint follows, whose Snapshot must not emit them again (the state
// is unchanged until its barrier).
func (o *keepLastOp[K, T]) Finish() error {
	if o.atCheckpoints {
		o.emitChanged()
		o.finished = true
	}
	return nil
}

func (o *keepLastOp[K, T]) emitChanged() {
	o.ctx.SetTimestamp(runtime.NoTimestamp)
	(*statebackend.Value[K, T])(o.last).EachChanged(func(_ K, rec T) { o.out.Collect(rec) })
}
