package weirtest

import (
	"context"
	"fmt"
	"hash/maphash"
	"strings"
	"testing"
)

// lines is an Output of fixed records per run name.
type lines map[string][]string

func (l lines) Read(_ context.Context, run Run, record func([]byte)) error {
	for _, s := range l[run.Name] {
		record([]byte(s))
	}
	return nil
}

func TestCompareCountsDuplicatesLostDifferent(t *testing.T) {
	out := lines{
		"clean":   {"a", "b", "b", "c", "d", "e"},
		"crashed": {"a", "a", "b", "c", "c", "c", "x", "e", "e"},
	}
	r := &Report{Clean: Run{Name: "clean"}, Crashed: Run{Name: "crashed"}}
	seed := maphash.MakeSeed()
	ctx := t.Context()
	clean, _ := hashes(ctx, out, r.Clean, seed)
	crashed, _ := hashes(ctx, out, r.Crashed, seed)
	if err := r.examples(ctx, out, seed, r.compare(clean, crashed)); err != nil {
		t.Fatal(err)
	}
	// a +1, b -1, c +2, d -1, e +1, x new.
	if r.Duplicates != 4 || r.Lost != 2 || r.Different != 1 || r.CleanRecords != 6 || r.CrashedRecords != 9 {
		t.Fatalf("got %d duplicates, %d lost, %d different (%d/%d records); want 4, 2, 1 (6/9)",
			r.Duplicates, r.Lost, r.Different, r.CleanRecords, r.CrashedRecords)
	}
	if r.OK() || len(r.Examples) != exampleLimit {
		t.Fatalf("want not OK with %d examples: %v", exampleLimit, r)
	}
	for _, d := range r.Examples {
		if d.Record == "c" && (d.Clean != 1 || d.Crashed != 3) {
			t.Errorf("example c: %+v", d)
		}
	}
	if s := r.String(); !strings.Contains(s, "4 duplicates, 2 lost, 1 different") {
		t.Errorf("report text: %s", s)
	}
}

func TestCompareEqualMultisets(t *testing.T) {
	out := lines{"clean": {"b", "a", "b"}, "crashed": {"b", "b", "a"}}
	r := &Report{Clean: Run{Name: "clean"}, Crashed: Run{Name: "crashed"}}
	seed := maphash.MakeSeed()
	clean, _ := hashes(t.Context(), out, r.Clean, seed)
	crashed, _ := hashes(t.Context(), out, r.Crashed, seed)
	if diff := r.compare(clean, crashed); len(diff) != 0 || !r.OK() {
		t.Fatalf("equal multisets reported different: %v", r)
	}
	n, sum, _ := fingerprint(t.Context(), out, r.Clean, seed)
	m, sum2, _ := fingerprint(t.Context(), out, r.Crashed, seed)
	if n != m || sum != sum2 {
		t.Fatalf("equal multisets have different fingerprints: %d %x, %d %x", n, sum, m, sum2)
	}
	out["crashed"] = []string{"b", "a", "a"}
	if m, sum2, _ = fingerprint(t.Context(), out, r.Crashed, seed); n != m || sum == sum2 {
		t.Fatalf("a duplicate instead of a lost record went unnoticed by the fingerprint")
	}
}

// TestExamplesShowDifferentBeforeDuplicates: a run that duplicates by
// design (at least once) must still show, among its few examples, the one
// record that it changed.
func TestExamplesShowDifferentBeforeDuplicates(t *testing.T) {
	out := lines{"clean": {}, "crashed": {}}
	for i := range 2 * exampleLimit {
		rec := fmt.Sprint("dup-", i)
		out["clean"] = append(out["clean"], rec)
		out["crashed"] = append(out["crashed"], rec, rec)
	}
	out["crashed"] = append(out["crashed"], "zz-changed")
	r := &Report{Clean: Run{Name: "clean"}, Crashed: Run{Name: "crashed"}}
	seed := maphash.MakeSeed()
	clean, _ := hashes(t.Context(), out, r.Clean, seed)
	crashed, _ := hashes(t.Context(), out, r.Crashed, seed)
	if err := r.examples(t.Context(), out, seed, r.compare(clean, crashed)); err != nil {
		t.Fatal(err)
	}
	if len(r.Examples) != exampleLimit || r.Examples[0].Record != "zz-changed" {
		t.Fatalf("examples %+v: want %d, the different record first", r.Examples, exampleLimit)
	}
}
