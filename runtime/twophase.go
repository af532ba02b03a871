package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

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

// NewTwoPhaseSink returns a Sink that drives w, keeping its committables in
// the checkpoint encoded with codec. See TwoPhaseWriter.
func NewTwoPhaseSink[T, C any](w TwoPhaseWriter[T, C], codec state.Codec[C]) Sink[T] {
	return &twoPhaseSink[T, C]{w: w, codec: codec}
}

type twoPhaseSink[T, C any] struct {
	w       TwoPhaseWriter[T, C]
	codec   state.Codec[C]
	pending []Committable[C] // prepared, not yet committed, in order
	last    uint64           // the last checkpoint prepared (or restored)
	ended   bool             // the input ended: the next Prepare is the last
	subtask int
	scratch []byte
}

// twoPhaseMagic starts every state of a twoPhaseSink. It differs from the
// first byte of the formats that sinks used before (1 for the file sink,
// '{' for JSON), so TwoPhaseLegacyDecoder can tell them apart.
const (
	twoPhaseMagic   = 0xC7
	twoPhaseVersion = 1
)

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
		s.pending = append(s.pending, Committable[C]{Checkpoint: checkpointID, Value: c})
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
	s.pending = s.pending[i:]
	return nil
}

func (s *twoPhaseSink[T, C]) Close() error { return s.w.Close() }

// EndOfInput makes the next Prepare the writer's last (EndOfInputHandler).
func (s *twoPhaseSink[T, C]) EndOfInput() { s.ended = true }

// user returns the writer, whose optional interfaces the runtime honours.
func (s *twoPhaseSink[T, C]) user() any { return s.w }

// encode encodes the state of checkpoint id:
//
//	magic byte, version byte, uvarint subtask, uvarint checkpoint,
//	uvarint count, per committable: uvarint checkpoint, uvarint length + codec bytes,
//	uvarint length + writer state
func (s *twoPhaseSink[T, C]) encode(id uint64, ws []byte) []byte {
	b := []byte{twoPhaseMagic, twoPhaseVersion}
	b = binary.AppendUvarint(b, uint64(s.subtask))
	b = binary.AppendUvarint(b, id)
	b = binary.AppendUvarint(b, uint64(len(s.pending)))
	for _, c := range s.pending {
		b = binary.AppendUvarint(b, c.Checkpoint)
		s.scratch = s.codec.Append(s.scratch[:0], c.Value)
		b = binary.AppendUvarint(b, uint64(len(s.scratch)))
		b = append(b, s.scratch...)
	}
	b = binary.AppendUvarint(b, uint64(len(ws)))
	return append(b, ws...)
}

func (s *twoPhaseSink[T, C]) decode(b []byte) (Recovery[C], error) {
	if b == nil {
		return Recovery[C]{Fresh: true}, nil
	}
	if len(b) == 0 || b[0] != twoPhaseMagic {
		if l, ok := s.w.(TwoPhaseLegacyDecoder[C]); ok {
			return l.DecodeLegacyState(b)
		}
		return Recovery[C]{}, fmt.Errorf("%w: unknown format", ErrCorruptTwoPhaseState)
	}
	if len(b) < 2 || b[1] != twoPhaseVersion {
		return Recovery[C]{}, fmt.Errorf("%w: unknown version", ErrCorruptTwoPhaseState)
	}
	d := stateDecoder{b: b[2:]}
	var rec Recovery[C]
	if sub := d.uvarint(); d.err == nil && sub != uint64(s.subtask) {
		return Recovery[C]{}, fmt.Errorf("state of subtask %d restored into subtask %d", sub, s.subtask)
	}
	rec.Checkpoint = d.uvarint()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return Recovery[C]{}, fmt.Errorf("%w: %d committables in %d bytes", ErrCorruptTwoPhaseState, n, len(d.b))
	}
	for range n {
		id := d.uvarint()
		raw := d.bytes()
		if d.err != nil {
			break
		}
		if id > rec.Checkpoint {
			return Recovery[C]{}, fmt.Errorf("%w: committable of checkpoint %d in the state of checkpoint %d",
				ErrCorruptTwoPhaseState, id, rec.Checkpoint)
		}
		v, err := s.codec.Decode(raw)
		if err != nil {
			return Recovery[C]{}, fmt.Errorf("%w: committable of checkpoint %d: %w", ErrCorruptTwoPhaseState, id, err)
		}
		rec.Committables = append(rec.Committables, Committable[C]{Checkpoint: id, Value: v})
	}
	rec.WriterState = d.bytes()
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return Recovery[C]{}, fmt.Errorf("%w: %w", ErrCorruptTwoPhaseState, d.err)
	}
	return rec, nil
}

// stateDecoder reads uvarints and length-prefixed byte strings, keeping the
// first error.
type stateDecoder struct {
	b   []byte
	err error
}

func (d *stateDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *stateDecoder) bytes() []byte {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.err = errors.New("truncated")
	}
	if d.err != nil {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
