// Package keying lets package operators build runtime.KeyedStream values
// and read their key function and key codec without a public constructor
// in runtime: the runtime's user API keys streams only through
// operators.KeyBy. Package runtime sets both functions when it is
// initialized. Values cross as any because Go has no generic function
// values; they are checked once, while the pipeline is built, never per
// record.
package keying

var (
	// Key makes *dst, a *runtime.KeyedStream[K, T], the stream s (a
	// runtime.Stream[T]) keyed by key (a func(T) K) with keys encoded by
	// codec (a state.Codec[K], or nil for the built-in codec of K).
	Key func(dst, s, key, codec any)
	// Parts returns the key function (a func(T) K) and the key codec (a
	// state.Codec[K]) of *ks, a *runtime.KeyedStream[K, T].
	Parts func(ks any) (key, codec any)
)
