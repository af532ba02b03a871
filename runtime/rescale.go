package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/weirstream/weir/internal/engine"
)

// Rescalable is an optional interface of a Source or an Operator that keeps
// state outside keys (offsets, a watermark, open pre-aggregates) and can be
// restored with another parallelism than the one its checkpoint was taken
// with. As in Flink's union redistribution, every new subtask receives the
// states of all old subtasks and takes its share:
//
//	newSource() → Redistribute(info, old) → Open(info, share) → Read …
//
// Redistribute runs on the new, unopened instance; info describes the new
// subtask (Subtask, Parallelism), old[i] is what old subtask i returned
// from Snapshot in the restored checkpoint (nil if nothing), and the
// result is what Open then receives as restored. Together the new
// subtasks' shares must cover every old state exactly once: a Kafka
// source's subtask keeps the offsets of the partitions it owns now, so each
// partition resumes where it stood, in one subtask.
//
// A restore that changes the parallelism of a source or operator with
// state that does not implement Rescalable is refused
// (ErrIncompatibleCheckpoint), naming it. Keyed state needs none of this:
// it moves by key group. Sinks built with NewTwoPhaseSink are rescaled by
// the runtime (see rescaleSink).
type Rescalable interface {
	Redistribute(info TaskInfo, old [][]byte) ([]byte, error)
}

// restoredState returns the state the subtask of env opens inst with:
// env.Restored, or, when its parallelism changed, inst's share of the old
// subtasks' states.
func restoredState(env *engine.Env, inst any) ([]byte, error) {
	r := env.Rescaled
	if r == nil {
		return env.Restored, nil
	}
	re, ok := inst.(Rescalable)
	if !ok {
		return nil, notRescalable(env, inst)
	}
	data, err := re.Redistribute(info(env), r.States)
	if err != nil {
		return nil, fmt.Errorf("redistribute the state of %d old subtasks: %w", r.OldParallelism, err)
	}
	return data, nil
}

func notRescalable(env *engine.Env, inst any) error {
	old := env.Rescaled.OldParallelism
	return fmt.Errorf("%w: operator %q ran with parallelism %d in the restored checkpoint, now %d, and its %T keeps state outside keys that it cannot redistribute; restart it with parallelism %d",
		ErrIncompatibleCheckpoint, env.Operator, old, env.Parallelism, inst, old)
}

// rescalableSink is implemented by the sinks of NewTwoPhaseSink.
type rescalableSink interface {
	// drainable reports the checkpoint of an old subtask's state, or why
	// opening and closing a sink with it would lose data.
	drainable(restored []byte, oldSubtask int) (uint64, error)
	// pendingNothing returns the state of a subtask restored from
	// checkpoint with nothing pending.
	pendingNothing(subtask int, checkpoint uint64) []byte
	// seal commits what an old subtask opened with its state holds back
	// across checkpoints (TwoPhaseSealer), if anything.
	seal(ctx context.Context) error
}

// TwoPhaseSealer is an optional interface of a TwoPhaseWriter whose writer
// state holds data back across checkpoints (a rolling file sink's
// in-progress file). After a change of parallelism, a new subtask takes
// over an old one by opening its writer as it ran, with its restored state
// (Open → [Commit(restored)] → Recover), then calling Seal, committing
// what Seal returns at the restored checkpoint, and closing it; a writer
// without Seal that holds data back cannot be rescaled. Seal must make the
// data the restored writer state held back (all of it covered by the
// restored checkpoint) into committables, and be idempotent with Recover:
// after a crash during the takeover, the same state is restored again, and
// what an earlier Seal committed must be neither lost nor repeated.
type TwoPhaseSealer[C any] interface {
	Seal(ctx context.Context) ([]C, error)
}

