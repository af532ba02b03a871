package e2e

import (
	"strconv"
	"strings"
	"testing"

	"github.com/weirstream/weir/weirtest"
)

// TestEventTimeCrashes runs the event-time job (eventtimejob: deduplication,
// a tumbling-window count and an interval join over out-of-order input) as a
// child process through the crash-test kit: once cleanly, and once crashed
// at points of the checkpoint protocol and killed with SIGKILL at random
// moments, restarted each time. The committed outputs must be equal as
// multisets, and the clean one what the input implies. Windows are open and
// join buffers full at every moment of the run, so every crash leaves
// event-time timers pending: their firings after recovery are part of the
// compared output.
func TestEventTimeCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a job binary many times")
	}
	const events = 40000
	out := weirtest.Files{Dir: "{dir}/out"}
	r := weirtest.Test(t, weirtest.Job{
		Binary: binary(t, "github.com/weirstream/weir/internal/e2e/eventtimejob"),
		Args: []string{"--output", "{dir}/out", "--checkpoint-dir", "{dir}/ckpt",
			"--parallelism", "2", "--checkpoint-interval", "{interval}", "--events", strconv.Itoa(events)},
		Output:          out,
		Kills:           5,
		ProtocolCrashes: []string{"before-manifest:2", "after-manifest:2", "after-snapshot:3"},
	})
	if r.Kills != 8 {
		t.Fatalf("%d kills landed, want 8", r.Kills)
	}
	var clean []string
	if err := out.Read(t.Context(), r.Clean, func(l []byte) { clean = append(clean, string(l)) }); err != nil {
		t.Fatal(err)
	}
	checkEventTimeOutput(t, clean, events)
}

// checkEventTimeOutput checks the uninterrupted run against what the input
// implies, so that the comparison is not against a broken reference: every
// distinct click counted in exactly one window, joins present, nothing late.
func checkEventTimeOutput(t *testing.T, lines []string, events uint64) {
	t.Helper()
	var clicks, sum, joins uint64
	for _, l := range lines {
		f := strings.Fields(l)
		switch f[0] {
		case "W":
			n, _ := strconv.ParseUint(f[3], 10, 64)
			s, _ := strconv.ParseUint(f[4], 10, 64)
			clicks, sum = clicks+n, sum+s
		case "J":
			joins++
		default:
			t.Fatalf("unexpected output line %q", l)
		}
	}
	var wantClicks, wantSum uint64
	for i := range events {
		if i%10 != 9 { // position 9 of 10 redelivers an earlier click
			wantClicks, wantSum = wantClicks+1, wantSum+i
		}
	}
	if clicks != wantClicks || sum != wantSum {
		t.Fatalf("uninterrupted run: windows counted %d clicks (seq sum %d), want %d (%d)", clicks, sum, wantClicks, wantSum)
	}
	if joins < events/4 {
		t.Fatalf("uninterrupted run: only %d joined pairs", joins)
	}
}
