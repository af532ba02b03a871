// Package verify checks that a topic holds what an exactly-once pipeline
// promises: no record twice, and, for numbered records, no record missing.
//
// A Checker is fed the records of a topic one by one (see ReadTopic, which
// reads a topic read_committed from its beginning to its end) and produces a
// Report. Each record value must be a JSON object; the Key field names the
// entity (an order, a sensor, a user) and the Seq field its record's identity
// within that entity. The same (key, seq) twice is a duplicate; with Numeric,
// a seq missing between the smallest and largest seen for a key is a gap.
//
// `weir verify` is this package's command line; examples/orders checks its
// own output with it. Where weirtest.Check compares two runs of a job, a
// Checker needs one: it checks the promise on the records themselves.
package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
)

// Position locates a record in Kafka.
type Position struct {
	Topic     string
	Partition int32
	Offset    int64
}

func (p Position) String() string { return fmt.Sprintf("%s/%d@%d", p.Topic, p.Partition, p.Offset) }

// Record is one record to check: its position and raw value.
type Record struct {
	Position
	Value []byte
}

// Options says how records are identified.
type Options struct {
	// Key is the JSON field naming the entity a record belongs to.
	Key string
	// Seq is the JSON field identifying a record within its key.
	Seq string
	// Numeric makes Seq an integer (a JSON number or a string holding one)
	// and turns on gap detection.
	Numeric bool
	// Expect, if >= 0, is the number of records the topic must hold.
	Expect int
}

// Duplicate is a (key, seq) seen more than once.
type Duplicate struct {
	Key, Seq     string
	First, Again Position
}

// Gap is a run of missing seqs, From to To inclusive, of one key.
type Gap struct {
	Key      string
	From, To int64
}

// Missing returns how many seqs the gap lacks.
func (g Gap) Missing() int64 { return g.To - g.From + 1 }

// Malformed is a record that could not be checked.
type Malformed struct {
	At     Position
	Reason string
}

// Report is the outcome of a check.
type Report struct {
	Options    Options
	Records    int // records checked, malformed ones included
	Keys       int // distinct keys
	Distinct   int // distinct (key, seq)
	Duplicates []Duplicate
	Gaps       []Gap // only with Options.Numeric; sorted by key, then seq
	Malformed  []Malformed
}

// CountMismatch reports whether Options.Expect is set and differs from the
// number of records.
func (r *Report) CountMismatch() bool { return r.Options.Expect >= 0 && r.Records != r.Options.Expect }

// MissingTotal returns the number of seqs missing across all gaps.
func (r *Report) MissingTotal() int64 {
	var n int64
	for _, g := range r.Gaps {
		n += g.Missing()
	}
	return n
}

// OK reports whether the check found no violation.
func (r *Report) OK() bool {
	return len(r.Duplicates) == 0 && len(r.Gaps) == 0 && len(r.Malformed) == 0 && !r.CountMismatch()
}

// Checker accumulates records. The zero value is not usable; use NewChecker.
type Checker struct {
	opts  Options
	first map[[2]string]Position
	seqs  map[string][]int64
	keys  map[string]struct{}
	rep   Report
}

// NewChecker returns a Checker for opts.
func NewChecker(opts Options) *Checker {
	return &Checker{
		opts:  opts,
		first: make(map[[2]string]Position),
		seqs:  make(map[string][]int64),
		keys:  make(map[string]struct{}),
		rep:   Report{Options: opts},
	}
}

// Add checks one record.
func (c *Checker) Add(rec Record) {
	c.rep.Records++
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(rec.Value, &obj); err != nil || obj == nil {
		c.malformed(rec.Position, "value is not a JSON object")
		return
	}
	key, ok := scalar(obj[c.opts.Key])
	if !ok {
		c.malformed(rec.Position, fmt.Sprintf("no string or number field %q", c.opts.Key))
		return
	}
	seq, ok := scalar(obj[c.opts.Seq])
	if !ok {
		c.malformed(rec.Position, fmt.Sprintf("no string or number field %q", c.opts.Seq))
		return
	}
	var n int64
	if c.opts.Numeric {
		var err error
		if n, err = strconv.ParseInt(seq, 10, 64); err != nil {
			c.malformed(rec.Position, fmt.Sprintf("field %q is %q, not an integer", c.opts.Seq, seq))
			return
		}
		seq = strconv.FormatInt(n, 10) // "007" and 7 are the same seq
	}
	c.keys[key] = struct{}{}
	id := [2]string{key, seq}
	if at, dup := c.first[id]; dup {
		c.rep.Duplicates = append(c.rep.Duplicates, Duplicate{Key: key, Seq: seq, First: at, Again: rec.Position})
		return
	}
	c.first[id] = rec.Position
	if c.opts.Numeric {
		c.seqs[key] = append(c.seqs[key], n)
	}
}

