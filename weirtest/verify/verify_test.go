package verify

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func recs(values ...string) []Record {
	out := make([]Record, len(values))
	for i, v := range values {
		out[i] = Record{Position: Position{"t", 0, int64(i)}, Value: []byte(v)}
	}
	return out
}

func at(off int64) Position { return Position{"t", 0, off} }

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       Options
		values     []string
		ok         bool
		dups       []Duplicate
		gaps       []Gap
		malformed  int
		distinct   int
		keys       int
		mismatched bool
	}{
		{
			name:   "clean string seqs",
			opts:   Options{Key: "customer", Seq: "order_id", Expect: -1},
			values: []string{`{"customer":"c1","order_id":"o1"}`, `{"customer":"c1","order_id":"o2"}`, `{"customer":"c2","order_id":"o1"}`},
			ok:     true, distinct: 3, keys: 2,
		},
		{
			name:     "duplicate",
			opts:     Options{Key: "customer", Seq: "order_id", Expect: -1},
			values:   []string{`{"customer":"c1","order_id":"o1"}`, `{"customer":"c2","order_id":"o1"}`, `{"customer":"c1","order_id":"o1","amount_cents":5}`},
			dups:     []Duplicate{{Key: "c1", Seq: "o1", First: at(0), Again: at(2)}},
			distinct: 2, keys: 2,
		},
		{
			name:   "numeric clean",
			opts:   Options{Key: "k", Seq: "n", Numeric: true, Expect: 4},
			values: []string{`{"k":"a","n":1}`, `{"k":"a","n":2}`, `{"k":"b","n":"7"}`, `{"k":"a","n":3}`},
			ok:     true, distinct: 4, keys: 2,
		},
		{
			name:     "numeric seq compares by value",
			opts:     Options{Key: "k", Seq: "n", Numeric: true, Expect: -1},
			values:   []string{`{"k":"a","n":7}`, `{"k":"a","n":"007"}`},
			dups:     []Duplicate{{Key: "a", Seq: "7", First: at(0), Again: at(1)}},
			distinct: 1, keys: 1,
		},
		{
			name:     "gaps and out of order",
			opts:     Options{Key: "k", Seq: "n", Numeric: true, Expect: -1},
			values:   []string{`{"k":"a","n":5}`, `{"k":"a","n":1}`, `{"k":"b","n":10}`, `{"k":"a","n":2}`, `{"k":"b","n":12}`, `{"k":"a","n":9}`},
			gaps:     []Gap{{"a", 3, 4}, {"a", 6, 8}, {"b", 11, 11}},
			distinct: 6, keys: 2,
		},
		{
			name:     "numeric key",
			opts:     Options{Key: "sensor", Seq: "n", Numeric: true, Expect: -1},
			values:   []string{`{"sensor":17,"n":0}`, `{"sensor":17,"n":1}`, `{"sensor":17,"n":1}`},
			dups:     []Duplicate{{Key: "17", Seq: "1", First: at(1), Again: at(2)}},
			distinct: 2, keys: 1,
		},
		{
			name:     "duplicates and gaps together",
			opts:     Options{Key: "k", Seq: "n", Numeric: true, Expect: -1},
			values:   []string{`{"k":"a","n":1}`, `{"k":"a","n":1}`, `{"k":"a","n":3}`},
			dups:     []Duplicate{{Key: "a", Seq: "1", First: at(0), Again: at(1)}},
			gaps:     []Gap{{"a", 2, 2}},
			distinct: 2, keys: 1,
		},
		{
			name:      "malformed",
			opts:      Options{Key: "k", Seq: "n", Numeric: true, Expect: -1},
			values:    []string{`not json`, `[1,2]`, `null`, `{"n":1}`, `{"k":"a"}`, `{"k":"a","n":"x"}`, `{"k":"a","n":1.5}`, `{"k":{"x":1},"n":1}`, `{"k":"a","n":1}`},
			malformed: 8, distinct: 1, keys: 1,
		},
		{
			name:       "count mismatch",
			opts:       Options{Key: "k", Seq: "n", Expect: 3},
			values:     []string{`{"k":"a","n":1}`, `{"k":"a","n":2}`},
			mismatched: true, distinct: 2, keys: 1,
		},
		{
			name: "expect zero on empty topic",
			opts: Options{Key: "k", Seq: "n", Expect: 0},
			ok:   true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Check(recs(tc.values...), tc.opts)
			if r.OK() != tc.ok {
				t.Errorf("OK() = %v, want %v; report %+v", r.OK(), tc.ok, r)
			}
			if r.Records != len(tc.values) {
				t.Errorf("Records = %d, want %d", r.Records, len(tc.values))
			}
			if !reflect.DeepEqual(r.Duplicates, tc.dups) {
				t.Errorf("Duplicates = %+v, want %+v", r.Duplicates, tc.dups)
			}
			if !reflect.DeepEqual(r.Gaps, tc.gaps) {
				t.Errorf("Gaps = %+v, want %+v", r.Gaps, tc.gaps)
			}
			if len(r.Malformed) != tc.malformed {
				t.Errorf("Malformed = %+v, want %d", r.Malformed, tc.malformed)
			}
			if r.Distinct != tc.distinct || r.Keys != tc.keys {
				t.Errorf("Distinct, Keys = %d, %d, want %d, %d", r.Distinct, r.Keys, tc.distinct, tc.keys)
			}
			if r.CountMismatch() != tc.mismatched {
				t.Errorf("CountMismatch = %v, want %v", r.CountMismatch(), tc.mismatched)
			}
		})
	}
}

func TestWriteLimitsOffenders(t *testing.T) {
	var values []string
	for i := range 15 {
		values = append(values, fmt.Sprintf(`{"k":"a","n":%d}`, i*2), fmt.Sprintf(`{"k":"a","n":%d}`, i*2))
	}
	r := Check(recs(values...), Options{Key: "k", Seq: "n", Numeric: true, Expect: 10})
	var b bytes.Buffer
	if err := r.Write(&b, 10); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"duplicates: 15\n", "… 5 more", "gaps: 14 (14 missing)", `k="a" missing n 1`,
		"first at t/0@0, again at t/0@1", "expected 10 (MISMATCH)", "FAIL\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "again at"); n != 10 {
		t.Errorf("printed %d duplicates, want 10", n)
	}
	ok := Check(recs(`{"k":"a","n":1}`), Options{Key: "k", Seq: "n", Expect: -1})
	b.Reset()
	_ = ok.Write(&b, 10)
	if !strings.HasSuffix(b.String(), "OK\n") {
		t.Errorf("clean report:\n%s", b.String())
	}
}
