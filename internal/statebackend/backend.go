package statebackend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/weirstream/weir/internal/keygroup"
)

// ErrDraining is returned by Freeze when the previous epoch has not been
// drained yet; the caller must finish Drain first.
var ErrDraining = errors.New("state: previous epoch still draining")

// Config configures a Backend.
type Config struct {
	// Dir is the directory of the subtask's live Pebble database. If it holds
	// a database (for example one restored from a checkpoint), it is opened.
	// It is a working copy: only its sstables are synced, what else a
	// checkpoint needs is synced in the checkpoint (see workingCopyFS), so
	// after a crash it is rebuilt from a checkpoint, never reopened.
	Dir string
	// MaxParallelism is the number of key groups (default
	// DefaultMaxParallelism).
	MaxParallelism int
	// CacheBytes bounds the estimated memory of the entries cached, over
	// all states (default DefaultCacheBytes, minimum MinCacheBytes; see
	// cachesize.go for the estimate). Entries changed since the last
	// durable checkpoint stay cached beyond the bound. A restored state
	// that fits is loaded whole at registration, or with WarmLater by
	// Warm.
	CacheBytes int64
	// WarmLater loads a restored state into the cache after its
	// registration, a budget at a time by Warm calls, instead of whole at
	// registration: the subtask starts at once (loading takes 0.5–0.8 µs
	// an entry, BenchmarkRestoreWarm, so 0.5–0.8 s for a million) and reads
	// what it needs from Pebble meanwhile. A Namespaced state still loads
	// each namespace whole when it is first used.
	WarmLater bool
	// BlockCache is a Pebble block cache shared by the job's backends; nil
	// gives this backend a small one of its own.
	BlockCache *pebble.Cache
	// Logger receives Pebble's log lines (default slog.Default()).
	Logger *slog.Logger
	// Now is the processing-time clock that state TTLs are measured with
	// (default time.Now); tests set a fake one.
	Now func() time.Time
	// Results receives the outcome of each snapshot; several backends may
	// share one channel (nil: the backend makes its own, see Results).
	Results chan Result
}

// EnsureDefaults fills in zero fields.
func (c *Config) EnsureDefaults() {
	if c.MaxParallelism == 0 {
		c.MaxParallelism = keygroup.DefaultMaxParallelism
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = DefaultCacheBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Results == nil {
		c.Results = make(chan Result, 4)
	}
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("state: Config.Dir is empty")
	case c.MaxParallelism < 1 || c.MaxParallelism > 1<<15:
		return fmt.Errorf("state: MaxParallelism %d out of range [1, 32768]", c.MaxParallelism)
	case c.CacheBytes < MinCacheBytes:
		return fmt.Errorf("state: CacheBytes %d too small (minimum %d)", c.CacheBytes, MinCacheBytes)
	}
	return nil
}

// DefaultCacheBytes is the default of Config.CacheBytes.
const DefaultCacheBytes = 256 << 20

// MinCacheBytes is the smallest Config.CacheBytes: a few dozen entries.
const MinCacheBytes = 1 << 10

