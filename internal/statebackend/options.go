package statebackend

import (
	"fmt"
	"unsafe"
)

// Option configures a state handle (see NewValue).
type Option func(*options)

type options struct {
	ttl *ttlPolicy
}

// handleOptions applies opts for the state called name, whose values codec
// encodes, and validates them.
func handleOptions[T any](name string, codec Codec[T], opts []Option) (options, error) {
	var o options
	if codec == nil {
		return o, fmt.Errorf("state: %q: nil value codec", name)
	}
	for _, opt := range opts {
		opt(&o)
	}
	if p := o.ttl; p != nil {
		if err := p.validate(); err != nil {
			return o, fmt.Errorf("state: %q: %w", name, err)
		}
	}
	return o, nil
}

// cloner returns a function that copies values of type T that callers of
// Get could otherwise change in the cache behind the checkpoints' back
// (byte slices), or nil for other types.
func cloner[T any]() func(T) T {
	var zero T
	if _, ok := any(zero).([]byte); !ok {
		return nil
	}
	return func(v T) T {
		b := *(*[]byte)(unsafe.Pointer(&v))
		if b == nil {
			return v
		}
		c := append(make([]byte, 0, len(b)), b...)
		return *(*T)(unsafe.Pointer(&c))
	}
}
