package runtime

import (
	"reflect"
	"strings"
	"testing"
	"time"
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
