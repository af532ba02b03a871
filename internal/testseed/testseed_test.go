package testseed

import "testing"

func TestSeedFromEnvironment(t *testing.T) {
	t.Setenv(EnvVar, "18446744073709551615")
	if got := Seed(t); got != 1<<64-1 {
		t.Fatalf("Seed with %s=18446744073709551615 = %d", EnvVar, got)
	}
}

func TestRerun(t *testing.T) {
	want := "WEIR_TEST_SEED=7 go test ./internal/testseed -run '^TestX/sub$'"
	if got := Rerun("TestX/sub", 7); got != want {
		t.Fatalf("Rerun = %q, want %q", got, want)
	}
}
