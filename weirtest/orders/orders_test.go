package orders

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestGenerateDeterministic(t *testing.T) {
	a, err := Generate(42, 1000, 50, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate(42, 1000, 50, 0.1)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed produced different orders")
	}
	c, _ := Generate(43, 1000, 50, 0.1)
	if reflect.DeepEqual(a, c) {
		t.Fatal("different seeds produced the same orders")
	}
}

func TestGenerateShape(t *testing.T) {
	for _, tc := range []struct {
		n, customers int
		dupRate      float64
	}{
		{0, 1, 0}, {1, 1, 1}, {1000, 10, 0}, {1000, 10, 0.1}, {1000, 3, 1},
	} {
		got, err := Generate(7, tc.n, tc.customers, tc.dupRate)
		if err != nil {
			t.Fatal(err)
		}
		unique, dups := Count(got)
		if unique != tc.n {
			t.Errorf("%+v: %d unique orders, want %d", tc, unique, tc.n)
		}
		switch {
		case tc.dupRate == 0 && dups != 0, tc.dupRate == 1 && dups != tc.n:
			t.Errorf("%+v: %d duplicates", tc, dups)
		case tc.dupRate == 0.1 && (dups < 60 || dups > 140):
			t.Errorf("%+v: %d duplicates, want about 100", tc, dups)
		}
		// Every copy of an order is identical, and no order is sent more than twice.
		first := map[string]Order{}
		seen := map[string]int{}
		for _, o := range got {
			if f, ok := first[o.OrderID]; ok && f != o {
				t.Fatalf("%+v: duplicate %v differs from original %v", tc, o, f)
			}
			first[o.OrderID] = o
			seen[o.OrderID]++
			if seen[o.OrderID] > 2 {
				t.Fatalf("%+v: %s sent %d times", tc, o.OrderID, seen[o.OrderID])
			}
			if o.AmountCents < 1 || o.Customer < "c-0001" {
				t.Fatalf("%+v: bad order %v", tc, o)
			}
		}
	}
}

func TestJSON(t *testing.T) {
	b, err := json.Marshal(Order{OrderID: "o-000001", Customer: "c-0042", AmountCents: 123})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"order_id":"o-000001","customer":"c-0042","amount_cents":123}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
}

func TestGenerateRejectsBadArgs(t *testing.T) {
	for _, args := range [][3]float64{{-1, 1, 0}, {1, 0, 0}, {1, 1, -0.1}, {1, 1, 1.5}} {
		if _, err := Generate(1, int(args[0]), int(args[1]), args[2]); err == nil {
			t.Errorf("Generate(%v) succeeded", args)
		}
	}
}
