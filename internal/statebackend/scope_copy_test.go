package statebackend

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// TestGetReturnsCopiesOfBytes checks that a caller changing a []byte that a
// handle returned changes neither the state nor what a checkpoint holds, on
// every kind of handle, with and without TTL.
func TestGetReturnsCopiesOfBytes(t *testing.T) {
	for _, opts := range [][]Option{nil, {WithTTL(time.Hour, OnReadAndWrite)}} {
		b, err := Open(Config{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		s, _ := NewScope(b, String)
		v, _ := NewValue(s, "v", Bytes, opts...)
		m, _ := NewMap(s, "m", String, Bytes, opts...)
		l, _ := NewList(s, "l", Bytes, opts...)
		n, _ := NewNamespaced(s, "n", Bytes, opts...)
		s.SetKey("k")
		v.Put([]byte("value"))
		m.Put("a", []byte("value"))
		l.Add([]byte("value"))
		n.Put(1, []byte("value"))

		scribble := func(b []byte) { copy(b, "XXXXX") }
		got, _ := v.Get()
		scribble(got)
		got, _ = m.Get("a")
		scribble(got)
		for _, e := range m.All() {
			scribble(e)
		}
		for e := range l.All() {
			scribble(e)
		}
		got, _ = n.Get(1)
		scribble(got)
		n.All(1, func(_ string, e []byte) { scribble(e) })

		want := []byte("value")
		if got, _ := v.Get(); !bytes.Equal(got, want) {
			t.Errorf("%d options: Value = %q after the caller changed what Get returned", len(opts), got)
		}
		if got, _ := m.Get("a"); !bytes.Equal(got, want) {
			t.Errorf("%d options: Map[a] = %q after the caller changed what Get and All returned", len(opts), got)
		}
		if got := slices.Collect(l.All()); len(got) != 1 || !bytes.Equal(got[0], want) {
			t.Errorf("%d options: List = %q after the caller changed what All returned", len(opts), got)
		}
		if got, _ := n.Get(1); !bytes.Equal(got, want) {
			t.Errorf("%d options: Namespaced = %q after the caller changed what Get and All returned", len(opts), got)
		}
	}
}
