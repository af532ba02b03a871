package runtime

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/state"
)

type jsonOK struct {
	A    string
	B    []int
	C    map[string]*jsonOK // recursive
	D    time.Time          // its own MarshalJSON
	E    map[int]float64
	F    [2]bool `json:"f,omitempty"`
	Base         // embedded: promoted
}

type Base struct{ ID int64 }

type hidden struct{ base }

type base struct{ id int64 }

// jsonLossless accepts what JSON carries whole and names, for anything
// else, the first field that it would drop or could not decode back.
func TestJSONLossless(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string // "" when lossless
	}{
		{jsonOK{}, ""},
		{[]byte{}, ""},
		{struct{ a int }{}, "unexported field struct { a int }.a"},
		{struct{ F func() }{}, "F (a func)"},
		{struct{ C chan int }{}, "(a chan)"},
		{struct{ I any }{}, "I (a interface)"},
		{struct{ X complex128 }{}, "(a complex128)"},
		{struct {
			A int `json:"-"`
		}{}, `tagged json:"-"`},
		{struct {
			X int
			Y int `json:"X"`
		}{}, `both "X" in JSON`},
		{map[[2]int]string{}, "the keys of"},
		{hidden{}, "unexported field runtime.hidden.base.id"},
		{[]struct{ P *struct{ f int } }{}, ".P.f"},
	} {
		tp := reflect.TypeOf(tc.v)
		err := jsonLossless(tp, tp.String(), map[reflect.Type]bool{})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want lossless", tp, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tp, err, tc.want)
		}
	}
}

// listSource is a Source[ExchangeRecord] that emits recs at its first Read,
// with state "inner".
type listSource struct {
	recs     []ExchangeRecord
	restored []byte
}

func (s *listSource) Open(_ context.Context, _ TaskInfo, restored []byte) error {
	s.restored = restored
	return nil
}

func (s *listSource) Read(_ context.Context, out Collector[ExchangeRecord]) error {
	for _, r := range s.recs {
		out.Collect(r)
	}
	s.recs = nil
	return nil
}

func (s *listSource) Snapshot() ([]byte, error) { return []byte("inner"), nil }
func (s *listSource) Close() error              { return nil }

// The receive side of an exchange with event time: its watermark is the
// minimum over its senders' markers, not idle ones; records keep their
// timestamps; and the senders' watermarks are in its state, so a restored
// receiver goes neither back nor forward in time, and a sender that sends
// no more (its input ended) does not hold it back after the restore.
func TestReceiverWatermarks(t *testing.T) {
	const senders = 3
	wm := func(sender int, w int64) ExchangeRecord {
		return ExchangeRecord{Marker: WatermarkMarker, Sender: sender, Timestamp: w}
	}
	idle := func(sender int) ExchangeRecord { return ExchangeRecord{Marker: IdleMarker, Sender: sender} }
	newReceiver := func(t *testing.T, restored []byte, recs ...ExchangeRecord) (*exchangeSource[int64], *listSource, *int64) {
		t.Helper()
		var ts int64
		inner := &listSource{recs: recs}
		s := &exchangeSource[int64]{inner: inner, codec: state.Int64, name: "x", ts: &ts, time: newReceiverTime(senders)}
		if err := s.Open(t.Context(), TaskInfo{}, restored); err != nil {
			t.Fatal(err)
		}
		return s, inner, &ts
	}
	type step struct {
		wm            int64
		advanced, idl bool
	}
	check := func(t *testing.T, s *exchangeSource[int64], want step) {
		t.Helper()
		if err := s.Read(t.Context(), CollectorFunc[int64](func(int64) {})); err != nil {
			t.Fatal(err)
		}
		wm, advanced, idl := s.time.eventTime()
		if got := (step{wm, advanced, idl}); got != want {
			t.Fatalf("EventTime = %+v, want %+v", got, want)
		}
	}

	s, inner, _ := newReceiver(t, nil, wm(0, 10), wm(1, 20))
	check(t, s, step{}) // sender 2 sent nothing: MinWatermark
	inner.recs = []ExchangeRecord{wm(2, 5)}
	check(t, s, step{5, true, false})
	inner.recs = []ExchangeRecord{wm(2, 30), wm(0, 7)} // 7 < 10: a restarted sender's, ignored
	check(t, s, step{10, true, false})
	inner.recs = []ExchangeRecord{idle(0)}
	check(t, s, step{20, true, false})
	inner.recs = []ExchangeRecord{idle(1), idle(2)}
	check(t, s, step{0, false, true})
	check(t, s, step{}) // idle once
	inner.recs = []ExchangeRecord{wm(1, MaxWatermark), wm(2, 40)}
	check(t, s, step{40, true, false})

	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Restored: sender 0 idle at 10, 1 ended, 2 at 40. Sender 2 alone moves
	// the watermark on.
	s, inner, ts := newReceiver(t, snap, wm(2, 50))
	if string(inner.restored) != "inner" {
		t.Fatalf("the cluster's source restored %q, want %q", inner.restored, "inner")
	}
	check(t, s, step{50, true, false})
	inner.recs = []ExchangeRecord{wm(0, 45)}
	check(t, s, step{}) // sender 0 is back, behind
	var got []int64
	inner.recs = []ExchangeRecord{{Value: state.Int64.Append(nil, 1), Timestamp: 42}}
	if err := s.Read(t.Context(), CollectorFunc[int64](func(v int64) { got = append(got, v, *ts) })); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int64{1, 42}) {
		t.Fatalf("record and timestamp = %v, want [1 42]", got)
	}

	// A state of the job before it had event time: every sender starts
	// from MinWatermark.
	s, inner, _ = newReceiver(t, []byte("old"), wm(0, 1), wm(1, 1))
	if string(inner.restored) != "old" {
		t.Fatalf("the cluster's source restored %q, want %q", inner.restored, "old")
	}
	check(t, s, step{})
	// A cluster's source without state gets none back (nil: a fresh start).
	if inner, err := newReceiverTime(senders).restore(newReceiverTime(senders).append(nil)); inner != nil || err != nil {
		t.Fatalf("restore of no inner state = %q, %v; want nil", inner, err)
	}
	// Another task count is refused.
	r := newReceiverTime(senders + 1)
	if _, err := r.restore(snap); !errors.Is(err, ErrIncompatibleCheckpoint) {
		t.Fatalf("restore with 4 senders: err = %v, want ErrIncompatibleCheckpoint", err)
	}
	if _, err := r.restore(snap[:len(receiverStateMagic)+2]); !errors.Is(err, ErrIncompatibleCheckpoint) {
		t.Fatalf("restore of a cut state: err = %v, want ErrIncompatibleCheckpoint", err)
	}
	// A marker from a sender out of range fails the Read.
	s, _, _ = newReceiver(t, nil, wm(senders, 1))
	if err := s.Read(t.Context(), CollectorFunc[int64](func(int64) {})); !errors.Is(err, errMarker) {
		t.Fatalf("marker of sender %d: err = %v, want errMarker", senders, err)
	}
}

