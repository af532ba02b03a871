package statebackend

import (
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// compactionGate is the compaction scheduler of a backend's Pebble: Pebble's
// own policy (as many compactions at once as the database asks for, by
// DBForCompaction.GetAllowedWithoutPermission, granted at once or when one
// ends, and checked every 100 ms), but none while the gate is held.
//
// A restored database holds its gate until its first snapshot is
// checkpointed (Backend.writer). A checkpoint taken when L0 had just reached
// its compaction depth restores a database that compacts at once: Pebble
// started the compaction inside pebble.Open, whose scan for obsolete files
// then waited for it to end, rewriting the whole state first (1.2–5.6 s of
// a takeover's open, several tasks at once, scaleout failover at a load of
// 11–20), and later compactions took the CPU the task needed to catch up
// and take its first checkpoint. Held, the compaction runs after that
// checkpoint; L0 has one table more meanwhile. A database being rescaled
// (RescaleKeyGroups) holds its gate until it is closed: a compaction there
// would rewrite state that the rescale then excises, and the backend that
// opens the result compacts after its first checkpoint anyway.
type compactionGate struct {
	mu      sync.Mutex
	db      pebble.DBForCompaction
	held    bool
	running int // compactions granted and not done

	poke chan struct{} // asks the granter to grant now
	stop chan struct{} // closed by Unregister
	done chan struct{} // closed when the granter has returned
}

var _ pebble.CompactionScheduler = (*compactionGate)(nil)
var _ pebble.CompactionGrantHandle = (*compactionGate)(nil)

// newCompactionGate returns a gate, held if held is set.
func newCompactionGate(held bool) *compactionGate {
	return &compactionGate{held: held, poke: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// openPebble opens the database in dir with g as its compaction scheduler.
// If the open fails after Pebble registered g, g is stopped: Pebble does
// not unregister a scheduler on a failed open, and the granter would run on
// (calling the half-opened database) for the life of the process.
func openPebble(dir string, opts *pebble.Options, g *compactionGate) (*pebble.DB, error) {
	opts.Experimental.CompactionScheduler = g
	db, err := pebble.Open(dir, opts)
	if err != nil && g.db != nil { // NB: Register ran in Open, on this goroutine
		g.Unregister()
	}
	return db, err
}

// release lets compactions run.
func (g *compactionGate) release() {
	g.mu.Lock()
	g.held = false
	g.mu.Unlock()
	g.wake()
}

// Register implements pebble.CompactionScheduler.
func (g *compactionGate) Register(_ int, db pebble.DBForCompaction) {
	g.db = db
	go g.granter()
}

// Unregister implements pebble.CompactionScheduler: once the granter has
// returned, the gate calls db no more (TrySchedule is Pebble's own call).
func (g *compactionGate) Unregister() {
	close(g.stop)
	<-g.done
}

// TrySchedule implements pebble.CompactionScheduler.
func (g *compactionGate) TrySchedule() (bool, pebble.CompactionGrantHandle) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held || g.db.GetAllowedWithoutPermission() <= g.running {
		return false, nil
	}
	g.running++
	return true, g
}

// UpdateGetAllowedWithoutPermission implements pebble.CompactionScheduler.
func (g *compactionGate) UpdateGetAllowedWithoutPermission() { g.wake() }

// Started, MeasureCPU and CumulativeStats implement
// pebble.CompactionGrantHandle; the gate measures nothing.
func (g *compactionGate) Started()                                          {}
func (g *compactionGate) MeasureCPU(pebble.CompactionGoroutineKind)         {}
func (g *compactionGate) CumulativeStats(pebble.CompactionGrantHandleStats) {}

// Done implements pebble.CompactionGrantHandle: a compaction ended.
func (g *compactionGate) Done() {
	g.mu.Lock()
	g.running--
	g.mu.Unlock()
	g.wake()
}

func (g *compactionGate) wake() {
	select {
	case g.poke <- struct{}{}:
	default:
	}
}

// granter grants what the database waits for, when poked and every 100 ms
// (as Pebble's ConcurrencyLimitScheduler), until Unregister.
func (g *compactionGate) granter() {
	defer close(g.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-tick.C:
		case <-g.poke:
		}
		g.grant()
	}
}

// grant starts waiting compactions while the database allows more.
func (g *compactionGate) grant() {
	for {
		g.mu.Lock()
		ok := !g.held && g.db.GetAllowedWithoutPermission() > g.running
		g.mu.Unlock()
		if !ok {
			return
		}
		if waiting, _ := g.db.GetWaitingCompaction(); !waiting {
			return
		}
		// NB: Schedule takes the database's mutex, under which it may call
		// TrySchedule: g.mu is not held.
		g.mu.Lock()
		g.running++
		g.mu.Unlock()
		if !g.db.Schedule(g) {
			g.mu.Lock()
			g.running--
			g.mu.Unlock()
			return
		}
	}
}
