package statebackend

import (
	"container/heap"
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
		hash:    func(tk timerKey[K]) uint64 { return s.hash(tk.key) }, // the key's key group
		// A key's timers share its key group but not a cache slot.
		slotHash: func(tk timerKey[K]) uint64 { return keygroup.Mix64(s.hash(tk.key) ^ uint64(tk.at)) },
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
		heap.Push(&tm.times, tk.at)
	}
	tm.due[tk.at] = append(keys, tk.key)
}

// Register sets a timer at time at for the current key.
func (tm *Timers[K]) Register(at int64) {
	tk := timerKey[K]{at: at, key: tm.scope.key}
	if _, ok := tm.set.get(tk); ok {
		return
	}
	tm.set.put(tk, true)
	tm.enqueue(tk)
}

// Delete removes the current key's timer at time at, if any.
func (tm *Timers[K]) Delete(at int64) {
	tk := timerKey[K]{at: at, key: tm.scope.key}
	if _, ok := tm.set.get(tk); ok {
		tm.set.delete(tk) // its entry in due is skipped when the time comes
	}
}

// Fire removes every timer at or before now, in time order, and calls fire
// for each with its key made current. Timers that fire registers are fired
// too if they are due.
func (tm *Timers[K]) Fire(now int64, fire func(key K, at int64)) {
	for len(tm.times) > 0 && tm.times[0] <= now {
		at := heap.Pop(&tm.times).(int64)
		keys := tm.due[at]
		delete(tm.due, at)
		for _, k := range keys {
			tk := timerKey[K]{at: at, key: k}
			if _, ok := tm.set.get(tk); !ok {
				continue // deleted
			}
			tm.set.delete(tk)
			tm.scope.SetKey(k)
			fire(k, at)
		}
	}
}

type int64Heap []int64

func (h int64Heap) Len() int           { return len(h) }
func (h int64Heap) Less(i, j int) bool { return h[i] < h[j] }
func (h int64Heap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *int64Heap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *int64Heap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
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
	for kg := 0; kg < b.maxParallelism; kg++ {
		var lower [6]byte
		binary.BigEndian.PutUint16(lower[:2], uint16(kg))
		binary.BigEndian.PutUint32(lower[2:], id)
		upper := lower
		binary.BigEndian.PutUint32(upper[2:], id+1)
		if id == math.MaxUint32 {
			binary.BigEndian.PutUint16(upper[:2], uint16(kg+1))
			binary.BigEndian.PutUint32(upper[2:], 0)
		}
		it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: lower[:], UpperBound: upper[:]})
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			v, err := it.ValueAndErr()
			if err == nil {
				err = fn(it.Key()[6:], v)
			}
			if err != nil {
				it.Close()
				return err
			}
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	return nil
}
