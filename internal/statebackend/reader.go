package statebackend

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// get reads key's value from Pebble, valid until the next get or Applied,
// and reports whether Pebble holds key.
//
// A cache miss reads through one iterator that lives across reads, where a
// DB.Get per read opened an iterator on every table of L0 and the level
// below that might hold the key, and closed them again. A seek reuses the
// tables' iterators (each of L0's spans the whole key space: it is one
// epoch's delta), so a miss costs a seek, not the opening of an iterator
// per table. (BenchmarkMissReads, 7 tables in L0: 7.9 → 5.8 µs a read,
// medians of 3 on a loaded machine. Under the race detector Pebble records
// a stack trace at each opening of a table's iterator, which made it half
// the CPU of TestBackendMetamorphic: the package's tests under -race took
// 156 → 98 s of CPU.)
//
// The iterator sees the database as it was when it was opened: it is
// opened anew once the writer has changed the database since (see
// ingested), and closed at each Applied, so that it does not keep the
// tables that compactions replaced on disk for long.
//
// NB: a view older than the writer's last change would still be right for
// the keys a miss reads: a snapshot not yet applied holds only keys that
// stay cached until it is (see table.evict). Opening it anew after each
// change is what makes that argument unnecessary.
func (b *Backend) get(key []byte) (raw []byte, found bool, err error) {
	if gen := b.ingested.Load(); b.reader == nil || b.readerGen != gen {
		b.closeReader()
		// NB: gen was loaded before the iterator is opened, so that the
		// view holds at least every change counted in gen.
		// UseL6Filters: a miss is often of a key Pebble lacks (q20), which
		// the bottom level's filter answers without its index and data
		// blocks.
		it, err := b.db.NewIter(&pebble.IterOptions{UseL6Filters: true})
		if err != nil {
			return nil, false, err
		}
		b.reader, b.readerGen = it, gen
	}
	it := b.reader
	// The default comparer's prefix of a key is the whole key, so a prefix
	// seek finds key itself or nothing, and consults the tables' Bloom
	// filters as DB.Get does.
	if !it.SeekPrefixGE(key) {
		return nil, false, it.Error()
	}
	if !bytes.Equal(it.Key(), key) {
		return nil, false, fmt.Errorf("state: seek of %x found %x", key, it.Key())
	}
	if raw, err = it.ValueAndErr(); err != nil {
		return nil, false, err
	}
	return raw, true, nil
}

// closeReader closes the iterator that get reads through, if open.
func (b *Backend) closeReader() {
	if b.reader != nil {
		if err := b.reader.Close(); err != nil {
			b.fail(fmt.Errorf("state: close reader: %w", err))
		}
		b.reader = nil
	}
}
