package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// jsonRec exercises what encoding/json's semantics cover: tags, omitempty,
// ",string", "-", untagged and embedded fields, pointers, maps, raw
// messages, interfaces, times and byte slices.
type jsonRec struct {
	ID    int64           `json:"id"`
	Name  string          `json:"name,omitempty"`
	Small int8            `json:"small"`
	U     uint16          `json:"u"`
	F     float64         `json:"f"`
	B     bool            `json:"b"`
	Ptr   *int            `json:"ptr"`
	Tags  []string        `json:"tags"`
	M     map[string]int  `json:"m,omitempty"`
	Raw   json.RawMessage `json:"raw,omitempty"`
	Any   any             `json:"any,omitempty"`
	Str   int             `json:"str,string,omitempty"`
	T     time.Time       `json:"t"`
	Bytes []byte          `json:"bytes,omitempty"`
	Skip  string          `json:"-"`
	NoTag string
	jsonInner
	private int
}

type jsonInner struct {
	A int `json:"a"`
}

// jsonDecodeCases are inputs on which JSONCodec.Decode must agree with
// encoding/json.Unmarshal: the same value, or an error for the same inputs.
var jsonDecodeCases = []string{
	`{"id":1,"name":"x"}`,
	`{"ID":2,"NAME":"y"}`, // case-insensitive field match
	`{"unknown":1,"id":3}`,
	`{"id":1,"id":2}`, // last wins
	`{"id":null,"name":null,"tags":null}`,
	`{"small":-128,"u":65535}`,
	`{"t":"2024-01-02T03:04:05.123+01:00"}`,
	`{"bytes":"aGVsbG8="}`,
	`{"any":{"x":[1,"a",null,true,1.5]}}`,
	`{"any":12345678901234567890}`,
	`{"raw":{"k": [1, 2]}}`,
	`{"m":{"a":1,"b":2}}`,
	`{"a":5}`,
	`{"Skip":"s","NoTag":"n","notag":"m"}`,
	`{"private":1}`,
	`{"str":"12"}`,
	`{"ptr":5}`,
	`{"name":"\u00e9\ud83d\ude00 a\tb"}`,
	"{\"name\":\"\xff\"}", // invalid UTF-8 becomes U+FFFD
	`{"name":"\ud800"}`,   // lone surrogate becomes U+FFFD
	` {"id" : 9 } `,
	`{"f":-0.0,"id":-0}`,
	`{"f":1E+2}`,
	`null`,
	// Bad input.
	``,
	`   `,
	`{"id":1`,
	`{"id":1} x`,
	`{"id":1}{"id":2}`,
	`{"id":1,}`,
	`{"id":01}`,
	`{'id':1}`,
	"{\"name\":\"a\x01b\"}",
	`[]`,
	`"str"`,
	`{"small":300}`,
	`{"u":-1}`,
	`{"id":1.5}`,
	`{"id":"1"}`,
	`{"id":true}`,
	`{"id":9223372036854775808}`,
	`{"id":1e400}`,
	`{"f":1e400}`,
	`{"name":1,"id":7}`,
	`{"b":"true"}`,
	`{"str":12}`,
	`{"t":"yesterday"}`,
	`{"bytes":"!!"}`,
	`{"m":{"a":"x"}}`,
	`{"tags":["a",1]}`,
	`{"tags":{}}`,
}

// checkJSONDecode compares JSONCodec.Decode with encoding/json.Unmarshal on
// src.
func checkJSONDecode(t *testing.T, src []byte) {
	t.Helper()
	var want jsonRec
	werr := json.Unmarshal(src, &want)
	got, gerr := JSON[jsonRec]().Decode(src)
	switch {
	case werr == nil && gerr != nil:
		t.Fatalf("Decode(%q) = %v; encoding/json accepts it as %+v", src, gerr, want)
	case werr != nil && gerr == nil:
		t.Fatalf("Decode(%q) = %+v; encoding/json rejects it: %v", src, got, werr)
	case werr != nil:
		if !errors.Is(gerr, ErrCorruptValue) {
			t.Fatalf("Decode(%q) = %v, want an error wrapping ErrCorruptValue", src, gerr)
		}
		if !reflect.DeepEqual(got, jsonRec{}) {
			t.Fatalf("Decode(%q) returned %+v with its error, want the zero value", src, got)
		}
		var syntax *json.SyntaxError
		if errors.As(werr, &syntax) && !errors.As(gerr, &syntax) {
			t.Fatalf("Decode(%q) = %v, want a *json.SyntaxError as encoding/json's %v", src, gerr, werr)
		}
	case !reflect.DeepEqual(got, want):
		t.Fatalf("Decode(%q) = %+v, encoding/json %+v", src, got, want)
	}
}

func TestJSONCodecDecodesAsEncodingJSON(t *testing.T) {
	for _, src := range jsonDecodeCases {
		checkJSONDecode(t, []byte(src))
	}
}