// Backend holds the keyed state of one operator subtask. Apart from the
// background writer it starts, it is used from the subtask's goroutine only.
type Backend struct {
	cfg            Config
	maxParallelism int
	db             *pebble.DB
	// complete is true while every entry Pebble holds is also cached: the
	// database was empty at Open, or every state was loaded whole after a
	// restore (checked at each Freeze), and nothing has been evicted since. A
	// cache miss then needs no Pebble lookup, which spares every new key one.
	complete bool
	// orphans is 1 if Pebble holds state that no handle registered (a job
	// changed since its checkpoint), 0 if not, -1 until checked: a full
	// snapshot would delete it.
	orphans int8
	// full is set while the frozen epoch is snapshotted in full (see
	// Freeze).
	full bool

	tables []tableOps
	names  map[uint32]string
	// newKinds are the kinds of states registered since Open that Pebble
	// does not hold yet: the next snapshot writes them.
	newKinds []kindRecord
	// cleaners remove the expired values of states with a TTL.
	cleaners []cleaner

	// cachedBytes is the estimated memory of the cached entries, which
	// the tables' hash tables keep up to date (see cachesize.go).
	cachedBytes int64
	// noEvictBefore suppresses eviction until this many epochs have been
	// applied, after a pass over every state found too little to evict.
	noEvictBefore uint32
	loaded        bool // see table.loaded
	// warming counts the tables still loaded by Warm (Config.WarmLater).
	warming int
	// gets counts the reads of one key from Pebble on a cache miss, which
	// tests of the filter of stored keys count (see keyFilter).
	gets int
	// reader is the iterator that cache misses read Pebble through, opened
	// when ingested counted readerGen changes (see get); nil when closed.
	reader    *pebble.Iterator
	readerGen uint64
	// ingested counts the writer's changes of the database (ingests and
	// excises), which the reader must see once they are made.
	ingested atomic.Uint64

	epoch        uint32    // current epoch; changes are stamped with it
	frozenEpoch  uint32    // epoch being drained, or 0
	appliedEpoch uint32    // newest epoch whose changes are in Pebble
	delta        *delta    // changes of the frozen epoch, as they are encoded
	pending      *snapshot // frozen epoch in progress
	opts         *pebble.Options
	gate         *compactionGate // held until the first snapshot is checkpointed

	writes  chan *snapshot
	recycle chan *delta // written deltas, whose buffers the next epoch reuses
	results chan Result
	closing chan struct{} // closed by Close: results are no longer read
	done    chan struct{} // closed by the writer when it exits
	err     error
}

// snapshot is one epoch's way from Freeze to a Pebble checkpoint.
type snapshot struct {
	id    uint64 // checkpoint id
	epoch uint32
	dest  string
	delta *delta
	// full means delta holds the whole state, which replaces what Pebble
	// holds (see Freeze).
	full bool
}

// Result reports the durable part of a snapshot.
type Result struct {
	CheckpointID uint64
	// Dir holds the Pebble checkpoint when Err is nil.
	Dir string
	// Err is set when the checkpoint could not be written. The state itself
	// is still intact in the live database (Fatal is false), so only this
	// checkpoint fails.
	Err error
	// Fatal means the live database could not be updated: the job must stop.
	Fatal bool

	b     *Backend
	epoch uint32
}

// Open opens (or creates) the Pebble database in cfg.Dir.
func Open(cfg Config) (*Backend, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// A non-empty directory holds a database (restored from a checkpoint).
	entries, _ := os.ReadDir(cfg.Dir)
	existed := len(entries) > 0
	opts := dbOptions(cfg.Dir, cfg.BlockCache, cfg.Logger)
	gate := newCompactionGate(existed) // see compactionGate
	db, err := openPebble(cfg.Dir, opts, gate)
	if err != nil {
		return nil, fmt.Errorf("state: open Pebble in %s: %w", cfg.Dir, err)
	}
	b := &Backend{
		cfg:            cfg,
		maxParallelism: cfg.MaxParallelism,
		db:             db,
		opts:           opts,
		gate:           gate,
		complete:       !existed,
		orphans:        -1,
		names:          make(map[uint32]string),
		epoch:          1,
		writes:         make(chan *snapshot, 1),
		recycle:        make(chan *delta, 2),
		results:        cfg.Results,
		closing:        make(chan struct{}),
		done:           make(chan struct{}),
	}
	go b.writer()
	return b, nil
}

