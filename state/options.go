package state

import (
	"time"

	"github.com/weirstream/weir/internal/statebackend"
)

// Option configures a state handle (see NewValue).
type Option struct{ o statebackend.Option }

// TTLUpdate says which accesses restart the time to live of a value with a
// TTL (see WithTTL).
type TTLUpdate uint8

const (
	// OnCreateAndWrite restarts it when the value is written (Flink's
	// UpdateType.OnCreateAndWrite).
	OnCreateAndWrite TTLUpdate = TTLUpdate(statebackend.OnCreateAndWrite)
	// OnReadAndWrite restarts it when the value is read or written (Flink's
	// UpdateType.OnReadAndWrite). A read then writes the value's new
	// timestamp, which the next checkpoint stores.
	OnReadAndWrite TTLUpdate = TTLUpdate(statebackend.OnReadAndWrite)
)

func (u TTLUpdate) String() string { return statebackend.TTLUpdate(u).String() }

// WithTTL gives every value of a state a time to live, with Flink's
// semantics: each value (each entry of a Map, each element of a List)
// carries the processing time (the wall clock) of its last
// update as update defines it, and expires ttl after it. An expired value
// is never returned: reads see it absent. Expired values are removed from
// memory and from Pebble by a cleanup that runs with each checkpoint with
// bounded work (see the package doc), and by reads that meet them.
//
// A value with a TTL is stored with its 8-byte timestamp; states without
// one store none and pay nothing. The timestamps are checkpointed with the
// values, so a TTL measures wall-clock time across restarts: a job
// restored from a checkpoint taken an hour ago finds every value with a TTL
// under an hour expired. Adding or removing a TTL changes how a state is
// stored: it needs a new state name (registering a restored state with a
// TTL it was not stored with, or without one it was, fails with
// ErrKindChanged).
func WithTTL(ttl time.Duration, update TTLUpdate) Option {
	return Option{statebackend.WithTTL(ttl, statebackend.TTLUpdate(update))}
}

func implOptions(opts []Option) []statebackend.Option {
	if len(opts) == 0 {
		return nil
	}
	o := make([]statebackend.Option, 0, len(opts))
	for _, opt := range opts {
		if opt.o != nil { // the zero Option changes nothing
			o = append(o, opt.o)
		}
	}
	return o
}
