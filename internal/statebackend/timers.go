package statebackend

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
	"github.com/weirstream/weir/internal/keygroup"
)

// Timers is a set of timers of one operator subtask: (key, time) pairs that
// fire in time order once the clock (event time: the watermark; processing
// time: the wall clock) passes them. A key has at most one timer per time.
//
// Timers are keyed state: they are stored in Pebble under the key's key
// group, checkpointed with the rest and restored after a crash, so a timer
// that was pending at a crash fires after recovery as it would have without
// it. In memory they are grouped by time: timers tend to share times (the
// end of a window), so registering one is a map insert and an append, and
// only distinct times go through a heap. The groups are rebuilt from Pebble
// when the subtask opens.
type Timers[K comparable] struct {
	scope *Scope[K]
	set   *table[timerKey[K], bool]
	due   map[int64][]K // keys with a timer at each time; may hold deleted ones
	times int64Heap     // the distinct times of due
	batch []timerKey[K] // Fire's reused buffer of timers to prefetch
	spare [][]K         // emptied lists of due, for reuse
}

type timerKey[K comparable] struct {
	at  int64
	key K
}

// NewTimers registers a timer set called name on s and loads the timers
// stored for it.
func NewTimers[K comparable](s *Scope[K], name string) (*Timers[K], error) {
	ts := &Scope[timerKey[K]]{
		backend: s.backend,
		keys:    timerKeyCodec[K]{keys: s.keys},
		hash:    func(tk timerKey[K]) uint64 { return s.keyHash(tk.key) }, // the key's key group
		// A key's timers share its key group but not a cache slot.
		slotHash: func(tk timerKey[K]) uint64 { return keygroup.Mix64(s.keyHash(tk.key) ^ uint64(tk.at)) },
	}
	set, err := newTable(ts, name, kindTimers, Bool)
	if err != nil {
		return nil, err
	}
	tm := &Timers[K]{scope: s, set: set, due: map[int64][]K{}}
	if set.complete { // loaded whole by newTable
		for _, sl := range set.m.slots {
			if sl.e.mark&occupied != 0 {
				tm.enqueue(sl.k)
			}
		}
		return tm, nil
	}
	err = s.backend.scan(set.id, func(key, _ []byte) error {
		tk, err := ts.keys.Decode(key)
		if err != nil {
			return fmt.Errorf("state: timers %q: %w", name, err)
		}
		tm.enqueue(tk)
		return nil
	})
	return tm, err
}

func (tm *Timers[K]) enqueue(tk timerKey[K]) {
	keys, ok := tm.due[tk.at]
	if !ok {
		tm.times.push(tk.at)
		if n := len(tm.spare); n > 0 {
			keys, tm.spare = tm.spare[n-1], tm.spare[:n-1]
		}
	}
	tm.due[tk.at] = append(keys, tk.key)
}

// Register sets a timer at time at for the current key.
func (tm *Timers[K]) Register(at int64) {
	tk := timerKey[K]{at: at, key: tm.scope.key}
	if tm.set.add(tk, true) {
		tm.enqueue(tk)
	}
}

// Delete removes the current key's timer at time at, if any.
func (tm *Timers[K]) Delete(at int64) {
	// Its entry in due is skipped when the time comes.
	tm.set.take(timerKey[K]{at: at, key: tm.scope.key})
}

// Fire removes every timer at or before now, in time order, and calls fire
// for each with its key made current. Timers that fire registers are fired
// too if they are due.
func (tm *Timers[K]) Fire(now int64, fire func(key K, at int64)) {
	for len(tm.times) > 0 && tm.times[0] <= now {
		at := tm.times.pop()
		keys := tm.due[at]
		delete(tm.due, at)
		for i := 0; i < len(keys); i += fireBatch {
			tm.fireSome(at, keys[i:min(i+fireBatch, len(keys))], fire)
		}
		if cap(keys) <= maxSpareKeys {
			clear(keys) // they may hold pointers
			tm.spare = append(tm.spare, keys[:0])
		}
	}
}

// maxSpareKeys bounds the lists kept for reuse, so that one time with many
// timers (the end of a window over many keys) does not stay allocated.
const maxSpareKeys = 1024

// fireBatch is the number of timers whose cache slots Fire reads ahead.
const fireBatch = 32

