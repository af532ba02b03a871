package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/weirstream/weir/internal/twophase"
	"github.com/weirstream/weir/state"
)

// ErrCorruptTwoPhaseState reports a sink state, restored from a checkpoint,
// that NewTwoPhaseSink's sink cannot decode.
var ErrCorruptTwoPhaseState = errors.New("weir: corrupt two-phase sink state")

// TwoPhaseWriter is the part of an exactly-once sink that knows the external
// system; NewTwoPhaseSink turns it into a Sink and owns the rest: the
// committables kept in the checkpoint, their order across failed
// checkpoints, committing them again after a restore, and
// TaskInfo.RestoredCommitted (as Flink's Sink V2 SinkWriter and Committer).
// A committable C describes data made durable but not visible (a staged
// file, an open transaction); it is encoded into the checkpoint with the
// Codec given to NewTwoPhaseSink. The runtime calls one subtask's writer
// from one goroutine:
//
//	Open → [Commit(restored)] → Recover → Write … Write → Prepare(n) → Write … → Commit(n, …) … → Close
//
// Open connects; it must not yet discard anything. If the restored state
// lists committables and TaskInfo.RestoredCommitted is false, Commit then
// runs with them (the restored checkpoint is complete, so its promises must
// be kept). Recover then receives the restored checkpoint's committables
// (all committed now) and the writer state returned with them, and must
// discard everything else the subtask wrote before (data written after the
// restored checkpoint is replayed) and resume from the writer state.
//
// Prepare(n) runs when barrier n reaches the sink: everything written so
// far that the writer wants visible at checkpoint n must become durable and
// be returned as committables; data it keeps back (an in-progress file
// spanning checkpoints, say) must be durable too and described by the
// returned writer state, which Recover receives after a restore from n.
// endOfInput is true at the final checkpoint of a bounded input: nothing
// may be kept back then.
//
// Commit(n, committables) runs once checkpoint n is complete, with every
// committable prepared at or before n and not committed yet, in the order
// they were prepared (possibly none: a writer may use the call to release
// what only checkpoints before n still referred to). It must make them
// visible, and be idempotent: after a crash the same committables are
// committed again, from the restored state. A committable stays listed in
// every checkpoint's state until a Commit that includes it returns nil; an
// error fails the job, and the restore commits the committable again.
//
// Close releases the writer; prepared data must stay for a later Recover.
//
// A writer may implement the optional interfaces of a Sink
// (PromiseChecker, TransactionReporter): the runtime honours them as if the
// sink did.
type TwoPhaseWriter[T, C any] interface {
	Open(ctx context.Context, info TaskInfo) error
	Recover(ctx context.Context, restored Recovery[C]) error
	Write(ctx context.Context, rec T) error
	Prepare(ctx context.Context, checkpointID uint64, endOfInput bool) (committables []C, writerState []byte, err error)
	Commit(ctx context.Context, checkpointID uint64, committables []Committable[C]) error
	Close() error
}

// Committable is a committable with the checkpoint that prepared it.
type Committable[C any] struct {
	Checkpoint uint64
	Value      C
}

// Recovery is what a TwoPhaseWriter's Recover resumes from. On a fresh start
// it is the zero Recovery (Fresh true).
type Recovery[C any] struct {
	// Fresh is true when the job starts without a restored checkpoint.
	Fresh bool
	// Checkpoint is the restored checkpoint, as far as the state says
	// (zero on a fresh start).
	Checkpoint uint64
	// Committables are those the restored state listed; they have been
	// committed when Recover runs.
	Committables []Committable[C]
	// WriterState is what Prepare returned with them.
	WriterState []byte
}

// TwoPhaseLegacyDecoder is an optional interface of a TwoPhaseWriter whose
// sink kept its own state format before it used NewTwoPhaseSink: a restored
// state that does not start with the helper's format byte is decoded by
// DecodeLegacyState, so checkpoints taken before the change stay
// restorable.
type TwoPhaseLegacyDecoder[C any] interface {
	DecodeLegacyState(state []byte) (Recovery[C], error)
}

// CommittableDescriber is an optional interface of a committable (the C of
// a TwoPhaseWriter). NewTwoPhaseSink keeps what DescribeCommittable returns,
// encoded as JSON, beside the committable in the checkpoint, so that tools
// (weir checkpoints inspect) show what each pending commit is, a
// transaction or a staged file, without knowing the sink or its encoding.
// It should return a struct with json tags (an object): the text output
// shows its fields as name=value.
type CommittableDescriber interface {
	DescribeCommittable() any
}

// NewTwoPhaseSink returns a Sink that drives w, keeping its committables in
// the checkpoint encoded with codec. See TwoPhaseWriter.
func NewTwoPhaseSink[T, C any](w TwoPhaseWriter[T, C], codec state.Codec[C]) Sink[T] {
	return &twoPhaseSink[T, C]{w: w, codec: codec}
}

