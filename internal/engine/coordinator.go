package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/weirstream/weir/internal/chkstore"
	"github.com/weirstream/weir/internal/fault"
)

// coordinator triggers checkpoints, collects the tasks' acknowledgements and
// completes checkpoints by writing their manifest, one at a time.
type coordinator struct {
	job    *job
	acks   chan *taskAck
	ended  chan struct{} // a source reached the end of its input
	stop   chan struct{} // closed by requestStop
	nextID uint64
	// savepoints receives requests for a savepoint (see savepoint.go);
	// waiting holds those the next triggered checkpoint takes.
	savepoints chan savepointRequest
	waiting    []savepointRequest

	inflight     *inflight
	endedSources int
	stopping     bool
	finalID      uint64 // id of the final checkpoint once triggered
	finalDone    bool   // the final checkpoint completed
	endOfInput   bool   // the final checkpoint follows the end of every input

	// A restored job triggers its first checkpoint as soon as its sources
	// have caught up with their inputs (lag 0: the backlog that piled up
	// while the job was down is read), instead of an interval after its
	// start: the output of that backlog becomes visible once the
	// checkpoint completes, and a task that moved to another member of a
	// group resumes its output a second sooner (issue 12). catchingUp
	// counts the source tasks that have not reported caught up
	// (task.catchingUp); caughtUp carries their reports. awaitCatchUp is
	// set while the first checkpoint waits for them; any checkpoint
	// triggered otherwise first (by the interval, a stop, a savepoint)
	// ends the wait.
	catchingUp   int
	caughtUp     chan struct{}
	awaitCatchUp bool
}

type inflight struct {
	id      uint64
	final   bool
	started time.Time
	acks    []*taskAck
	timer   *time.Timer
	// savepoints asked of this checkpoint; manifest once it is complete.
	savepoints []savepointRequest
	manifest   *chkstore.Manifest
	// written: the manifest was written, and the checkpoint then aborted
	// (Config.BeforeCommit); it is left in place.
	written bool
}

func newCoordinator(j *job, next uint64) *coordinator {
	return &coordinator{
		job:    j,
		acks:   make(chan *taskAck, 64),
		ended:  make(chan struct{}, 64),
		stop:   make(chan struct{}),
		nextID: next,

		savepoints: make(chan savepointRequest),
	}
}

// acknowledge is called by tasks.
func (c *coordinator) acknowledge(a *taskAck) {
	a.acked = time.Now()
	c.acks <- a
}

// sourceEnded is called by source tasks at the end of their input.
func (c *coordinator) sourceEnded() { c.ended <- struct{}{} }

// awaitCaughtUp makes the first checkpoint wait for n source tasks to call
// sourceCaughtUp (at most an interval); it is called before run.
func (c *coordinator) awaitCaughtUp(n int) {
	c.catchingUp, c.awaitCatchUp = n, n > 0
	c.caughtUp = make(chan struct{}, n) // each reports once: never blocks
}

// sourceCaughtUp is called once by each source task that awaitCaughtUp
// counted, when it has read to the end of its input as it reports it.
func (c *coordinator) sourceCaughtUp() { c.caughtUp <- struct{}{} }

func (c *coordinator) requestStop() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
}

func (c *coordinator) sources() []*task {
	var out []*task
	for _, t := range c.job.tasks {
		if t.source != nil {
			out = append(out, t)
		}
	}
	return out
}