// fireSome fires the timers at time at of keys, which are due, skipping the
// deleted ones. Their slots are scattered over the cache (a timer's slot
// mixes its time into its key's hash), so each lookup would be a cache
// miss: they are read ahead in one tight loop first, where the CPU
// overlaps the misses (see hashTable.touch).
func (tm *Timers[K]) fireSome(at int64, keys []K, fire func(key K, at int64)) {
	batch := tm.batch[:0]
	for _, k := range keys {
		batch = append(batch, timerKey[K]{at: at, key: k})
	}
	tm.batch = batch
	tm.set.prefetch(batch, nil)
	for _, tk := range batch {
		if !tm.set.take(tk) {
			continue // deleted
		}
		tm.scope.SetKey(tk.key)
		fire(tk.key, at)
	}
	clear(tm.batch) // keys may hold pointers
}

// int64Heap is a min-heap of times. (Typed rather than through
// container/heap, whose Push and Pop box every time in an interface: an
// allocation per distinct time, and calls through the interface.)
type int64Heap []int64

func (h *int64Heap) push(x int64) {
	*h = append(*h, x)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if s[p] <= s[i] {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *int64Heap) pop() int64 {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	*h = s
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && s[c+1] < s[c] {
			c++
		}
		if s[i] <= s[c] {
			break
		}
		s[i], s[c] = s[c], s[i]
		i = c
	}
	return top
}

// timerKeyCodec encodes a timer as its time (sign bit flipped, so that
// byte order is time order) followed by the key.
type timerKeyCodec[K comparable] struct{ keys Codec[K] }

func (c timerKeyCodec[K]) Append(dst []byte, tk timerKey[K]) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(tk.at)^(1<<63))
	return c.keys.Append(dst, tk.key)
}

func (c timerKeyCodec[K]) Decode(src []byte) (timerKey[K], error) {
	if len(src) < 8 {
		return timerKey[K]{}, fmt.Errorf("%w: timer of %d bytes", ErrCorruptValue, len(src))
	}
	k, err := c.keys.Decode(src[8:])
	return timerKey[K]{at: int64(binary.BigEndian.Uint64(src) ^ (1 << 63)), key: k}, err
}

// scan calls fn with the key (without key group and state id) and value of
// every entry Pebble holds for state id. Only entries written by a checkpoint
// (or restored) are seen: it is meant for loading at open.
func (b *Backend) scan(id uint32, fn func(key, value []byte) error) error {
	if b.complete {
		return nil // nothing stored
	}
	_, _, err := b.scanSome(id, &scanCursor{}, math.MaxInt, fn)
	return err
}

// scanCursor is where a scan of a state resumes (see scanSome).
type scanCursor struct {
	kg     int    // the key group being read
	resume []byte // the Pebble key to resume at in kg; nil: its first
}

// scanSome is scan for up to budget entries from c on, which it advances:
// each call reads Pebble as it is then. It returns how many entries fn saw
// and whether the scan is done.
func (b *Backend) scanSome(id uint32, c *scanCursor, budget int, fn func(key, value []byte) error) (used int, done bool, err error) {
	for ; c.kg < b.maxParallelism; c.kg, c.resume = c.kg+1, nil {
		var lower [6]byte
		binary.BigEndian.PutUint16(lower[:2], uint16(c.kg))
		binary.BigEndian.PutUint32(lower[2:], id)
		upper := lower
		binary.BigEndian.PutUint32(upper[2:], id+1)
		if id == math.MaxUint32 {
			binary.BigEndian.PutUint16(upper[:2], uint16(c.kg+1))
			binary.BigEndian.PutUint32(upper[2:], 0)
		}
		it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: lower[:], UpperBound: upper[:]})
		if err != nil {
			return used, false, err
		}
		valid := it.First()
		if c.resume != nil {
			valid = it.SeekGE(c.resume)
		}
		for ; valid; valid = it.Next() {
			if used == budget {
				c.resume = append(c.resume[:0], it.Key()...)
				return used, false, it.Close()
			}
			v, err := it.ValueAndErr()
			if err == nil {
				err = fn(it.Key()[6:], v)
			}
			if err != nil {
				it.Close()
				return used, false, err
			}
			used++
		}
		if err := it.Close(); err != nil {
			return used, false, err
		}
	}
	return used, true, nil
}
