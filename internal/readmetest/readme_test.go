package readmetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// imports maps the package names snippets use to import paths.
var imports = map[string]string{
	"runtime":    "github.com/weirstream/weir/runtime",
	"operators":  "github.com/weirstream/weir/operators",
	"state":      "github.com/weirstream/weir/state",
	"checkpoint": "github.com/weirstream/weir/checkpoint",
	"weirtest":   "github.com/weirstream/weir/weirtest",
	"verify":     "github.com/weirstream/weir/weirtest/verify",
	"orders":     "github.com/weirstream/weir/weirtest/orders",
	"kafka":      "github.com/weirstream/weir/connectors/kafka",
	"kafkatest":  "github.com/weirstream/weir/connectors/kafka/kafkatest",
	"file":       "github.com/weirstream/weir/connectors/file",
	"postgres":   "github.com/weirstream/weir/connectors/postgres",
	"generator":  "github.com/weirstream/weir/connectors/generator",
	"stdout":     "github.com/weirstream/weir/connectors/stdout",
	"discard":    "github.com/weirstream/weir/connectors/discard",
	"bytes":      "bytes",
	"context":    "context",
	"errors":     "errors",
	"flag":       "flag",
	"fmt":        "fmt",
	"io":         "io",
	"json":       "encoding/json",
	"log":        "log",
	"os":         "os",
	"slog":       "log/slog",
	"strconv":    "strconv",
	"strings":    "strings",
	"testing":    "testing",
	"time":       "time",
	"unicode":    "unicode",
}

// snippet is one ```go block.
type snippet struct {
	file     string
	line     int // of the block's first line of code
	code     string
	ctxLine  int // of the context's first line; 0: no context
	context  string
	wrapped  string   // the file to type-check
	packages []string // import paths it uses
}

var (
	fenceOpen    = regexp.MustCompile("^```go\\s*$")
	contextOpen  = "<!-- snippet-context"
	contextClose = "-->"
)

// extract returns the ```go blocks of a Markdown document, each with the
// snippet-context comment that precedes it, if any.
func extract(name string, md []byte) ([]*snippet, error) {
	lines := strings.Split(string(md), "\n")
	var out []*snippet
	var ctx []string
	ctxLine, ctxEnd := 0, -1
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.TrimSpace(l) == contextOpen:
			start := i
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != contextClose; i++ {
			}
			if i == len(lines) {
				return nil, fmt.Errorf("%s:%d: %s without %s", name, start+1, contextOpen, contextClose)
			}
			ctx, ctxLine, ctxEnd = lines[start+1:i], start+2, i
		case fenceOpen.MatchString(l):
			start := i + 1
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			}
			if i == len(lines) {
				return nil, fmt.Errorf("%s:%d: unclosed ```go block", name, start)
			}
			s := &snippet{file: name, line: start + 1, code: strings.Join(lines[start:i], "\n")}
			if ctxEnd == start-2 { // the context comment is right above the fence
				s.context, s.ctxLine = strings.Join(ctx, "\n"), ctxLine
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// wrap makes the snippet a file of package main and finds its imports.
func (s *snippet) wrap() error {
	var body string
	switch {
	case strings.HasPrefix(strings.TrimSpace(s.code), "package "):
		s.wrapped = s.lineDirective(s.line) + s.code + "\n"
		return s.findImports(true)
	case parses("package main\n" + s.context + "\n" + s.code):
		body = s.lineDirective(s.line) + s.code + "\n"
	default:
		body = "func _() {\n" + s.lineDirective(s.line) + s.code + "\n}\n"
	}
	var b strings.Builder
	b.WriteString("package main\n\n")
	if s.context != "" {
		b.WriteString(s.lineDirective(s.ctxLine) + s.context + "\n")
	}
	b.WriteString(body)
	s.wrapped = b.String()
	return s.findImports(false)
}

// lineDirective makes the next line's position the Markdown line.
func (s *snippet) lineDirective(line int) string {
	return fmt.Sprintf("\n//line %s:%d\n", s.file, line)
}

func parses(src string) bool {
	_, err := parser.ParseFile(token.NewFileSet(), "", src, parser.SkipObjectResolution)
	return err == nil
}

// findImports adds an import for every package name the file uses and does
// not declare (whole files import their own).
func (s *snippet) findImports(whole bool) error {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, s.file, s.wrapped, 0)
	if err != nil {
		return err
	}
	if whole {
		for _, is := range f.Imports {
			s.packages = append(s.packages, strings.Trim(is.Path.Value, `"`))
		}
		return nil
	}
	var names []string
	for _, id := range f.Unresolved {
		if path, ok := imports[id.Name]; ok && !slices.Contains(names, id.Name) && usedAsPackage(f, id) {
			names = append(names, id.Name)
			s.packages = append(s.packages, path)
		}
	}
	if len(names) == 0 {
		return nil
	}
	var imp strings.Builder
	imp.WriteString("package main\n\nimport (\n")
	for _, n := range names {
		fmt.Fprintf(&imp, "\t%s %q\n", n, imports[n])
	}
	imp.WriteString(")\n")
	s.wrapped = imp.String() + strings.TrimPrefix(s.wrapped, "package main\n")
	return nil
}

