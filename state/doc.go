// Package state holds the keyed state of weir operators: typed handles
// (Value, Map, List, Namespaced) and the codecs that turn keys and values
// into bytes. The runtime keeps the state in Pebble (the backend is
// internal), checkpoints it with the job and moves it between subtasks when
// a job is restored with another parallelism.
//
// A keyed operator creates its handles once, from the Scope its context
// gives it, and uses them for each record; every handle reads and writes
// the state of the record's key:
//
//	seen, err := state.NewValue(ctx.Scope, "seen", state.Int64,
//		state.WithTTL(24*time.Hour, state.OnCreateAndWrite))
//	buffered, err := state.NewList(ctx.Scope, "buffered", state.JSON[Order]())
//	…
//	n, _ := seen.Get()   // this key's count, absent a day after its last write
//	seen.Put(n + 1)
//	buffered.Add(order)  // appended; the next checkpoint writes only the new orders
//	for o := range buffered.All() { … }
//
// # Values that refer to memory
//
// Get (and All) return []byte values as copies the caller may keep and
// change. Any other value that refers to memory (a slice, a map, a pointer)
// is the cached value itself and must not be changed: change it with
// Update, whose function may change it in place, or Put a new one; a change
// behind the state's back may miss checkpoints, or reach one taken before
// it. Put keeps what it is given, a []byte too: do not change it after.
// (Copying a 16-byte []byte costs one allocation: BenchmarkMapGetBytes,
// copy against shared.)
//
// # Time to live
//
// WithTTL gives every value of a state (each Map entry, each List element)
// a time to live in processing time (the wall clock), restarted
// by writes, or by reads and writes, as in Flink. Expired values are never
// returned. They are removed with each checkpoint, a bounded part of each
// state at a time (up to max(1024, cached entries/32) cache slots and as
// many entries only Pebble holds): cached ones in the epoch
// after the checkpoint, the others in the checkpoint's own delta. Pebble has
// no compaction filter to drop them as it compacts. A read that meets an
// expired value removes it too. The timestamps are checkpointed, so after a
// restore from an old checkpoint, values older than their TTL by the wall
// clock are expired. A state without TTL stores no timestamps.
//
// # Layout
//
// Every record of a keyed stream belongs to a key group: a stable hash of its
// key modulo the job's maximum parallelism (runtime.Config.MaxParallelism,
// default 128). Key groups, not
// subtasks, are the unit of state ownership; a subtask owns a contiguous range
// of them, so a restore with another parallelism can hand ranges to other
// subtasks. In Pebble every entry is stored under
//
//	[key group: 2 bytes][state id: 4 bytes][encoded key]
//
// where the state id is a hash of the state's name, so state is found by name
// after a restart. Each state's kind (Value, Map, List, Namespaced, timers,
// with or without TTL) is recorded under [0xff][0][state id], outside every
// key group, so that a state registered as another kind than it was stored
// as fails (ErrKindChanged) instead of misreading its bytes.
//
// # Cache and checkpoints
//
// Pebble is the store of record, but reads and writes go through an in-memory
// cache of decoded entries, one hash table per state (our own, with linear
// probing: a lookup into a large state costs one CPU cache miss where a Go
// map costs two, and looking keys up is most of a keyed operator's work).
// Writes are never written
// through: an entry changed in epoch n (the records between barriers n-1 and
// n) is only marked dirty. When barrier n passes, the backend closes the
// epoch in O(1) by swapping the list of dirty keys; the frozen entries are
// then encoded a slice at a time between records, walking
// the dirty keys, or all slots when most entries changed, and an entry
// changed again before it was encoded is encoded first (copy on write), so
// the encoded delta holds exactly the state at the barrier. A background
// goroutine sorts the delta, writes it as one sstable, ingests that into
// Pebble and takes a Pebble checkpoint (hard links to immutable sstables)
// into the checkpoint directory. A checkpoint therefore writes only what
// changed since the last one, and the pause at the barrier does not grow with
// the state.
//
// One exception keeps small, busy states cheap: when the cache holds all of
// the state and at least three quarters of it changed in the epoch, the
// snapshot is full: every live entry, ingested with an excise of the whole
// key space, so that the new table replaces every older one. It writes at
// most 4/3 of what the delta would, and leaves Pebble nothing to compact;
// with deltas, a state rewritten every second makes Pebble merge the same
// keys over and over. The cache holds all of the state when the database
// started empty, or after a restore, when each state registered on it (each
// namespace of a Namespaced state) fitted the cache bound and was loaded
// whole (the engine's subtasks load it between records, so that a restore
// does not wait for it), and Pebble holds no state of names nobody
// registered (which a full snapshot would delete); an eviction ends it.
//
// The timers of runtime.TimerService are keyed state too, stored and
// checkpointed the same way.
//
// A List is one entry per key, like a Map, but it is not rewritten when it
// grows: a delta snapshot writes the elements appended to a list in the
// epoch as a Pebble merge operand, which Pebble's default merger
// concatenates with the list it holds (elements are stored length-prefixed,
// back to back, so that a concatenation of lists is the concatenated list).
// Replacing or clearing a list writes it whole, or deletes it; a full
// snapshot writes every list whole. Buffering 300 elements a key over 10k
// keys with a checkpoint every 100k appends: 0.74-0.88 µs an append as a
// List, 1.44-1.50 µs as a slice in a Value, rewritten at every checkpoint
// (BenchmarkListAddCheckpointed, on a loaded machine).
//
// A Namespaced state holds a value per key and namespace (for windows: the
// window start), stored under
//
//	[key group][state id][namespace][encoded key]
//
// with one cache per namespace, so that a whole namespace is visited (All)
// or dropped (Drop) at once: dropping forgets its cache and adds one range
// deletion per key group to the next checkpoint's sstable.
//
// The cache bound is in bytes (runtime.Config.StateCacheBytes, flag
// --state-cache, default 256 MiB, shared equally by a job's keyed
// subtasks), over all the states of a subtask, estimated per entry as twice
// its hash table slot plus, for keys and values that hold pointers, the
// mean encoded length of key and value. Entries whose latest change
// is durable in Pebble may be evicted when the cache is full, first from
// the state that grows, then from the others; dirty entries stay until their epoch is written, so the
// memory a subtask needs beyond the cache bound is the state it changes
// within one checkpoint interval. (Eviction also waits while a checkpoint
// walks all slots, which must not see entries move, and while a full
// snapshot drains, which owes every entry of the cache.)
//
// # Codecs
//
// A Codec turns keys and values into bytes. Fixed-width big-endian codecs
// cover Go's basic types; JSON covers any user type with encoding/json's
// semantics, built on github.com/segmentio/encoding/json, which measured
// 4x faster than encoding/json on a decode-modify-encode of a small record
// (see JSONCodec for the candidates measured). A JSONCodec's methods also
// serve as a Kafka source's value decoder and a Kafka sink's value encoder,
// so a job has one serde for its connectors and its state.
package state
