package runtime

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// get fetches path from the member's status server.
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestMemberStatus runs real task jobs on a member with a status server:
// one server for all tasks, /readyz ready once every task runs and
// checkpoints (and with no task at all), not ready while a task starts,
// /api/status naming the member and its tasks' epochs and checkpoints, and
// /metrics holding each task's series under its task label.
func TestMemberStatus(t *testing.T) {
	ev := make(chan string, 64)
	cluster := newFakeCluster(4, ev)
	addrs := make(chan string, 16)
	stop := make(chan struct{})
	cfg := Config{
		CheckpointDir: filepath.Join(t.TempDir(), "checkpoints"), CheckpointInterval: 10 * time.Millisecond,
		ReadyCheckpointFactor: 1e6, // readiness by checkpoint age is the engine's; not timed here
		Group:                 "orders", Cluster: cluster, Stop: stop, MetricsAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Events: EventListener{Started: func(info StartInfo) { addrs <- info.MetricsAddr }},
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p := NewPipeline("orders")
	To(From(p, "src", func() (Source[int], error) { return &idleSource{}, nil }), "sink", func() (Sink[int], error) { return nopSink{}, nil })
	m, cleanup, err := newMember(t.Context(), p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	checkpointed := make(chan int, 64)
	release := make(chan struct{})
	m.run = func(ctx context.Context, p *Pipeline, cfg Config, tr taskRun) error {
		if tr.Index == 3 { // held before it starts
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		recorded := cfg.Events.CheckpointCompleted
		cfg.Events.CheckpointCompleted = func(info CheckpointInfo) {
			recorded(info)
			checkpointed <- tr.Index
		}
		return runTask(ctx, p, cfg, tr)
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { done <- m.runMember(ctx) }()
	t.Cleanup(func() { // on failure, before the directories go
		cancel()
		<-done
	})
	req := <-cluster.req

	req.Assigned(t.Context(), []int{0, 2})
	addr := <-addrs
	if addr == "" || <-addrs != addr {
		t.Fatalf("tasks report status server %q, want the member's one", addr)
	}
	for seen := map[int]bool{}; len(seen) < 2; {
		seen[<-checkpointed] = true
	}
	if code, body := get(t, addr, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d %s, want ready: both tasks run and checkpoint", code, body)
	}
	_, body := get(t, addr, "/api/status")
	var st MemberStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Group != "orders" || st.MemberID != "member-1" || st.Tasks != 4 || len(st.Owned) != 2 {
		t.Fatalf("/api/status = %s", body)
	}
	for i, ts := range st.Owned {
		if ts.Task != 2*i || ts.Epoch != 1 || !ts.Started || ts.LastCheckpoint == 0 || ts.Job == nil || ts.Job.Job != "orders" {
			t.Fatalf("/api/status task %+v, want task %d in epoch 1, started and checkpointed, with its job: %s", ts, 2*i, body)
		}
	}
	_, metrics := get(t, addr, "/metrics")
	for _, want := range []string{`task="0"`, `task="2"`} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics has no series with %s:\n%s", want, metrics)
		}
	}

	req.Assigned(t.Context(), []int{3})
	if code, body := get(t, addr, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "task 3 is starting") {
		t.Fatalf("/readyz = %d %s, want unready while task 3 starts", code, body)
	}
	close(release)
	<-addrs
	req.Revoked(t.Context(), []int{0, 2, 3})
	if code, body := get(t, addr, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d %s, want ready: a member without tasks is", code, body)
	}
	if _, metrics := get(t, addr, "/metrics"); strings.Contains(metrics, `task="0"`) {
		t.Fatalf("/metrics still shows task 0 after it was revoked")
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil // for the cleanup
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Fatal("the status server still answers after the member ended")
	}
}
