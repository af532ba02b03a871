// Package jobtest runs a pipeline in the background for tests, through the
// public runtime.Run: Start returns once the job has started, with what
// runtime.EventListener.Started reported, and the Job stops it with a final
// checkpoint (runtime.Config.Stop) and reads its status over HTTP, as an
// operator of the job would.
package jobtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/weirstream/weir/internal/engine"
	"github.com/weirstream/weir/runtime"
)

// Job is a pipeline running in the background.
type Job struct {
	info     runtime.StartInfo
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	err      error
}

// Start runs p with cfg (Config.Stop and Events.Started are the Job's; an
// Events.Started of cfg still runs) and returns once the first attempt has
// started, or with Run's error if it ended before.
func Start(ctx context.Context, p *runtime.Pipeline, cfg runtime.Config) (*Job, error) {
	j := &Job{stop: make(chan struct{}), done: make(chan struct{})}
	started := make(chan struct{})
	var once sync.Once
	userStarted := cfg.Events.Started
	cfg.Events.Started = func(info runtime.StartInfo) {
		once.Do(func() {
			j.info = info
			close(started)
		})
		if userStarted != nil {
			userStarted(info)
		}
	}
	cfg.Stop = j.stop
	go func() {
		defer close(j.done)
		j.err = runtime.Run(ctx, p, cfg)
	}()
	select {
	case <-started:
		return j, nil
	case <-j.done:
		select {
		case <-started: // started, then ended at once
			return j, nil
		default:
		}
		return nil, j.err
	}
}

// Stop asks the job to take a final checkpoint, let the sinks commit it,
// and end; Wait returns when it has.
func (j *Job) Stop() { j.stopOnce.Do(func() { close(j.stop) }) }

// Wait waits for the job to end and returns Run's error.
func (j *Job) Wait() error {
	<-j.done
	return j.err
}

// RestoredFrom returns the id of the checkpoint the first attempt resumed
// from, or 0.
func (j *Job) RestoredFrom() uint64 { return j.info.RestoredFrom }

// MetricsAddr returns the status server's address, or "" without one.
func (j *Job) MetricsAddr() string { return j.info.MetricsAddr }

// Status fetches /api/status from the job's status server.
func (j *Job) Status() (engine.Status, error) {
	var st engine.Status
	if j.info.MetricsAddr == "" {
		return st, fmt.Errorf("jobtest: the job serves no status: set Config.MetricsAddr")
	}
	resp, err := http.Get("http://" + j.info.MetricsAddr + "/api/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("jobtest: /api/status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}