func (c *Checker) malformed(at Position, reason string) {
	c.rep.Malformed = append(c.rep.Malformed, Malformed{At: at, Reason: reason})
}

// scalar returns a JSON string's contents or a JSON number's text.
func scalar(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false
		}
		return s, true
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), true
	}
	return "", false
}

// Report returns the outcome so far. It may be called more than once.
func (c *Checker) Report() Report {
	r := c.rep
	r.Keys = len(c.keys)
	r.Distinct = len(c.first)
	r.Duplicates = append([]Duplicate(nil), c.rep.Duplicates...)
	r.Malformed = append([]Malformed(nil), c.rep.Malformed...)
	r.Gaps = nil
	if c.opts.Numeric {
		keys := make([]string, 0, len(c.seqs))
		for k := range c.seqs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			s := append([]int64(nil), c.seqs[k]...)
			sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
			for i := 1; i < len(s); i++ {
				if s[i] > s[i-1]+1 {
					r.Gaps = append(r.Gaps, Gap{Key: k, From: s[i-1] + 1, To: s[i] - 1})
				}
			}
		}
	}
	return r
}

// Check checks recs; it is NewChecker, Add for each, Report.
func Check(recs []Record, opts Options) Report {
	c := NewChecker(opts)
	for _, r := range recs {
		c.Add(r)
	}
	return c.Report()
}

// Write prints a summary and at most limit offenders of each kind.
func (r *Report) Write(w io.Writer, limit int) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "records: %d, keys (%s): %d, distinct (%s, %s): %d\n",
		r.Records, r.Options.Key, r.Keys, r.Options.Key, r.Options.Seq, r.Distinct)
	fmt.Fprintf(&b, "duplicates: %d\n", len(r.Duplicates))
	for i, d := range r.Duplicates {
		if i == limit {
			fmt.Fprintf(&b, "  … %d more\n", len(r.Duplicates)-limit)
			break
		}
		fmt.Fprintf(&b, "  %s=%q %s=%q first at %s, again at %s\n", r.Options.Key, d.Key, r.Options.Seq, d.Seq, d.First, d.Again)
	}
	if r.Options.Numeric {
		fmt.Fprintf(&b, "gaps: %d (%d missing)\n", len(r.Gaps), r.MissingTotal())
		for i, g := range r.Gaps {
			if i == limit {
				fmt.Fprintf(&b, "  … %d more\n", len(r.Gaps)-limit)
				break
			}
			if g.From == g.To {
				fmt.Fprintf(&b, "  %s=%q missing %s %d\n", r.Options.Key, g.Key, r.Options.Seq, g.From)
			} else {
				fmt.Fprintf(&b, "  %s=%q missing %s %d..%d\n", r.Options.Key, g.Key, r.Options.Seq, g.From, g.To)
			}
		}
	}
	if len(r.Malformed) > 0 {
		fmt.Fprintf(&b, "malformed: %d\n", len(r.Malformed))
		for i, m := range r.Malformed {
			if i == limit {
				fmt.Fprintf(&b, "  … %d more\n", len(r.Malformed)-limit)
				break
			}
			fmt.Fprintf(&b, "  %s: %s\n", m.At, m.Reason)
		}
	}
	if r.Options.Expect >= 0 {
		if r.CountMismatch() {
			fmt.Fprintf(&b, "count: %d records, expected %d (MISMATCH)\n", r.Records, r.Options.Expect)
		} else {
			fmt.Fprintf(&b, "count: %d records, as expected\n", r.Records)
		}
	}
	if r.OK() {
		b.WriteString("OK\n")
	} else {
		b.WriteString("FAIL\n")
	}
	_, err := w.Write(b.Bytes())
	return err
}