func (b *Backend) register(name string, kind stateKind, t tableOps) (uint32, error) {
	if name == "" {
		return 0, errors.New("state: empty state name")
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	id := h.Sum32()
	if prev, ok := b.names[id]; ok {
		if prev == name {
			return 0, fmt.Errorf("state: state %q registered twice", name)
		}
		return 0, fmt.Errorf("state: states %q and %q collide; rename one", prev, name)
	}
	if err := b.checkKind(id, name, kind); err != nil {
		return 0, err
	}
	b.names[id] = name
	b.tables = append(b.tables, t)
	return id, nil
}

// cachedAll reports whether the cache holds everything Pebble does: every
// state is cached whole, and Pebble holds no state of unregistered names.
func (b *Backend) cachedAll() bool {
	for _, t := range b.tables {
		if !t.cachedAll() {
			return false
		}
	}
	if b.orphans < 0 {
		found, err := b.holdsUnregistered()
		if err != nil {
			b.fail(fmt.Errorf("state: look for state of unregistered names: %w", err))
			return false
		}
		b.orphans = 0
		if found {
			b.orphans = 1
		}
	}
	return b.orphans == 0
}

// holdsUnregistered reports whether Pebble holds keys of a state id that no
// handle registered, seeking from one [key group][state id] prefix to the
// next.
func (b *Backend) holdsUnregistered() (bool, error) {
	// NB: kind records are not state (see kindKey).
	it, err := b.db.NewIter(&pebble.IterOptions{UpperBound: everything.End})
	if err != nil {
		return false, err
	}
	defer it.Close()
	for valid := it.First(); valid; {
		k := it.Key()
		if len(k) < 6 {
			return true, nil
		}
		if _, ok := b.names[binary.BigEndian.Uint32(k[2:6])]; !ok {
			return true, nil
		}
		end := prefixEnd(k[:6])
		if end == nil {
			break
		}
		valid = it.SeekGE(end)
	}
	return false, it.Error()
}

func (b *Backend) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// Err returns the first error met while reading or encoding state. Handles
// have no error results (state access sits on the hot path), so the runtime
// checks Err after each batch of records.
func (b *Backend) Err() error { return b.err }

// Freeze closes the current epoch for checkpoint id, whose Pebble checkpoint
// will be written to dest. It is O(number of states); the changed entries are
// encoded by later Drain calls.
//
// Usually the snapshot is a delta: the entries changed in the epoch, which
// Pebble adds on top of what it has, compacting the overlapping tables later.
// When at least three quarters of the cached entries changed and the cache
// holds all of the state, the snapshot is full instead: every live entry,
// written as one table that replaces everything Pebble holds (an ingest that
// excises the whole key space). It costs at most 4/3 of the delta and leaves
// Pebble nothing to compact, which for a small state that changes constantly
// (a million counters updated every second) is most of the cost of a delta.
func (b *Backend) Freeze(id uint64, dest string) error {
	if b.pending != nil {
		return ErrDraining
	}
	if !b.complete {
		b.complete = b.cachedAll()
	}
	changed, cached := 0, 0
	for _, t := range b.tables {
		changed += t.changed()
		cached += t.entries()
	}
	b.full = b.complete && cached > 0 && 4*changed >= 3*cached
	b.frozenEpoch = b.epoch
	b.epoch++
	select {
	case b.delta = <-b.recycle:
		b.delta.reset()
	default:
		b.delta = &delta{}
	}
	b.pending = &snapshot{id: id, epoch: b.frozenEpoch, dest: dest, delta: b.delta, full: b.full}
	for _, t := range b.tables {
		t.freeze()
	}
	b.writeKinds()
	for _, c := range b.cleaners {
		c.startPass()
	}
	return nil
}

// Warming reports whether restored state is still being loaded into the
// cache by Warm calls (Config.WarmLater).
func (b *Backend) Warming() bool { return b.warming > 0 }

// Warm loads up to budget entries of restored state into the cache
// (Config.WarmLater) and reports whether it is all loaded, or as much as
// the cache's bound allows.
func (b *Backend) Warm(budget int) bool {
	for _, t := range b.tables {
		if budget <= 0 {
			break
		}
		used, _ := t.warmSome(budget)
		budget -= used
	}
	return b.warming == 0
}

// Draining reports whether a frozen epoch still has entries to encode.
func (b *Backend) Draining() bool { return b.pending != nil }

// Drain encodes up to budget frozen entries (all if budget <= 0) and, once
// the epoch is fully encoded, hands it to the background writer. It reports
// whether the epoch is fully encoded.
//
// Before the hand-off, each state with a TTL removes expired values: a
// bounded part of its cache (changed in the current epoch) and of what
// Pebble holds and the cache does not (changed in the frozen epoch's
// delta), charged to the budget. Pebble has no compaction filter that
// could drop them as it compacts.
func (b *Backend) Drain(budget int) bool {
	if b.pending == nil {
		return true
	}
	if budget <= 0 {
		budget = int(^uint(0) >> 1)
	}
	done := true
	for _, t := range b.tables {
		used, d := t.drainSome(budget)
		budget -= used
		done = done && d
		if budget == 0 {
			break
		}
	}
	if !done {
		return false
	}
	for _, t := range b.tables { // tables skipped by an exhausted budget
		if _, d := t.drainSome(0); !d {
			return false
		}
	}
	for _, c := range b.cleaners {
		used, d := c.cleanSome(budget)
		if budget -= used; !d {
			return false
		}
	}
	s := b.pending
	b.pending, b.delta, b.frozenEpoch, b.full = nil, nil, 0, false
	b.writes <- s // capacity 1; at most one snapshot is in flight
	return true
}

// Results delivers the outcome of each handed-off snapshot, in order. The
// caller must pass each to Applied.
func (b *Backend) Results() <-chan Result { return b.results }

// Applied records that res's epoch is in Pebble, so its entries may be
// evicted from the cache. Results of other backends are ignored.
func (b *Backend) Applied(res Result) {
	if res.b == b && !res.Fatal && res.epoch > b.appliedEpoch {
		b.appliedEpoch = res.epoch
		for _, t := range b.tables {
			t.applied(res.epoch)
		}
		b.closeReader() // see get
	}
}

// writer applies snapshots to Pebble and checkpoints them, one at a time, off
// the subtask's goroutine.
func (b *Backend) writer() {
	defer close(b.done)
	for s := range b.writes {
		res := Result{CheckpointID: s.id, Dir: s.dest, b: b, epoch: s.epoch}
		err := b.ingest(s)
		b.ingested.Add(1) // before the result: see get
		if err != nil {
			res.Err, res.Fatal = err, true
		} else if err := b.checkpoint(s.dest); err != nil {
			res.Err = err
		}
		b.gate.release() // after the first snapshot: see compactionGate
		select {
		case b.results <- res:
		case <-b.closing:
		}
		select {
		case b.recycle <- s.delta:
		default:
		}
	}
}

func (b *Backend) checkpoint(dest string) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("state: checkpoint to %s: %w", dest, err)
	}
	if err := b.db.Checkpoint(dest); err != nil {
		return fmt.Errorf("state: checkpoint to %s: %w", dest, err)
	}
	return nil
}