// recordingSink is a Sink[ExchangeRecord] that keeps what is written.
type recordingSink struct{ recs []ExchangeRecord }

func (s *recordingSink) Open(context.Context, TaskInfo, []byte) error { return nil }
func (s *recordingSink) Write(_ context.Context, r ExchangeRecord) error {
	s.recs = append(s.recs, r)
	return nil
}
func (s *recordingSink) PreCommit(context.Context, uint64) ([]byte, error) { return nil, nil }
func (s *recordingSink) Commit(context.Context, uint64) error              { return nil }
func (s *recordingSink) Close() error                                      { return nil }

// The send side of an exchange with event time writes, at a pre-commit,
// a WatermarkMarker to every task if its task's watermark advanced, then
// an IdleMarker to every task if the task turned idle; nothing if neither
// changed. Records carry their timestamps.
func TestSenderMarkers(t *testing.T) {
	const tasks, self = 3, 1
	inner := &recordingSink{}
	var idle bool
	var ts int64
	x := &exchangeSink[string, string]{inner: inner, encode: encoderOf(state.String), key: func(s string) string { return s },
		keys: state.String, route: func(string) int { return 2 }, tasks: tasks, ts: &ts,
		time: &senderTime{wm: MinWatermark, sent: MinWatermark, idle: &idle}}
	if err := x.Open(t.Context(), TaskInfo{Subtask: self, Parallelism: tasks}, nil); err != nil {
		t.Fatal(err)
	}
	inst := sendInstance{Instance: &sinkInstance[string]{sink: x}, time: x.time}
	id := uint64(0)
	precommit := func(want ...string) {
		t.Helper()
		id++
		if _, err := x.PreCommit(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range inner.recs {
			got = append(got, fmt.Sprintf("%d:%d/%d@%d %s", r.Task, r.Marker, r.Sender, r.Timestamp, r.Value))
		}
		inner.recs = nil
		if !slices.Equal(got, want) {
			t.Fatalf("checkpoint %d wrote %q, want %q", id, got, want)
		}
	}
	precommit() // no watermark yet
	ts = 9
	if err := x.Write(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	inst.Watermark(8)
	precommit("2:0/0@9 a", "0:1/1@8 ", "1:1/1@8 ", "2:1/1@8 ")
	precommit()
	inst.Watermark(12)
	idle = true
	precommit("0:1/1@12 ", "1:1/1@12 ", "2:1/1@12 ", "0:2/1@12 ", "1:2/1@12 ", "2:2/1@12 ")
	precommit()
	idle = false
	inst.Watermark(MaxWatermark)
	precommit(fmt.Sprintf("0:1/1@%d ", MaxWatermark), fmt.Sprintf("1:1/1@%d ", MaxWatermark), fmt.Sprintf("2:1/1@%d ", MaxWatermark))
}
