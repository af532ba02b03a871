package e2e

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/internal/devbroker/devbrokertest"
	"github.com/weirstream/weir/runtime"
)

// TestBrokerRestart stops the broker in the middle of a run (after the
// job's first checkpoint), keeps it down for a while, and starts it again on
// the same address and data directory. The job must ride it out with
// retries and back-off, without a restart of its own, and finish with exact
// output.
func TestBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a broker mid-job; skipped in -short mode")
	}
	dataDir := t.TempDir()
	e := newEnv(t, devbrokertest.Config{DataDir: dataDir}, 30_000, 50)

	const down = 1500 * time.Millisecond
	checkpoints := make(chan uint64, 1024)
	p := runtime.NewPipeline("restart")
	BuildCountJob(p, JobConfig{
		Brokers: e.brokers, InputTopic: "events", OutputTopic: "counts",
		SinkMode: kafka.ExactlyOnce, TransactionalIDPrefix: "restart",
		SinkBatchSize: 100, RatePerSecond: 5000, MaxBytesPerRead: 16 << 10,
	})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runtime.Run(ctx, p, runtime.Config{
			CheckpointDir:      filepath.Join(t.TempDir(), "ckpt"),
			CheckpointInterval: 200 * time.Millisecond,
			Parallelism:        2,
			Logger:             slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
			Events: runtime.EventListener{CheckpointCompleted: func(info runtime.CheckpointInfo) {
				select {
				case checkpoints <- info.ID:
				default:
				}
			}},
		})
	}()

	select {
	case <-checkpoints:
	case err := <-done:
		t.Fatalf("job ended before its first checkpoint: %v", err)
	}
	if err := e.broker.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	// NB: the outage lasts a fixed time on purpose; the job is not waited
	// for here, it must notice the broker's absence and retry.
	select {
	case <-time.After(down):
	case err := <-done:
		t.Fatalf("job ended while the broker was down: %v", err)
	}
	if err := e.broker.Restart(); err != nil {
		t.Fatalf("restart broker on %s: %v", e.broker.Addr(), err)
	}
	t.Logf("broker down for %v", time.Since(stopped).Round(time.Millisecond))
	if err := <-done; err != nil {
		t.Fatalf("job failed across the broker restart: %v", err)
	}
	t.Logf("%d checkpoints completed after the first", len(checkpoints))
	// NB: the job is paced at 10k records/s over 30k records, and the
	// broker went down after its first checkpoint: most of the input was
	// read from the restarted broker, and all output was committed through
	// it. How the clients noticed the outage depends on timing.
	t.Logf("retries logged by the job while the broker was down: %d", strings.Count(logs.String(), "retrying"))
	if testing.Verbose() {
		t.Logf("job warnings:\n%s", logs.String())
	}
	o := e.check(t, "counts")
	if !o.OK() {
		t.Fatalf("output after a broker restart is not exactly the input:\n%s", report(o))
	}
}

// syncBuffer is a strings.Builder safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