// rescaleSink runs before subtask env.Subtask of a sink opens with another
// parallelism than in the restored checkpoint. It completes the commits
// that the old subtasks it takes over promised (old subtask o goes to new
// subtask o mod parallelism, so each is taken over once, and an old subtask
// whose index lives on is taken over by its namesake before that opens):
// each is opened as it ran (its index, the old parallelism, its state),
// which commits what its state promises and discards what it wrote after
// the checkpoint (a Kafka sink aborts and fences its transactional ids,
// those of subtasks that no longer exist included), and closed. It returns
// the state the new subtask opens with: restored, nothing pending.
func rescaleSink[T any](env *engine.Env, sink Sink[T], newSink SinkFactory[T]) ([]byte, error) {
	r := env.Rescaled
	rs, ok := sink.(rescalableSink)
	if !ok {
		return nil, notRescalable(env, sink)
	}
	var checkpoint uint64
	for o, data := range r.States {
		if data == nil {
			continue
		}
		id, err := rs.drainable(data, o)
		if err != nil {
			return nil, fmt.Errorf("%w: sink %q: old subtask %d of %d: %w; restart it with parallelism %d",
				ErrIncompatibleCheckpoint, env.Operator, o, r.OldParallelism, err, r.OldParallelism)
		}
		checkpoint = max(checkpoint, id)
	}
	for o := env.Subtask; o < r.OldParallelism; o += env.Parallelism {
		if r.States[o] == nil {
			continue
		}
		if err := drainSink(env, newSink, o); err != nil {
			return nil, fmt.Errorf("take over old subtask %d of %d: %w", o, r.OldParallelism, err)
		}
	}
	return rs.pendingNothing(env.Subtask, checkpoint), nil
}

// drainSink opens old subtask o of a sink with its restored state, which
// commits what the state promised, and closes it.
func drainSink[T any](env *engine.Env, newSink SinkFactory[T], o int) error {
	r := env.Rescaled
	old, err := newSink()
	if err != nil {
		return fmt.Errorf("new sink: %w", err)
	}
	oi := info(env)
	oi.Subtask, oi.Parallelism, oi.RestoredCommitted = o, r.OldParallelism, r.Committed[o]
	oi.Logger = env.Logger.With("old_subtask", o, "old_parallelism", r.OldParallelism)
	oi.Logger.Info("completing the commits of an old sink subtask after a change of parallelism")
	err = old.Open(env.Ctx, oi, r.States[o])
	if err == nil {
		if rs, ok := old.(rescalableSink); ok {
			err = rs.seal(env.Ctx)
		}
	}
	return errors.Join(err, old.Close())
}

// drainable implements rescalableSink: a state whose writer state is not
// empty holds data back across checkpoints (a rolling file sink's
// in-progress file), which only a Recover of the same writer state can
// carry on, so it can be drained only by a writer that can seal it
// (TwoPhaseSealer).
func (s *twoPhaseSink[T, C]) drainable(restored []byte, oldSubtask int) (uint64, error) {
	s.subtask = oldSubtask
	rec, err := s.decode(restored)
	if err != nil {
		return 0, err
	}
	if _, ok := s.w.(TwoPhaseSealer[C]); !ok && len(rec.WriterState) > 0 {
		return 0, fmt.Errorf("its %T holds data back across checkpoints (%d bytes of writer state), which cannot be handed to another subtask: it does not implement TwoPhaseSealer", s.w, len(rec.WriterState))
	}
	return rec.Checkpoint, nil
}

// seal implements rescalableSink: it commits at the restored checkpoint
// what the writer's Seal returns.
func (s *twoPhaseSink[T, C]) seal(ctx context.Context) error {
	sealer, ok := s.w.(TwoPhaseSealer[C])
	if !ok {
		return nil
	}
	cs, err := sealer.Seal(ctx)
	if err != nil || len(cs) == 0 {
		return err
	}
	sealed := make([]Committable[C], len(cs))
	for i, c := range cs {
		sealed[i] = Committable[C]{Checkpoint: s.last, Value: c}
	}
	if err := s.w.Commit(ctx, s.last, sealed); err != nil {
		return fmt.Errorf("commit what checkpoint %d held back: %w", s.last, err)
	}
	return nil
}

// pendingNothing implements rescalableSink.
func (s *twoPhaseSink[T, C]) pendingNothing(subtask int, checkpoint uint64) []byte {
	s.subtask, s.pending = subtask, nil
	return s.encode(checkpoint, nil)
}
