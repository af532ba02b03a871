package statebackend

import (
	"fmt"
	"iter"
	"slices"
)

// List is a list of values of type T per key, for state that grows by
// appends: the records of a key buffered until a timer fires, the events
// of a session.
//
// Appending costs no rewrite of the list. In the cache a key's list is a
// slice that Add appends to; a checkpoint writes only the elements appended
// since the previous one, as a Pebble merge operand that Pebble's default
// merger concatenates with the list it holds (elements are stored
// length-prefixed, back to back, so that concatenated lists are a list).
// Update and Clear, which replace the list, write it whole (or delete it).
// An Add to a key whose list is not cached reads the list from Pebble first,
// as every state kind does on a cache miss. (A blind append, a merge
// operand for a list the cache does not hold, would spare that read, but a
// later read could not tell which of the cached elements Pebble already
// holds while a checkpoint is in flight.)
//
// With a TTL (see WithTTL), each element has its own, from its Add or the
// list's Update; a read with OnReadAndWrite restarts all of them, which
// rewrites the list.
type List[K comparable, T any] struct {
	t *table[K, listVal[T]]
	// tl is the list with TTL (see WithTTL); then t is nil.
	tl    *ttlList[K, T]
	clone func(T) T // see cloner
}

// NewList registers a list state called name whose elements codec encodes;
// see NewValue for naming and options.
func NewList[K comparable, T any](s *Scope[K], name string, codec Codec[T], opts ...Option) (*List[K, T], error) {
	o, err := handleOptions(name, codec, opts)
	if err != nil {
		return nil, err
	}
	if o.ttl != nil {
		tl, err := newTTLList(s, name, codec, o.ttl)
		return &List[K, T]{tl: tl}, err
	}
	t, err := newTable(s, name, kindList, Codec[listVal[T]](listCodec[T]{elems: codec}))
	if err != nil {
		return nil, err
	}
	return &List[K, T]{t: t, clone: cloner[T]()}, nil
}

// Add appends v to the current key's list.
func (l *List[K, T]) Add(v T) {
	if l.tl != nil {
		l.tl.add(v)
		return
	}
	appendList(l.t, v)
}

// AddAll appends vs to the current key's list.
func (l *List[K, T]) AddAll(vs []T) {
	if len(vs) == 0 {
		return
	}
	if l.tl != nil {
		l.tl.add(vs...)
		return
	}
	appendList(l.t, vs...)
}

// All iterates over the current key's list in order. Elements added during
// the iteration are not visited. See Value.Get about elements that refer to
// memory; elements of type []byte are copies.
func (l *List[K, T]) All() iter.Seq[T] {
	if l.tl != nil {
		return l.tl.all()
	}
	lv, _ := l.t.get(l.t.scope.key)
	return yieldAll(lv.elems, l.clone)
}

// Len returns the length of the current key's list.
func (l *List[K, T]) Len() int {
	if l.tl != nil {
		return l.tl.len()
	}
	lv, _ := l.t.get(l.t.scope.key)
	return len(lv.elems)
}

// Update replaces the current key's list with a copy of vs; an empty vs
// clears it.
func (l *List[K, T]) Update(vs []T) {
	if l.tl != nil {
		l.tl.update(vs)
		return
	}
	replaceList(l.t, slices.Clone(vs))
}

// Clear removes the current key's list.
func (l *List[K, T]) Clear() {
	if l.tl != nil {
		l.tl.t.delete(l.tl.t.scope.key)
		return
	}
	l.t.delete(l.t.scope.key)
}

// listVal is a key's list in the cache.
type listVal[T any] struct {
	elems []T
	// from is how many leading elements Pebble holds or an earlier epoch's
	// snapshot writes, so that the snapshot of epoch writes elems[from:]
	// as a merge operand; -1 means the list was replaced in epoch, and is
	// written whole.
	from  int
	epoch uint32
}

// changing returns lv, whose entry exists if ok, ready to be changed in
// epoch.
func (lv listVal[T]) changing(ok bool, epoch uint32) listVal[T] {
	switch {
	case !ok:
		// NB: whatever Pebble holds is replaced, which a tombstone of this
		// epoch (a Clear) needs.
		return listVal[T]{from: -1, epoch: epoch}
	case lv.epoch != epoch:
		lv.from, lv.epoch = len(lv.elems), epoch
	}
	return lv
}

// appendList appends vs to the current key's list of t.
func appendList[K comparable, T any](t *table[K, listVal[T]], vs ...T) {
	epoch := t.b.epoch
	t.update(t.scope.key, func(lv listVal[T], ok bool) listVal[T] {
		lv = lv.changing(ok, epoch)
		// NB: appending in place may write past the end of a slice an
		// iteration or an encoded snapshot still holds, never within it.
		lv.elems = append(lv.elems, vs...)
		return lv
	})
}

// replaceList makes elems the current key's list of t, which must not
// share memory with anything else.
func replaceList[K comparable, T any](t *table[K, listVal[T]], elems []T) {
	if len(elems) == 0 {
		t.delete(t.scope.key)
		return
	}
	t.put(t.scope.key, listVal[T]{elems: elems, from: -1, epoch: t.b.epoch})
}

// yieldAll iterates over elems, cloning each with clone if it is not nil.
func yieldAll[T any](elems []T, clone func(T) T) iter.Seq[T] {
	return func(yield func(T) bool) {
		for _, e := range elems {
			if clone != nil {
				e = clone(e)
			}
			if !yield(e) {
				return
			}
		}
	}
}

// listCodec stores a list as its elements, each preceded by its length as a
// uvarint, and nothing else: the concatenation of two stored lists is the
// stored concatenated list, which is what Pebble's default merger makes of
// merge operands.
type listCodec[T any] struct{ elems Codec[T] }

func (c listCodec[T]) Append(dst []byte, lv listVal[T]) []byte { return c.appendElems(dst, lv.elems) }

func (c listCodec[T]) appendElems(dst []byte, elems []T) []byte {
	for _, e := range elems {
		dst = AppendPrefixed(dst, func(b []byte) []byte { return c.elems.Append(b, e) })
	}
	return dst
}

func (c listCodec[T]) Decode(src []byte) (listVal[T], error) {
	var elems []T
	for len(src) > 0 {
		var field []byte
		var err error
		if field, src, err = cutPrefixed(src); err != nil {
			return listVal[T]{}, fmt.Errorf("list element %d: %w", len(elems), err)
		}
		e, err := c.elems.Decode(field)
		if err != nil {
			return listVal[T]{}, fmt.Errorf("list element %d: %w", len(elems), err)
		}
		elems = append(elems, e)
	}
	return listVal[T]{elems: elems, from: len(elems)}, nil
}

// appendOnly and appendNew make listCodec a deltaCodec.
func (c listCodec[T]) appendOnly(lv listVal[T]) bool { return lv.from >= 0 }

func (c listCodec[T]) appendNew(dst []byte, lv listVal[T]) []byte {
	return c.appendElems(dst, lv.elems[lv.from:])
}
