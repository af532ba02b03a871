package pgtest

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestServer(t *testing.T) {
	url := DB(t)
	c, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	var n int
	if err := c.QueryRow(t.Context(), "SELECT current_setting('max_prepared_transactions')::int").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("max_prepared_transactions is 0")
	}
	// Two databases are distinct.
	other := DB(t)
	if other == url {
		t.Fatalf("DB returned %s twice", url)
	}
}

// TestNotInstalled: without the binaries, Start says what to install.
func TestNotInstalled(t *testing.T) {
	defer func(g string) { binGlob = g }(binGlob)
	binGlob = t.TempDir() + "/*/bin"
	_, err := Start(Options{})
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "make test-deps") {
		t.Fatalf("Start without PostgreSQL = %v, want ErrNotInstalled naming make test-deps", err)
	}
}
