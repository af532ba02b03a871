package operators

import (
	"fmt"
	"time"

	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// DedupOption configures Dedup.
type DedupOption[T any] func(*dedupOptions[T])

type dedupOptions[T any] struct {
	ts func(T) int64 // event time; nil: processing time
}

// DedupEventTime measures the TTL of Dedup in event time: ts returns a
// record's event time in ms, and an id is remembered from the event time of
// its first record until the watermark passes it plus the TTL. Without this
// option, Dedup measures the TTL on the wall clock (processing time).
func DedupEventTime[T any](ts func(T) int64) DedupOption[T] {
	return func(o *dedupOptions[T]) { o.ts = ts }
}

// Dedup drops the records whose id was seen within ttl before: the first
// record with an id passes, and later ones are dropped while the id is
// remembered. This is the idempotent consumer: put it after an at-least-once
// input and its redeliveries disappear, exactly once across crashes, since
// the seen ids are keyed state.
//
// In processing time (the default) an id is remembered for ttl of wall-clock
// time after its first record arrived. With DedupEventTime(ts), a record
// whose id was first seen at event time t is a duplicate if its own event
// time is below t+ttl; the id is forgotten when the watermark reaches t+ttl.
// Either way a timer forgets the id, so state stays bounded by the ids of one
// TTL. The stream is keyed by id, so ids need a built-in key type (string,
// integers, floats, bools).
func Dedup[K comparable, T any](s runtime.Stream[T], name string, id func(T) K, ttl time.Duration, opts ...DedupOption[T]) runtime.Stream[T] {
	var o dedupOptions[T]
	for _, opt := range opts {
		opt(&o)
	}
	p := s.Pipeline()
	ms := millis(p, fmt.Sprintf("dedup %q: ttl", name), ttl)
	if id == nil {
		p.Fail(fmt.Errorf("dedup %q: nil id function", name))
	}
	return runtime.ApplyKeyed(KeyBy(s, id), name, func() runtime.KeyedOperator[K, T, T] {
		return &dedupOp[K, T]{ttl: ms, ts: o.ts}
	})
}

// dedupOp keeps, per id, the time at which the id is forgotten.
type dedupOp[K comparable, T any] struct {
	runtime.OperatorBase
	ttl    int64
	ts     func(T) int64
	env    timeEnv[K]
	out    runtime.Collector[T]
	expiry *state.Value[K, int64]
}

func (o *dedupOp[K, T]) Open(ctx *runtime.KeyedContext[K], out runtime.Collector[T]) error {
	return o.open(envOf(ctx), out)
}

func (o *dedupOp[K, T]) open(env timeEnv[K], out runtime.Collector[T]) error {
	o.env, o.out = env, out
	var err error
	o.expiry, err = state.NewValue(env.scope, "expiry", state.Int64)
	return err
}

func (o *dedupOp[K, T]) Process(_ K, rec T) {
	var now int64
	if o.ts != nil {
		now = o.ts(rec)
	} else {
		now = o.env.now()
	}
	old, seen := o.expiry.Get()
	if seen && now < old {
		return // duplicate
	}
	o.out.Collect(rec)
	exp := addSat(now, o.ttl)
	if o.ts != nil {
		if exp <= o.env.watermark() { // forgotten at once: the watermark is past its TTL
			if seen {
				o.expiry.Delete()
			}
			return
		}
		o.expiry.Put(exp)
		o.env.timers.RegisterEventTime(exp)
		return
	}
	o.expiry.Put(exp)
	o.env.timers.RegisterProcessingTime(exp)
}

func (o *dedupOp[K, T]) OnTimer(_ K, t runtime.Timer) {
	// An id seen again after its TTL has a later expiry and timer; only the
	// timer of the current expiry forgets it.
	if exp, ok := o.expiry.Get(); ok && exp <= t.At {
		o.expiry.Delete()
	}
}