// usedAsPackage reports whether id is the X of a selector (pkg.Name).
func usedAsPackage(f *ast.File, id *ast.Ident) bool {
	found := false
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok && sel.X == id {
			found = true
		}
		return !found
	})
	return found
}

// exportData returns the export data files of the packages and their
// dependencies, built by the go command.
func exportData(packages []string) (map[string]string, error) {
	args := append([]string{"list", "-export", "-deps", "-json=ImportPath,Export"}, packages...)
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w\n%s", err, stderr.Bytes())
	}
	files := map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct{ ImportPath, Export string }
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return files, nil
		} else if err != nil {
			return nil, err
		}
		files[p.ImportPath] = p.Export
	}
}

// check type-checks every ```go snippet of a Markdown document and returns
// the errors, positioned at Markdown lines.
func check(name string, md []byte) ([]error, error) {
	snippets, err := extract(name, md)
	if err != nil {
		return nil, err
	}
	var errs, all []string
	for _, s := range snippets {
		if err := s.wrap(); err != nil {
			errs = append(errs, err.Error())
		}
		all = append(all, s.packages...)
	}
	if len(errs) > 0 {
		return []error{errors.New(strings.Join(errs, "\n"))}, nil
	}
	slices.Sort(all)
	exports, err := exportData(slices.Compact(all))
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok || f == "" {
			return nil, fmt.Errorf("no export data for %q (not a package the README may use? add it to imports)", path)
		}
		return os.Open(f)
	})
	var found []error
	for _, s := range snippets {
		f, err := parser.ParseFile(fset, s.file, s.wrapped, 0)
		if err != nil {
			found = append(found, err)
			continue
		}
		conf := types.Config{Importer: imp, Error: func(err error) {
			if te, ok := err.(types.Error); ok && te.Soft && strings.Contains(te.Msg, "declared and not used") {
				return // a snippet may show a value without using it
			}
			found = append(found, err)
		}}
		_, _ = conf.Check("main", fset, []*ast.File{f}, nil)
	}
	return found, nil
}

// TestREADMESnippetsCompile checks the README's Go snippets.
func TestREADMESnippetsCompile(t *testing.T) {
	const path = "../../README.md"
	md, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	errs, err := check("README.md", md)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Error(e)
	}
	if len(errs) > 0 {
		t.Log("fix the snippets (see package readmetest for the snippet-context convention for partial ones)")
	}
}

// TestCheckFindsWrongNames proves the check can fail: a snippet of each
// shape with a name the API lacks is reported at its Markdown line, and
// the same snippets with the right names pass.
func TestCheckFindsWrongNames(t *testing.T) {
	const md = "# Doc\n" +
		"```go\n" + // line 2
		"p := runtime.NewPipeline(\"x\")\n" + // line 3: statements
		"```\n" +
		"<!-- snippet-context\n" +
		"var p *runtime.Pipeline\n" +
		"-->\n" +
		"```go\n" +
		"func main() {\n" + // line 9: declarations, with context
		"\tfmt.Println(p.Err())\n" +
		"}\n" +
		"```\n" +
		"```go\n" +
		"package main\n\n" + // line 14: a whole file
		"import \"github.com/weirstream/weir/runtime\"\n\n" +
		"var _ = runtime.NewPipeline\n" +
		"```\n"
	if errs, err := check("DOC.md", []byte(md)); err != nil || len(errs) > 0 {
		t.Fatalf("correct snippets: %v %v", errs, err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{"runtime.NewPipeline(\"x\")", "runtime.NewPipelin(\"x\")", "DOC.md:3:"},
		{"p.Err()", "p.Error()", "DOC.md:10:"},
		{"var _ = runtime.NewPipeline\n", "var _ = runtime.NewPipe\n", "DOC.md:18:"},
		{"var p *runtime.Pipeline", "var p *runtime.Pipe", "DOC.md:6:"},
	} {
		errs, err := check("DOC.md", []byte(strings.Replace(md, tc.from, tc.to, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if len(errs) == 0 || !strings.Contains(errs[0].Error(), tc.want) {
			t.Errorf("%s → %s: errors %v, want one at %s", tc.from, tc.to, errs, tc.want)
		}
	}
}
