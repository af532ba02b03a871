// Package state holds the keyed state of weir operators: typed handles
// (Value, Map, Namespaced), the codecs that turn keys and values into bytes,
// the key-group partitioning that lets state move between subtasks, and the
// Backend that keeps it all in Pebble.
//
// # Layout
//
// Every record of a keyed stream belongs to a key group: a stable hash of its
// key modulo the job's maximum parallelism (default 128). Key groups, not
// subtasks, are the unit of state ownership; a subtask owns a contiguous range
// of them, so a restore with another parallelism can hand ranges to other
// subtasks. In Pebble every entry is stored under
//
//	[key group: 2 bytes][state id: 4 bytes][encoded key]
//
// where the state id is a hash of the state's name, so state is found by name
// after a restart.
//
// # Cache and checkpoints
//
// Pebble is the store of record, but reads and writes go through an in-memory
// cache of decoded entries, one hash table per state (our own, with linear
// probing: a lookup into a large state costs one CPU cache miss where a Go
// map costs two, and looking keys up is most of a keyed operator's work).
// Writes are never written
// through: an entry changed in epoch n (the records between barriers n-1 and
// n) is only marked dirty. When barrier n passes, Backend.Freeze closes the
// epoch in O(1) by swapping the list of dirty keys; the frozen entries are
// then encoded a slice at a time between records (Backend.Drain), walking
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
// whole, and Pebble holds no state of names nobody registered (which a full
// snapshot would delete); an eviction ends it.
//
// Timers (see Timers) are keyed state too, stored and checkpointed the same
// way.
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
// Entries whose latest change is durable in Pebble may be evicted when the
// cache is full; dirty entries stay until their epoch is written, so the
// memory a subtask needs beyond the cache bound is the state it changes
// within one checkpoint interval. (Eviction also waits while a checkpoint
// walks all slots, which must not see entries move, and while a full
// snapshot drains, which owes every entry of the cache.)
package state
