package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/weirstream/weir/internal/chkstore"
	"github.com/weirstream/weir/internal/fault"
	"github.com/weirstream/weir/internal/statebackend"
)

// A task is one subtask of a chain of operators, run by one goroutine. Its
// head is either a source or a gate; the operators chained behind the head
// call each other directly.

type commandKind uint8

const (
	triggerCommand  commandKind = iota // sources: inject barrier
	completeCommand                    // checkpoint complete: commit
	abortCommand                       // checkpoint aborted
	stopCommand                        // sources: stop reading (before a final checkpoint)
)

type command struct {
	kind       commandKind
	checkpoint uint64
	final      bool
}

// member is one chained operator subtask of a task.
type member struct {
	node    *Node
	inst    Instance
	backend *statebackend.Backend // keyed operators only
	in      any                   // Collector[In]
	buffer  Flusher               // in, if it holds records back
}

type task struct {
	job     *job
	head    *Node
	subtask int
	logger  *slog.Logger

	members []*member            // upstream first
	keyed   map[*Node]*keyedOpen // the members' keyed states, opened ahead (job.openKeyedAhead)
	opened  []any                // how long each member took to open on a restore (job.opened)
	source  Reader               // source tasks
	gen     WatermarkGenerator   // the source, or a head that AssignsEventTime; nil otherwise
	gate    *gate                // other tasks
	inputs  []any                // per gate connection: the collector it feeds
	writers []outputWriter

	control chan command
	results chan statebackend.Result // from the members' state backends

	// alignment of the barrier being received
	aligning uint64
	blocked  []bool
	nBlocked int
	parked   [][]envelope
	ended    []bool // per connection: end of data received
	nEnded   int

	// event time
	ts     int64            // timestamp of the record being processed (Env.Timestamp)
	wm     int64            // current input watermark, MinWatermark before any
	chWm   []int64          // per connection
	chIdle []bool           // per connection: idle, ignored for the watermark
	idle   bool             // this task told downstream it is idle
	clock  <-chan time.Time // drives processing-time timers; nil if none
	ticker *time.Ticker

	ack        *taskAck // checkpoint waiting for its asynchronous parts
	final      uint64   // id of the final barrier seen, if any
	endOfData  bool     // this task sent end of data downstream
	stopped    bool     // source: read no more
	finished   bool     // final checkpoint committed: exit
	err        error
	drainQuota int
	entry      int // member the task last called into; see panic.go

	// catchingUp is set on a source task of a restored job whose source
	// reports its lag, until the source has read everything its input held
	// (lag 0) or the first checkpoint is triggered: see coordinator.catchingUp.
	catchingUp bool

	stats taskStats // metrics; see metrics.go
}

// taskAck is a task's acknowledgement of a checkpoint.
type taskAck struct {
	task       *task
	checkpoint uint64
	states     []chkstore.SubtaskState // StateFile holds nothing yet; data in blobs
	blobs      [][]byte
	pending    int // state backends still writing
	syncPause  time.Duration
	err        error
	// for weir_checkpoint_duration_seconds
	alignment      time.Duration // first to last barrier at the gate
	syncEnd, acked time.Time
}

func (t *task) String() string { return fmt.Sprintf("%s/%d", t.head.Name, t.subtask) }

func (t *task) fail(err error) {
	if t.err == nil && err != nil {
		t.err = err
	}
}

// run is the task's goroutine. A panic of user code ends it with an error
// like any other failure (see panic.go).
func (t *task) run(ctx context.Context) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("task %s: %w", t, t.recovered(v))
		}
	}()
	if t.source != nil {
		err = t.runSource(ctx)
	} else {
		err = t.runGate(ctx)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("task %s: %w", t, err)
	}
	return err
}

func (t *task) runSource(ctx context.Context) error {
	for !t.finished {
		if t.stopped || t.endOfData {
			if err := t.waitEvent(ctx); err != nil {
				return err
			}
			continue
		}
		if err := t.pollEvents(ctx); err != nil {
			return err
		}
		if t.stopped || t.finished {
			continue
		}
		t.entry = 0
		ended, err := t.source.Read(ctx)
		t.flush()
		switch {
		case err != nil:
			return fmt.Errorf("source %q: %w", t.head.Name, err)
		case ended:
			if err := t.endData(); err != nil {
				return err
			}
			t.job.coord.sourceEnded()
		default:
			t.generate(time.Now())
			if t.catchingUp && t.caughtUp() {
				t.catchingUp = false
				t.job.coord.sourceCaughtUp()
			}
		}
		if err := t.check(); err != nil {
			return err
		}
		t.drain(t.drainQuota)
		t.publish()
	}
	return nil
}

