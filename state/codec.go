package state

import "github.com/weirstream/weir/internal/statebackend"

// ErrCorruptValue is wrapped by codecs when stored bytes cannot be decoded.
var ErrCorruptValue = statebackend.ErrCorruptValue

// ErrKindChanged is returned when a state is registered as another kind of
// state than the one stored under its name (a Value as a List, a state
// without TTL with one): its stored bytes would be misread.
var ErrKindChanged = statebackend.ErrKindChanged

// Codec turns values of type T into bytes and back. Append appends the
// encoding of v to dst; Decode must accept exactly what Append produced and
// must not retain src.
type Codec[T any] interface {
	Append(dst []byte, v T) []byte
	Decode(src []byte) (T, error)
}

// Codecs for common Go types. Integers use fixed-width big-endian encoding.
var (
	String  Codec[string]  = statebackend.String
	Bytes   Codec[[]byte]  = statebackend.Bytes
	Int64   Codec[int64]   = statebackend.Int64
	Int     Codec[int]     = statebackend.Int
	Uint64  Codec[uint64]  = statebackend.Uint64
	Int32   Codec[int32]   = statebackend.Int32
	Float64 Codec[float64] = statebackend.Float64
	Bool    Codec[bool]    = statebackend.Bool
)

// CodecFor returns the built-in codec for the common key and value types, or
// nil when T needs a user codec.
func CodecFor[T any]() Codec[T] {
	if c := statebackend.CodecFor[T](); c != nil {
		return c
	}
	return nil
}