func (c *coordinator) run(ctx context.Context) error {
	ticker := time.NewTicker(c.job.cfg.CheckpointInterval)
	defer ticker.Stop()
	sources := c.sources()
	stop := c.stop
	if r := c.job.restored; r != nil && r.EndOfInput {
		c.endedSources = len(sources)
		c.job.logger.Info("the inputs ended before the restored checkpoint: finishing its commits", "checkpoint", r.ID)
	}
	for {
		var timeout <-chan time.Time
		if c.inflight != nil {
			timeout = c.inflight.timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			if c.inflight == nil && c.finalID == 0 {
				if err := c.trigger(ctx, false); err != nil {
					return err
				}
			}
		case a := <-c.acks:
			done, err := c.onAck(ctx, a)
			if err != nil || done {
				return err
			}
		case <-c.caughtUp:
			if c.catchingUp--; c.catchingUp == 0 && c.awaitCatchUp && c.inflight == nil && c.finalID == 0 {
				c.job.logger.Info("the restored job's sources caught up with their inputs: checkpointing now rather than at the next interval",
					"after", time.Since(c.job.started).Round(time.Millisecond))
				if err := c.trigger(ctx, false); err != nil {
					return err
				}
				ticker.Reset(c.job.cfg.CheckpointInterval)
			}
		case <-c.ended:
			c.endedSources++
		case r := <-c.savepoints:
			c.waiting = append(c.waiting, r)
		case <-stop:
			stop = nil
			c.stopping = true
			c.job.logger.Info("stopping: taking a final checkpoint")
		case <-timeout:
			if err := c.abort(ctx, fmt.Errorf("checkpoint %d %w after %v", c.inflight.id, errCheckpointTimedOut, c.job.cfg.CheckpointTimeout)); err != nil {
				return err
			}
		}
		if (c.stopping || c.endedSources == len(sources)) && c.finalID == 0 && c.inflight == nil {
			if err := c.trigger(ctx, true); err != nil {
				return err
			}
		}
		if len(c.waiting) > 0 && c.finalID == 0 && c.inflight == nil {
			if err := c.trigger(ctx, false); err != nil {
				return err
			}
		}
	}
}

func (c *coordinator) trigger(ctx context.Context, final bool) error {
	id := c.nextID
	c.nextID++
	c.awaitCatchUp = false
	if _, err := c.job.store.Begin(id); err != nil {
		return err
	}
	c.inflight = &inflight{id: id, final: final, started: time.Now(), timer: time.NewTimer(c.job.cfg.CheckpointTimeout), savepoints: c.waiting}
	c.waiting = nil
	if final {
		c.finalID = id
		c.endOfInput = !c.stopping
	}
	c.job.logger.Debug("checkpoint triggered", "checkpoint", id, "final", final)
	c.broadcast(ctx, c.sources(), command{kind: triggerCommand, checkpoint: id, final: final})
	return nil
}

func (c *coordinator) broadcast(ctx context.Context, tasks []*task, cmd command) {
	for _, t := range tasks {
		select {
		case t.control <- cmd:
		case <-ctx.Done():
			return
		}
	}
}

func (c *coordinator) onAck(ctx context.Context, a *taskAck) (done bool, err error) {
	in := c.inflight
	if in == nil || a.checkpoint != in.id {
		return false, nil // late acknowledgement of an aborted checkpoint
	}
	if a.err != nil {
		return false, c.abort(ctx, fmt.Errorf("checkpoint %d declined by task %s: %w", in.id, a.task, a.err))
	}
	in.acks = append(in.acks, a)
	if len(in.acks) < len(c.job.tasks) {
		return false, nil
	}
	info, err := c.complete(in)
	if err == nil {
		err = c.beforeCommit(in)
	}
	if err != nil {
		aborted := c.abort(ctx, err)
		if errors.Is(err, ErrUnrecoverable) {
			return false, err // declined by Config.BeforeManifest or BeforeCommit
		}
		return false, aborted
	}
	c.inflight = nil
	in.timer.Stop()
	c.job.logger.Info("checkpoint completed", "checkpoint", info.ID, "duration", info.Duration,
		"sync_pause_max", info.MaxSyncPause, "bytes_written", info.BytesWritten, "final", info.Final)
	c.job.metrics.checkpointCompleted(info, in)
	fault.Point("after-manifest")
	if err := c.writeSavepoints(ctx, in); err != nil {
		return false, err
	}
	c.broadcast(ctx, c.job.tasks, command{kind: completeCommand, checkpoint: in.id})
	if err := c.job.store.Retain(c.job.cfg.RetainCheckpoints); err != nil {
		c.job.logger.Warn("could not delete old checkpoints", "err", err)
	}
	if f := c.job.cfg.Events.CheckpointCompleted; f != nil {
		f(info)
	}
	c.finalDone = in.final
	return in.final, nil
}