func (t *task) runGate(ctx context.Context) error {
	for !t.finished {
		if t.draining() {
			select {
			case env := <-t.gate.ch:
				t.onEnvelope(ctx, env)
				t.drain(t.drainQuota)
			default:
				if err := t.pollEvents(ctx); err != nil {
					return err
				}
				t.drain(8 * t.drainQuota) // idle: catch up
			}
		} else {
			t.stats.idleBegin()
			select {
			case env := <-t.gate.ch:
				t.stats.idleEnd()
				t.onEnvelope(ctx, env)
			case cmd := <-t.control:
				t.stats.idleEnd()
				t.onCommand(ctx, cmd)
			case res := <-t.results:
				t.stats.idleEnd()
				t.onResult(res)
			case now := <-t.clock: // processing-time timers
				t.stats.idleEnd()
				t.tick(now)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := t.check(); err != nil {
			return err
		}
		t.publish()
	}
	return nil
}

// flush makes the members process the records they hold back (see
// keyedCollector), upstream first, so that what one emits while flushing is
// flushed by the next.
func (t *task) flush() {
	for i, m := range t.members {
		if m.buffer != nil {
			t.entry = i
			m.buffer.Flush()
		}
	}
}

// tick fires the processing-time timers that are due. A task that assigns
// event time to its input also checks it for idleness: no batch may come.
func (t *task) tick(now time.Time) {
	t.flush()
	ms := now.UnixMilli()
	for i, m := range t.members {
		t.entry = i
		m.inst.ProcessingTime(ms)
	}
	if t.gen != nil && t.source == nil {
		t.generate(now)
	}
}

// generate sends the watermark the task's generator derived from the
// records emitted so far, or tells downstream that the task turned idle.
func (t *task) generate(now time.Time) {
	if wm, advanced, idle := t.gen.EventTime(now); advanced {
		t.advance(wm)
	} else if idle {
		t.goIdle()
	}
}

// advance makes wm the task's watermark: the members act on it in chain
// order (so records emitted upstream reach downstream operators before the
// watermark does), then it goes downstream.
func (t *task) advance(wm int64) {
	if wm <= t.wm {
		return
	}
	t.wm, t.idle = wm, false
	t.reportWatermark(wm) // weir_watermark_lag_seconds
	for i, m := range t.members {
		t.entry = i
		// Records that upstream members emitted (for example when the
		// watermark fired their timers) precede the watermark.
		if m.buffer != nil {
			m.buffer.Flush()
		}
		m.inst.Watermark(wm)
	}
	for _, w := range t.writers {
		w.control(envelope{kind: watermarkEnvelope, watermark: wm})
	}
}

// goIdle tells downstream to ignore this task for watermarks until its
// next one.
func (t *task) goIdle() {
	if t.idle {
		return
	}
	t.idle = true
	for _, w := range t.writers {
		w.control(envelope{kind: idleEnvelope})
	}
}

// inputWatermark recomputes the task's watermark from its connections: the
// minimum over those not idle. Connections that ended sent MaxWatermark.
func (t *task) inputWatermark() {
	wm, active := MaxWatermark, false
	for i, w := range t.chWm {
		if !t.chIdle[i] {
			wm, active = min(wm, w), true
		}
	}
	if !active {
		t.goIdle()
		return
	}
	t.advance(wm)
}

// pollEvents handles every pending command and state result without waiting.
func (t *task) pollEvents(ctx context.Context) error {
	for {
		select {
		case cmd := <-t.control:
			t.onCommand(ctx, cmd)
		case res := <-t.results:
			t.onResult(res)
		case now := <-t.clock:
			t.tick(now)
		case <-ctx.Done():
			return ctx.Err()
		default:
			return t.check()
		}
	}
}

// waitEvent waits for one command or state result.
func (t *task) waitEvent(ctx context.Context) error {
	if t.draining() {
		t.drain(8 * t.drainQuota)
		return t.pollEvents(ctx)
	}
	t.stats.idleBegin()
	select {
	case cmd := <-t.control:
		t.stats.idleEnd()
		t.onCommand(ctx, cmd)
	case res := <-t.results:
		t.stats.idleEnd()
		t.onResult(res)
	case now := <-t.clock:
		t.stats.idleEnd()
		t.tick(now)
	case <-ctx.Done():
		return ctx.Err()
	}
	return t.check()
}

func (t *task) check() error {
	if t.err != nil {
		return t.err
	}
	for _, m := range t.members {
		if m.backend != nil {
			if err := m.backend.Err(); err != nil {
				return fmt.Errorf("operator %q: %w", m.node.Name, err)
			}
		}
	}
	return nil
}

func (t *task) onEnvelope(ctx context.Context, env envelope) {
	ch := env.channel
	if t.blocked[ch] {
		t.parked[ch] = append(t.parked[ch], env)
		return
	}
	switch env.kind {
	case dataEnvelope:
		t.stats.delivered(t.gate.types[ch], env.batch)
		t.entry = 0
		t.gate.types[ch].deliver(env.batch, t.inputs[ch], &t.ts)
		t.gate.conns[ch].free <- env.batch
		t.flush()
		if t.gen != nil {
			t.generate(time.Now())
		}
	case barrierEnvelope:
		t.onBarrier(ctx, ch, env)
	case watermarkEnvelope:
		if t.gen != nil {
			return // replaced by the task's own; the end of input still ends
		}
		t.chWm[ch], t.chIdle[ch] = max(t.chWm[ch], env.watermark), false
		t.inputWatermark()
	case idleEnvelope:
		if t.gen != nil {
			return
		}
		t.chIdle[ch] = true
		t.inputWatermark()
	case endEnvelope:
		t.ended[ch] = true
		if t.nEnded++; t.nEnded == len(t.ended) {
			t.fail(t.endData())
		}
	}
}

// onBarrier aligns barrier env.checkpoint: a connection that delivered it is
// blocked (its later envelopes parked) until every connection has.
func (t *task) onBarrier(ctx context.Context, ch int, env envelope) {
	if t.nBlocked == 0 {
		t.aligning = env.checkpoint
		t.stats.alignFrom = time.Now()
	} else if env.checkpoint != t.aligning {
		t.fail(fmt.Errorf("barrier %d arrived while aligning barrier %d", env.checkpoint, t.aligning))
		return
	}
	t.blocked[ch] = true
	if t.nBlocked++; t.nBlocked < len(t.blocked) {
		return
	}
	t.checkpoint(ctx, env.checkpoint, env.final)
	t.nBlocked = 0
	clear(t.blocked)
	for i, q := range t.parked {
		t.parked[i] = nil
		for _, p := range q {
			t.onEnvelope(ctx, p)
		}
	}
}

func (t *task) onCommand(ctx context.Context, cmd command) {
	switch cmd.kind {
	case triggerCommand:
		t.catchingUp = false // the first checkpoint is on its way
		if t.source != nil {
			t.checkpoint(ctx, cmd.checkpoint, cmd.final)
			if cmd.final {
				t.stopped = true
			}
		}
	case stopCommand:
		t.stopped = true
	case completeCommand:
		for i, m := range t.members {
			t.entry = i
			if err := m.inst.NotifyComplete(ctx, cmd.checkpoint); err != nil {
				t.fail(fmt.Errorf("operator %q: checkpoint %d complete: %w", m.node.Name, cmd.checkpoint, err))
				return
			}
		}
		if t.final != 0 && cmd.checkpoint >= t.final {
			t.finished = true
		}
	case abortCommand:
		if t.ack != nil && t.ack.checkpoint == cmd.checkpoint {
			t.ack = nil
		}
	}
}

// checkpoint takes the synchronous part of checkpoint id: operator state,
// the freeze of keyed state, and the barrier sent downstream. Members
// snapshot in chain order, each after its held-back records were
// processed, so that what a member emits at its snapshot (an upsert stream
// flushed once per checkpoint) reaches the members behind it before theirs.
func (t *task) checkpoint(ctx context.Context, id uint64, final bool) {
	start := time.Now()
	ack := &taskAck{task: t, checkpoint: id, alignment: t.stats.alignment()}
	for i, m := range t.members {
		t.entry = i
		if m.buffer != nil {
			m.buffer.Flush()
		}
		data, err := m.inst.Snapshot(ctx, id)
		if err != nil {
			t.fail(fmt.Errorf("operator %q: snapshot for checkpoint %d: %w", m.node.Name, id, err))
			return
		}
		st := chkstore.SubtaskState{Operator: m.node.Name, Subtask: t.subtask, Parallelism: t.job.parallelism(m.node)}
		if m == t.members[0] {
			st.EventTime = t.eventTime()
		}
		if m.backend != nil {
			if m.backend.Draining() { // the previous checkpoint was slow; rare
				m.backend.Drain(0)
			}
			st.KeyedDir = chkstore.KeyedDir(m.node.Name, t.subtask)
			dest := filepath.Join(t.job.store.Dir(id), filepath.FromSlash(st.KeyedDir))
			if err := m.backend.Freeze(id, dest); err != nil {
				t.fail(err)
				return
			}
			ack.pending++
		}
		if data == nil && st.KeyedDir == "" && st.EventTime == nil {
			continue
		}
		ack.states = append(ack.states, st)
		ack.blobs = append(ack.blobs, data)
	}
	for _, w := range t.writers {
		w.control(envelope{kind: barrierEnvelope, checkpoint: id, final: final})
	}
	ack.syncPause = time.Since(start)
	ack.syncEnd = start.Add(ack.syncPause)
	if final {
		t.final = id
	}
	fault.Point("after-snapshot")
	if ack.pending == 0 {
		t.job.coord.acknowledge(ack)
		return
	}
	t.ack = ack
}

// caughtUp reports whether the task's source has read everything its input
// held as of its last read: it reports a lag (Reports.SourceLag), and 0 on
// every partition.
func (t *task) caughtUp() bool {
	lags := t.stats.members[0].reports.SourceLag()
	for _, l := range lags {
		if l.Records > 0 {
			return false
		}
	}
	return len(lags) > 0
}

// eventTime returns what a checkpoint keeps of the task's event time: the
// largest timestamp of a task that generates watermarks, or the input
// watermark of other tasks.
func (t *task) eventTime() *int64 {
	if t.gen != nil {
		if ts, ok := t.gen.MaxEventTime(); ok && ts != MinWatermark {
			return &ts
		}
		return nil
	}
	if t.wm == MinWatermark {
		return nil
	}
	wm := t.wm
	return &wm
}

// restoreEventTime sets the event time a checkpoint kept.
func (t *task) restoreEventTime(ts int64) {
	if t.gen != nil {
		t.gen.RestoreEventTime(ts)
		return
	}
	t.wm = ts
	for i := range t.chWm {
		t.chWm[i] = ts
	}
}

// drain encodes frozen keyed state, and else loads restored keyed state
// into the cache (statebackend.Config.WarmLater), a bounded amount at a
// time so that records keep flowing.
func (t *task) drain(budget int) {
	for i, m := range t.members {
		switch {
		case m.backend == nil:
		case m.backend.Draining():
			t.entry = i // encoding runs the user's codecs
			m.backend.Drain(budget)
		case m.backend.Warming():
			t.entry = i // decoding too
			m.backend.Warm(budget)
		}
	}
}

// draining reports whether drain has work to do.
func (t *task) draining() bool {
	for _, m := range t.members {
		if m.backend != nil && (m.backend.Draining() || m.backend.Warming()) {
			return true
		}
	}
	return false
}

func (t *task) onResult(res statebackend.Result) {
	for _, m := range t.members {
		if m.backend != nil {
			m.backend.Applied(res) // no-op for the other backends' epochs
		}
	}
	if res.Fatal {
		t.fail(res.Err)
		return
	}
	ack := t.ack
	if ack == nil || ack.checkpoint != res.CheckpointID {
		return // aborted checkpoint
	}
	if res.Err != nil && ack.err == nil {
		ack.err = res.Err
	}
	if ack.pending--; ack.pending == 0 {
		t.ack = nil
		t.job.coord.acknowledge(ack)
	}
}

// endData runs when the task's input is exhausted: operators finish (and may
// emit), then end of data goes downstream. The task stays up for the final
// checkpoint, which follows the end of data on every connection.
func (t *task) endData() error {
	if t.endOfData {
		return nil
	}
	t.endOfData = true
	t.advance(MaxWatermark) // end of input: every event-time timer fires
	for i, m := range t.members {
		t.entry = i
		if m.buffer != nil {
			m.buffer.Flush()
		}
		if err := m.inst.Finish(); err != nil {
			return fmt.Errorf("operator %q: finish: %w", m.node.Name, err)
		}
	}
	for _, w := range t.writers {
		w.control(envelope{kind: endEnvelope})
	}
	return nil
}

// close releases the members, downstream first.
func (t *task) close() error {
	if t.ticker != nil {
		t.ticker.Stop()
	}
	var errs []error
	for i := len(t.members) - 1; i >= 0; i-- {
		m := t.members[i]
		if m == nil || m.inst == nil {
			continue // never opened
		}
		if err := t.guard(m, m.inst.Close); err != nil {
			errs = append(errs, fmt.Errorf("operator %q: close: %w", m.node.Name, err))
		}
		if m.backend != nil {
			if err := m.backend.Close(); err != nil {
				errs = append(errs, fmt.Errorf("operator %q: close state: %w", m.node.Name, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("task %s: %w", t, err)
	}
	return nil
}