func TestJSONCodecEncodesAsEncodingJSON(t *testing.T) {
	one := 1
	c := JSON[jsonRec]()
	for i, v := range []jsonRec{
		{},
		{ID: 1, Name: "<a&b>", Tags: []string{}, M: map[string]int{"z": 1, "a": 2}},
		{Name: "\u2028\u2029 \xff é \x01", Ptr: &one, Str: 5, Bytes: []byte("hi")},
		{Raw: json.RawMessage(`{ "a" : 1 }`), Any: map[string]any{"b": 1, "a": []any{1.5, "x", nil}}},
		{F: 1e21, T: time.Date(2024, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))},
		{F: 0.000001}, {F: 1e-7}, {F: math.Copysign(0, -1)}, {F: 123456789.123}, {F: math.MaxFloat64},
		{jsonInner: jsonInner{A: 3}, NoTag: "n", Skip: "s", private: 4},
	} {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got := c.Append([]byte("pre"), v)
		if string(got) != "pre"+string(want) {
			t.Errorf("#%d: Append = %s, encoding/json %s", i, got, want)
		}
		var wantBack jsonRec
		if err := json.Unmarshal(want, &wantBack); err != nil {
			t.Fatal(err)
		}
		if back := roundTrip(t, c, v); !reflect.DeepEqual(back, wantBack) {
			t.Errorf("#%d: round trip gave %+v, encoding/json %+v", i, back, wantBack)
		}
	}
}

func TestJSONCodecEncodeRejectsWhatEncodingJSONRejects(t *testing.T) {
	c := JSON[jsonRec]()
	for i, v := range []jsonRec{
		{F: math.NaN()}, {F: math.Inf(-1)}, {Raw: json.RawMessage(`{bad`)}, {Any: make(chan int)},
	} {
		if _, err := json.Marshal(v); err == nil {
			t.Fatalf("#%d: encoding/json accepts %+v", i, v)
		}
		dst := []byte("pre")
		out, err := c.Encode(dst, v)
		if err == nil || !strings.Contains(err.Error(), "state.jsonRec") {
			t.Errorf("#%d: Encode error %v, want one naming the type", i, err)
		}
		if string(out) != "pre" {
			t.Errorf("#%d: Encode returned %q with its error, want dst unchanged", i, out)
		}
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(r.(string), "state.jsonRec") {
					t.Errorf("#%d: Append panicked with %v, want a message naming the type", i, r)
				}
			}()
			c.Append(nil, v)
		}()
	}
}

// TestJSONCodecMethodValues pins the signatures that let a JSONCodec's
// methods serve as connector hooks without a wrapper.
func TestJSONCodecMethodValues(t *testing.T) {
	c := JSON[jsonRec]()
	var (
		decode func([]byte) (jsonRec, error)         = c.Decode
		encode func([]byte, jsonRec) ([]byte, error) = c.Encode
		codec  Codec[jsonRec]                        = c
	)
	b, err := encode(nil, jsonRec{ID: 7})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := decode(b); err != nil || v.ID != 7 {
		t.Fatalf("decode(%s) = %+v, %v", b, v, err)
	}
	if v := roundTrip(t, codec, jsonRec{ID: 8}); v.ID != 8 {
		t.Fatalf("round trip gave %+v", v)
	}
}

// FuzzJSONCodecDecode holds Decode to encoding/json's semantics on any
// input, and checks that what it accepts encodes as encoding/json would.
func FuzzJSONCodecDecode(f *testing.F) {
	for _, src := range jsonDecodeCases {
		f.Add([]byte(src))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		checkJSONDecode(t, src)
		v, err := JSON[jsonRec]().Decode(src)
		if err != nil {
			return
		}
		want, werr := json.Marshal(v)
		got, gerr := JSON[jsonRec]().Encode(nil, v)
		if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("Encode(Decode(%q)) = %s, %v; encoding/json %s, %v", src, got, gerr, want, werr)
		}
	})
}

// BenchmarkJSONCodec compares JSONCodec with encoding/json on the Kafka
// benchmark's work: decode a record, add a field, encode it.
func BenchmarkJSONCodec(b *testing.B) {
	type event struct {
		ID     int64    `json:"id"`
		User   string   `json:"user"`
		Kind   string   `json:"kind"`
		Amount float64  `json:"amount"`
		Time   int64    `json:"ts"`
		Tags   []string `json:"tags,omitempty"`
		Note   string   `json:"note,omitempty"`
	}
	src := []byte(`{"id":1234567,"user":"user-0000001234","kind":"purchase","amount":1234.56,"ts":1764755700123,"tags":["web","eu-west"]}`)
	b.Run("JSONCodec", func(b *testing.B) {
		c := JSON[event]()
		buf := make([]byte, 0, 256)
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		for b.Loop() {
			v, err := c.Decode(src)
			if err != nil {
				b.Fatal(err)
			}
			v.Note = "seen"
			buf = c.Append(buf[:0], v)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		buf := make([]byte, 0, 256)
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		for b.Loop() {
			var v event
			if err := json.Unmarshal(src, &v); err != nil {
				b.Fatal(err)
			}
			v.Note = "seen"
			out, err := json.Marshal(&v)
			if err != nil {
				b.Fatal(err)
			}
			buf = append(buf[:0], out...)
		}
	})
}
