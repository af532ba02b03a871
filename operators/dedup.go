package operators

import (
	"fmt"
	"time"

	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// DedupOption configures Dedup.
type DedupOption func(*dedupOptions)

type dedupOptions struct {
	eventTime bool // else processing time
}

// DedupEventTime measures the TTL of Dedup in event time, by the timestamp
// each record carries (the stream must have event time, see Window): an id
// is remembered from the event time of its first record until the
// watermark passes it plus the TTL. Without this option, Dedup measures
// the TTL on the wall clock (processing time).
func DedupEventTime() DedupOption {
	return func(o *dedupOptions) { o.eventTime = true }
}

// Dedup drops the records whose id was seen within ttl before: the first
// record with an id passes, and later ones are dropped while the id is
// remembered. This is the idempotent consumer: put it after an at-least-once
// input and its redeliveries disappear, exactly once across crashes, since
// the seen ids are keyed state.
//
// In processing time (the default) an id is remembered for ttl of wall-clock
// time after its first record arrived. With DedupEventTime(), a record
// whose id was first seen at event time t is a duplicate if its own event
// time is below t+ttl; the id is forgotten when the watermark reaches t+ttl.
// Either way a timer forgets the id, so state stays bounded by the ids of one
// TTL. The stream is keyed by id, so ids need a built-in key type (string,
// integers, floats, bools).
func Dedup[K comparable, T any](s runtime.Stream[T], name string, id func(T) K, ttl time.Duration, opts ...DedupOption) runtime.Stream[T] {
	var o dedupOptions
	for _, opt := range opts {
		opt(&o)
	}
	p := s.Pipeline()
	if o.eventTime {
		needEventTime(s, fmt.Sprintf("dedup %q with DedupEventTime", name))
	}
	ms := millis(p, fmt.Sprintf("dedup %q: ttl", name), ttl)
	if id == nil {
		p.Fail(fmt.Errorf("dedup %q: nil id function", name))
	}
	return runtime.ApplyKeyed(KeyBy(s, id), name, func() runtime.KeyedOperator[K, T, T] {
		return &dedupOp[K, T]{ttl: ms, eventTime: o.eventTime}
	})
}

// dedupOp keeps, per id, the time at which the id is forgotten.
type dedupOp[K comparable, T any] struct {
	runtime.OperatorBase
	ttl       int64
	eventTime bool
	env       timeEnv[K]
	out       runtime.Collector[T]
	expiry    *state.Value[K, int64]
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
	if o.eventTime {
		var ok bool
		if now, ok = o.env.timestamp(); !ok {
			return
		}
	} else {
		now = o.env.now()
	}
	old, seen := o.expiry.Get()
	if seen && now < old {
		return // duplicate
	}
	o.out.Collect(rec)
	exp := addSat(now, o.ttl)
	if o.eventTime {
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
