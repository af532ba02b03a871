package statebackend

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/weirstream/weir/internal/keygroup"
)

// KeyGroupSource is a Pebble database holding the keyed state of one subtask
// of an earlier run, and the key groups [First, End) that subtask owned.
type KeyGroupSource struct {
	Dir        string
	First, End int
}

// RescaleKeyGroups makes dir, which holds the database of the first of srcs
// (restored there by the caller, as for a restore without rescaling), hold
// the state of key groups [first, end): what dir holds outside them is
// excised, and the entries of those key groups in the other sources are
// added (each written as one sstable and ingested), as Flink rescales
// RocksDB state. Kind records (outside every key group) are kept from all
// sources. The other sources are only read.
//
// The caller passes the source whose key groups overlap [first, end) most
// as the first, so that most state moves by hard link rather than by copy.
func RescaleKeyGroups(dir string, first, end int, srcs []KeyGroupSource, logger *slog.Logger) error {
	if len(srcs) == 0 || first < 0 || first >= end || end > 1<<15 {
		return fmt.Errorf("state: rescale %s to key groups [%d, %d) from %d sources: invalid arguments", dir, first, end, len(srcs))
	}
	if logger == nil {
		logger = slog.Default()
	}
	opts := dbOptions(dir, nil, logger)
	db, err := openPebble(dir, opts, newCompactionGate(true)) // see compactionGate
	if err != nil {
		return fmt.Errorf("state: rescale: open %s: %w", dir, err)
	}
	if err := clipKeyGroups(db, first, end); err != nil {
		db.Close()
		return fmt.Errorf("state: rescale %s to key groups [%d, %d): %w", dir, first, end, err)
	}
	for i, src := range srcs[1:] {
		path := filepath.Join(dir, fmt.Sprintf("rescale-%d.sst", i))
		if err := copyKeyGroups(db, opts.MakeWriterOptions(0, db.TableFormat()), src, first, end, path, logger); err != nil {
			db.Close()
			os.Remove(path)
			return fmt.Errorf("state: rescale %s: add key groups [%d, %d) of %s: %w", dir, max(first, src.First), min(end, src.End), src.Dir, err)
		}
	}
	return db.Close()
}

// keyGroupKey returns the first Pebble key of key group kg.
func keyGroupKey(kg int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(kg)) }

// clipKeyGroups excises every key group outside [first, end). Kind records
// (from everything.End on) stay.
func clipKeyGroups(db *pebble.DB, first, end int) error {
	ctx := context.Background()
	if first > 0 {
		if err := db.Excise(ctx, pebble.KeyRange{Start: everything.Start, End: keyGroupKey(first)}); err != nil {
			return err
		}
	}
	return db.Excise(ctx, pebble.KeyRange{Start: keyGroupKey(end), End: everything.End})
}

// copyKeyGroups writes the entries of src in key groups [first, end), and
// its kind records, into an sstable at path and ingests it into db.
func copyKeyGroups(db *pebble.DB, wopts sstable.WriterOptions, src KeyGroupSource, first, end int, path string, logger *slog.Logger) error {
	ro := dbOptions(src.Dir, nil, logger)
	ro.ReadOnly = true
	from, err := pebble.Open(src.Dir, ro)
	if err != nil {
		return err
	}
	defer from.Close()
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	w := sstable.NewWriter(newSSTWritable(f, sstWriteBuffer), wopts)
	n := 0
	ranges := []pebble.KeyRange{
		{Start: keyGroupKey(max(first, src.First)), End: keyGroupKey(min(end, src.End))},
		{Start: everything.End}, // kind records
	}
	for _, r := range ranges {
		if err := copyRange(from, w, r, &n); err != nil {
			w.Close()
			return err
		}
	}
	if err := w.Close(); err != nil { // syncs and closes the file
		return err
	}
	if n == 0 {
		return os.Remove(path)
	}
	return db.Ingest(context.Background(), []string{path})
}

// copyRange sets in w every entry of db in r (values as Pebble merged them:
// a List's merge operands become one value), counting them in n.
func copyRange(db *pebble.DB, w *sstable.Writer, r pebble.KeyRange, n *int) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: r.Start, UpperBound: r.End})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err == nil {
			err = w.Set(it.Key(), v)
		}
		if err != nil {
			it.Close()
			return err
		}
		*n++
	}
	return it.Close()
}

// OverlappingSubtasks returns the subtasks of a run with oldParallelism
// whose key groups overlap [first, end), the one with the largest overlap
// first (the base of RescaleKeyGroups), then in subtask order.
func OverlappingSubtasks(first, end, maxParallelism, oldParallelism int) []int {
	overlap := func(s int) int {
		f, e := keygroup.Range(s, maxParallelism, oldParallelism)
		return min(e, end) - max(f, first)
	}
	var out []int
	for s := range oldParallelism {
		if overlap(s) > 0 {
			out = append(out, s)
		}
	}
	best := 0
	for i, s := range out {
		if overlap(s) > overlap(out[best]) {
			best = i
		}
	}
	if best > 0 {
		out[0], out[best] = out[best], out[0]
		slices.Sort(out[1:])
	}
	return out
}