type twoPhaseSink[T, C any] struct {
	w       TwoPhaseWriter[T, C]
	codec   state.Codec[C]
	pending []Committable[C] // prepared, not yet committed, in order
	// encoded holds pending's encodings and descriptions, made once at
	// Prepare: a committable stays in the state of every checkpoint until
	// committed.
	encoded []twophase.Pending
	last    uint64 // the last checkpoint prepared (or restored)
	ended   bool   // the input ended: the next Prepare is the last
	subtask int
}

func (s *twoPhaseSink[T, C]) Open(ctx context.Context, info TaskInfo, restored []byte) error {
	if err := s.w.Open(ctx, info); err != nil {
		return err
	}
	s.subtask = info.Subtask
	rec, err := s.decode(restored)
	if err != nil {
		return err
	}
	if len(rec.Committables) > 0 && !info.RestoredCommitted {
		if err := s.w.Commit(ctx, rec.Checkpoint, rec.Committables); err != nil {
			return fmt.Errorf("commit what restored checkpoint %d promised: %w", rec.Checkpoint, err)
		}
	}
	s.last = rec.Checkpoint
	return s.w.Recover(ctx, rec)
}

func (s *twoPhaseSink[T, C]) Write(ctx context.Context, rec T) error { return s.w.Write(ctx, rec) }

func (s *twoPhaseSink[T, C]) PreCommit(ctx context.Context, checkpointID uint64) ([]byte, error) {
	if checkpointID <= s.last {
		return nil, fmt.Errorf("PreCommit(%d) after checkpoint %d: checkpoint ids must increase", checkpointID, s.last)
	}
	cs, ws, err := s.w.Prepare(ctx, checkpointID, s.ended)
	if err != nil {
		return nil, err
	}
	s.last = checkpointID
	for _, c := range cs {
		desc, err := describe(c)
		if err != nil {
			return nil, err
		}
		s.pending = append(s.pending, Committable[C]{Checkpoint: checkpointID, Value: c})
		s.encoded = append(s.encoded, twophase.Pending{Checkpoint: checkpointID, Value: s.codec.Append(nil, c), Description: desc})
	}
	return s.encode(checkpointID, ws), nil
}

func (s *twoPhaseSink[T, C]) Commit(ctx context.Context, checkpointID uint64) error {
	i := 0
	for i < len(s.pending) && s.pending[i].Checkpoint <= checkpointID {
		i++
	}
	// NB: on error the committables stay pending: the next state lists them
	// again, and a restore commits them.
	if err := s.w.Commit(ctx, checkpointID, s.pending[:i:i]); err != nil {
		return err
	}
	clear(s.pending[:i])
	clear(s.encoded[:i])
	s.pending, s.encoded = s.pending[i:], s.encoded[i:]
	return nil
}

func (s *twoPhaseSink[T, C]) Close() error { return s.w.Close() }

// EndOfInput makes the next Prepare the writer's last (EndOfInputHandler).
func (s *twoPhaseSink[T, C]) EndOfInput() { s.ended = true }

// user returns the writer, whose optional interfaces the runtime honours.
func (s *twoPhaseSink[T, C]) user() any { return s.w }

// encode encodes the state of checkpoint id (package internal/twophase).
func (s *twoPhaseSink[T, C]) encode(id uint64, ws []byte) []byte {
	return twophase.Append(nil, &twophase.State{Subtask: uint64(s.subtask), Checkpoint: id, Pending: s.encoded, WriterState: ws})
}

func (s *twoPhaseSink[T, C]) decode(b []byte) (Recovery[C], error) {
	if b == nil {
		return Recovery[C]{Fresh: true}, nil
	}
	if !twophase.Is(b) {
		if l, ok := s.w.(TwoPhaseLegacyDecoder[C]); ok {
			return l.DecodeLegacyState(b)
		}
		return Recovery[C]{}, fmt.Errorf("%w: unknown format", ErrCorruptTwoPhaseState)
	}
	st, err := twophase.Decode(b)
	if err != nil {
		return Recovery[C]{}, fmt.Errorf("%w: %w", ErrCorruptTwoPhaseState, err)
	}
	if st.Subtask != uint64(s.subtask) {
		return Recovery[C]{}, fmt.Errorf("state of subtask %d restored into subtask %d", st.Subtask, s.subtask)
	}
	rec := Recovery[C]{Checkpoint: st.Checkpoint, WriterState: st.WriterState}
	for _, p := range st.Pending {
		v, err := s.codec.Decode(p.Value)
		if err != nil {
			return Recovery[C]{}, fmt.Errorf("%w: committable of checkpoint %d: %w", ErrCorruptTwoPhaseState, p.Checkpoint, err)
		}
		rec.Committables = append(rec.Committables, Committable[C]{Checkpoint: p.Checkpoint, Value: v})
	}
	return rec, nil
}

// describe returns the human form of c kept beside it in the checkpoint.
func describe[C any](c C) (json.RawMessage, error) {
	d, ok := any(c).(CommittableDescriber)
	if !ok {
		return nil, nil
	}
	b, err := json.Marshal(d.DescribeCommittable())
	if err != nil {
		return nil, fmt.Errorf("describe committable %T: %w", c, err)
	}
	return b, nil
}
