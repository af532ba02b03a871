package weirtest

import (
	"testing"

	"github.com/weirstream/weir/internal/testseed"
)

// Test is Check for go test: it fails t with the report, the seed and the
// command that reruns the test with it unless the crashed run committed
// exactly what the clean run did. Unless the Job sets them, the runs live
// in t.TempDir(), progress goes to t.Logf, and the seed comes from the
// environment variable WEIR_TEST_SEED, or the clock.
func Test(t testing.TB, job Job) *Report {
	t.Helper()
	if job.Seed == 0 {
		job.Seed = testseed.Seed(t)
	}
	if job.WorkDir == "" {
		job.WorkDir = t.TempDir()
	}
	if job.Logf == nil {
		job.Logf = t.Logf
	}
	r, err := Check(t.Context(), job)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	return r
}
