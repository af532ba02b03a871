package engine_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/discard"
	"github.com/weirstream/weir/internal/engine"
	"github.com/weirstream/weir/runtime"
)

// TestStatusPageInBrowser opens the status page of a running job in
// headless Chromium and checks that its script rendered the operators and
// a completed checkpoint from /api/status.
func TestStatusPageInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (Debian: apt-get install chromium; `make test` installs it as root); skipping the browser test")
	}
	var dropped discard.Counter
	completed := make(chan struct{}, 1)
	cfg := runtime.Config{
		CheckpointDir: t.TempDir(), MetricsAddr: "127.0.0.1:0", CheckpointInterval: 50 * time.Millisecond, Parallelism: 2,
		Events: runtime.EventListener{CheckpointCompleted: func(runtime.CheckpointInfo) {
			select {
			case completed <- struct{}{}:
			default:
			}
		}},
	}
	j := startJob(t, observedPipeline("browser", 20000, must(discard.NewSink(discard.SinkConfig[string]{Counter: &dropped}))), cfg)
	select {
	case <-completed:
	case <-time.After(30 * time.Second):
		t.Fatal("no checkpoint completed within 30s")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=3000", "--dump-dom", "http://"+j.MetricsAddr()+"/")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("chromium: %v\n%s", err, stderr)
	}
	dom := string(out)
	if !regexp.MustCompile(`data-refreshes="[1-9]`).MatchString(dom) {
		t.Fatalf("the page's script did not render /api/status:\n%s", dom)
	}
	for _, op := range []string{"gen", "Map#1", "count", "sink"} {
		if !strings.Contains(dom, `data-operator="`+op+`"`) {
			t.Errorf("operator %s not shown", op)
		}
	}
	if !strings.Contains(dom, `data-outcome="completed"`) {
		t.Errorf("no completed checkpoint shown")
	}
	if !strings.Contains(dom, `data-from="Map#1" data-to="count"`) || !strings.Contains(dom, "<svg") {
		t.Errorf("job graph not shown")
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
}

// TestStatusAPI checks the JSON of /api/status against the status of the job.
func TestStatusAPI(t *testing.T) {
	var dropped discard.Counter
	cfg := runtime.Config{CheckpointDir: t.TempDir(), MetricsAddr: "127.0.0.1:0", CheckpointInterval: 50 * time.Millisecond}
	j := startJob(t, observedPipeline("api", 20000, must(discard.NewSink(discard.SinkConfig[string]{Counter: &dropped}))), cfg)
	var st engine.Status
	eventually(t, 30*time.Second, "a checkpoint in /api/status", func() bool {
		resp, err := http.Get("http://" + j.MetricsAddr() + "/api/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		st = engine.Status{}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return len(st.Checkpoints) > 0
	})
	if st.Job != "api" || st.State != "running" || !st.Ready || len(st.Operators) != 4 {
		t.Errorf("status: %+v", st)
	}
	// With parallelism 1 everything is chained into one task.
	for _, e := range st.Edges {
		if !e.Chained {
			t.Errorf("edge %+v not chained at parallelism 1", e)
		}
	}
	if c := st.Checkpoints[0]; c.Outcome != "completed" || c.ID == 0 || c.Duration <= 0 || c.Ended.Before(c.Started) {
		t.Errorf("checkpoint: %+v", c)
	}
	resp, err := http.Get("http://" + j.MetricsAddr() + "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/nonexistent: %s", resp.Status)
	}
}
