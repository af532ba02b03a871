package readmetest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestExamplesImportNoInternal checks that every example can be copied
// out of the module: its program imports no internal package (its tests
// may, for helpers such as a PostgreSQL server).
func TestExamplesImportNoInternal(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "../../examples/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		for _, imp := range strings.Fields(imports) {
			if strings.Contains(imp, "/internal/") || strings.HasSuffix(imp, "/internal") {
				t.Errorf("%s imports %s: a user copying the example cannot; expose what it needs publicly", pkg, imp)
			}
		}
	}
}
