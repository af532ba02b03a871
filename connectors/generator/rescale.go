package generator

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/weirstream/weir/runtime"
)

// split is an arithmetic progression of sequence numbers: next,
// next+stride, … (below Count). A fresh subtask s of p owns the split
// (s, p); after a change of parallelism a subtask may own several.
type split struct{ next, stride uint64 }

// splitsVersion is the state version of a list of splits; a state of
// stateVersion is the single split (next, parallelism) of Sequence.
const splitsVersion = 2

// errBadSplits is wrapped by the errors of an unreadable list of splits.
var errBadSplits = errors.New("generator: unreadable splits in checkpoint")

func encodeSplits(splits []split) []byte {
	b := binary.AppendUvarint([]byte{splitsVersion}, uint64(len(splits)))
	for _, sp := range splits {
		b = binary.BigEndian.AppendUint64(b, sp.next)
		b = binary.BigEndian.AppendUint64(b, sp.stride)
	}
	return b
}

func decodeSplits(b []byte) ([]split, error) {
	if len(b) == 0 || b[0] != splitsVersion {
		return nil, fmt.Errorf("%w: not state version %d", errBadSplits, splitsVersion)
	}
	n, k := binary.Uvarint(b[1:])
	rest := b[1+max(k, 0):]
	if k <= 0 || uint64(len(rest)) != 16*n {
		return nil, fmt.Errorf("%w: %d bytes do not hold the %d splits announced", errBadSplits, len(b), n)
	}
	splits := make([]split, n)
	for i := range splits {
		splits[i] = split{binary.BigEndian.Uint64(rest[16*i:]), binary.BigEndian.Uint64(rest[16*i+8:])}
		if splits[i].stride == 0 {
			return nil, fmt.Errorf("%w: split %d has stride 0", errBadSplits, i)
		}
	}
	return splits, nil
}

// Redistribute implements runtime.Rescalable. The unfinished splits of all
// old subtasks are listed in old subtask order; when there are fewer than
// new subtasks, each is cut into as many interleaved splits as needed
// ((n, s) into (n, ks), (n+s, ks), …, so no number is lost or repeated),
// and new subtask i takes the splits j with j mod parallelism = i. Every
// number the old subtasks had still to emit is thus emitted once.
func (s *source[T]) Redistribute(info runtime.TaskInfo, old [][]byte) ([]byte, error) {
	var all []split
	for o, b := range old {
		splits, err := oldSplits(b, o, len(old))
		if err != nil {
			return nil, fmt.Errorf("generator: state of old subtask %d of %d: %w", o, len(old), err)
		}
		for _, sp := range splits {
			if s.cfg.Count == 0 || sp.next < s.cfg.Count {
				all = append(all, sp)
			}
		}
	}
	if len(all) > 0 && len(all) < info.Parallelism {
		all = cut(all, (info.Parallelism+len(all)-1)/len(all))
	}
	mine := []split{}
	for j := info.Subtask; j < len(all); j += info.Parallelism {
		mine = append(mine, all[j])
	}
	return encodeSplits(mine), nil
}

// oldSplits returns the splits of old subtask o of p: those of its state,
// or the split of a fresh subtask when it has none.
func oldSplits(b []byte, o, p int) ([]split, error) {
	if b == nil {
		return []split{{uint64(o), uint64(p)}}, nil
	}
	if len(b) > 0 && b[0] == splitsVersion {
		return decodeSplits(b)
	}
	var seq Sequence
	if err := seq.Open(runtime.TaskInfo{Subtask: o, Parallelism: p}, b, 0); err != nil {
		return nil, err
	}
	return []split{{seq.Next, seq.Stride}}, nil
}

// cut cuts each split into k interleaved ones.
func cut(splits []split, k int) []split {
	out := make([]split, 0, len(splits)*k)
	for _, sp := range splits {
		for m := range uint64(k) {
			out = append(out, split{sp.next + m*sp.stride, uint64(k) * sp.stride})
		}
	}
	return out
}