// Entries returns the number of cached entries, over all states.
func (b *Backend) Entries() int {
	n := 0
	for _, t := range b.tables {
		n += t.entries()
	}
	return n
}

// DiskBytes returns the size of the live Pebble database's files.
func (b *Backend) DiskBytes() uint64 {
	return b.db.Metrics().DiskSpaceUsage()
}

// Close stops the writer (after the snapshot in flight, whose result is
// dropped) and closes Pebble. The state of the current epoch is not saved:
// only checkpoints are durable.
func (b *Backend) Close() error {
	close(b.closing)
	close(b.writes)
	<-b.done
	b.closeReader()
	return b.db.Close()
}

// dbOptions returns the options of a backend's Pebble database, a working
// copy in dir; cache may be nil.
func dbOptions(dir string, cache *pebble.Cache, logger *slog.Logger) *pebble.Options {
	opts := &pebble.Options{
		Cache:      cache,
		DisableWAL: true, // durability comes from checkpoints, not the WAL
		FS:         newWorkingCopyFS(vfs.Default, dir),
		Logger:     pebbleLogger{logger},
		// Every checkpoint ingests one sstable into L0. Compact L0 less
		// eagerly than by default, once it holds 8 tables (Pebble compacts
		// at a depth of half the threshold), and never stall ingestion: the
		// state is read through the cache, so a deeper L0 costs little,
		// while each compaction of L0 rewrites the whole state below it.
		// (A threshold of 8 compacted every 4 checkpoints: a third of the
		// CPU of a job whose state grows every epoch, Nexmark q18.)
		L0CompactionThreshold: 16,
		L0StopWritesThreshold: 1 << 20,
		// Full snapshots excise what they replace (see Freeze), and so does
		// a rescale (see RescaleKeyGroups).
		FormatMajorVersion: pebble.FormatFlushableIngestExcises,
	}
	// A cache miss reads Pebble, which for a key it lacks (most lookups of
	// a join's other side, Nexmark q20) looked in every table of L0 and
	// the one below that spans the key. A Bloom filter of 10 bits a key
	// (1% false positives) answers for most tables without reading their
	// index and data blocks. Ingested deltas are written with L0's
	// options; the lower levels take L0's filter.
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	opts.EnsureDefaults()
	return opts
}

// pebbleLogger routes Pebble's log lines to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble", "fatal", true)
	os.Exit(1)
}