// complete writes the operator state and the manifest of in.
func (c *coordinator) complete(in *inflight) (CheckpointInfo, error) {
	store := c.job.store
	m := &chkstore.Manifest{
		Job:            c.job.g.Name,
		ID:             in.id,
		Created:        time.Now().UTC(),
		MaxParallelism: c.job.cfg.MaxParallelism,
		Final:          in.final,
		EndOfInput:     in.final && c.endOfInput,
		Savepoint:      c.job.lineage(),
		Group:          c.job.group(),
	}
	in.manifest = m
	info := CheckpointInfo{ID: in.id, Final: in.final}
	for _, a := range in.acks {
		info.MaxSyncPause = max(info.MaxSyncPause, a.syncPause)
		for i, st := range a.states {
			if a.blobs[i] != nil {
				rel, err := store.WriteOperatorState(in.id, st.Operator, st.Subtask, a.blobs[i])
				if err != nil {
					return info, err
				}
				st.StateFile = rel
			}
			m.Operators = append(m.Operators, st)
		}
	}
	fault.Point("before-manifest")
	if err := c.checkPromises(in.id); err != nil {
		return info, err
	}
	if f := c.job.cfg.BeforeManifest; f != nil {
		if err := f(in.id); err != nil {
			return info, fmt.Errorf("%w: checkpoint %d declined before its manifest: %w", ErrUnrecoverable, in.id, err)
		}
	}
	if err := store.Complete(m); err != nil {
		return info, err
	}
	info.Duration = time.Since(in.started)
	info.BytesWritten = m.BytesWritten
	info.Files = len(m.Files)
	return info, nil
}

// beforeCommit runs Config.BeforeCommit on in, whose manifest is written.
func (c *coordinator) beforeCommit(in *inflight) error {
	f := c.job.cfg.BeforeCommit
	if f == nil {
		return nil
	}
	if err := f(in.id); err != nil {
		in.written = true
		return fmt.Errorf("%w: checkpoint %d not committed, though its manifest is written: %w", ErrUnrecoverable, in.id, err)
	}
	return nil
}

// checkPromises asks every sink subtask that reports CheckPromise whether
// it can still keep what it pre-committed for checkpoint id.
func (c *coordinator) checkPromises(id uint64) error {
	for _, t := range c.job.tasks {
		for i := range t.stats.members {
			check := t.stats.members[i].reports.CheckPromise
			if check == nil {
				continue
			}
			if err := check(id); err != nil {
				return fmt.Errorf("checkpoint %d declined by sink %q subtask %d: %w", id, t.members[i].node.Name, t.subtask, err)
			}
		}
	}
	return nil
}

// abort gives up the checkpoint in flight. Data the sinks pre-committed for
// it stays pending and is committed with the next checkpoint that completes.
func (c *coordinator) abort(ctx context.Context, cause error) error {
	in := c.inflight
	c.inflight = nil
	in.timer.Stop()
	for _, r := range in.savepoints {
		r.reply <- savepointResult{Checkpoint: in.id, err: fmt.Errorf("%w: checkpoint %d aborted: %w", ErrSavepoint, in.id, cause)}
	}
	c.job.logger.Warn("checkpoint aborted", "checkpoint", in.id, "err", cause)
	c.job.metrics.checkpointAborted(in, cause)
	if f := c.job.cfg.Events.CheckpointFailed; f != nil {
		f(in.id, cause)
	}
	// NB: a checkpoint whose manifest is written stays: whoever restores
	// it (a new owner of the task) commits it, this job must not.
	if !in.written {
		if err := c.job.store.Abort(in.id); err != nil {
			c.job.logger.Warn("could not empty aborted checkpoint", "checkpoint", in.id, "err", err)
		}
	}
	c.broadcast(ctx, c.job.tasks, command{kind: abortCommand, checkpoint: in.id})
	if in.final {
		return fmt.Errorf("final checkpoint failed: %w", cause)
	}
	return nil
}
