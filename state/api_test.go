package state

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	iofs "io/fs"
	"slices"
	"strings"
	"testing"
)

// userAPI is the public surface of package state: what operators and their
// users call. The backend, scopes' key setting, key groups and timers are the
// runtime's, in internal/statebackend and internal/keygroup; a name added
// here is a promise to users, so add one only on purpose.
var userAPI = []string{
	"Bool", "Bytes", "Codec", "CodecFor", "ErrCorruptValue", "ErrKindChanged",
	"Float64", "Int", "Int32", "Int64", "JSON", "JSONCodec", "JSONCodec.Append",
	"JSONCodec.Decode", "JSONCodec.Encode", "List", "List.Add", "List.AddAll",
	"List.All", "List.Clear", "List.Len", "List.Update", "Map", "Map.All",
	"Map.Clear", "Map.Delete", "Map.Get", "Map.Len", "Map.Put", "Namespaced",
	"Namespaced.All", "Namespaced.Delete", "Namespaced.Drop", "Namespaced.Get",
	"Namespaced.Namespaces", "Namespaced.Put", "Namespaced.SetPrefetch",
	"Namespaced.Update", "NewList", "NewMap", "NewNamespaced", "NewValue",
	"OnCreateAndWrite", "OnReadAndWrite", "Option", "Scope", "Scope.Key",
	"String", "TTLUpdate", "TTLUpdate.String", "Uint64", "Value", "Value.Delete",
	"Value.Get", "Value.Put", "Value.Update", "WithTTL",
}

func TestPublicSurface(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi iofs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	d := doc.New(pkgs["state"], "github.com/weirstream/weir/state", 0)
	var got []string
	values := func(vs []*doc.Value) {
		for _, v := range vs {
			for _, n := range v.Names {
				if ast.IsExported(n) {
					got = append(got, n)
				}
			}
		}
	}
	funcs := func(prefix string, fs []*doc.Func) {
		for _, f := range fs {
			got = append(got, prefix+f.Name)
		}
	}
	values(d.Consts)
	values(d.Vars)
	funcs("", d.Funcs)
	for _, typ := range d.Types {
		got = append(got, typ.Name)
		values(typ.Consts)
		values(typ.Vars)
		funcs("", typ.Funcs)
		funcs(typ.Name+".", typ.Methods)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(userAPI))
	for _, n := range got {
		if !slices.Contains(want, n) {
			t.Errorf("state exports %s, which is not in its user API", n)
		}
	}
	for _, n := range want {
		if !slices.Contains(got, n) {
			t.Errorf("state no longer exports %s", n)
		}
	}
}
