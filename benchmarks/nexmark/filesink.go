package nexmark

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/weirstream/weir/connectors/file"
	"github.com/weirstream/weir/runtime"
)

// q10's output: the exactly-once file sink (connectors/file), one per partition
// directory, as nexmark-flink's filesystem sink PARTITIONED BY (dt, hm).

// q10Partition appends the directory of a q10 result to dst:
// dt=<day>/hm=<HH:mm>.
func q10Partition(dst []byte, r Q10Result) []byte {
	dst = append(append(dst, "dt="...), r.Date...)
	return append(append(dst, "/hm="...), r.Minute...)
}

// dayEnd returns the end (ms) of the day yyyy-MM-dd, UTC.
func dayEnd(day string) int64 {
	t, err := time.Parse("2006-01-02", day)
	if err != nil {
		return -1
	}
	return t.UnixMilli() + dayMillis
}

// partitionedFileSink returns the factory of a sink that writes each
// record with the exactly-once file sink of its partition, the directory
// root/partition(rec) (partition appends it to a buffer): one
// connectors/file sink per partition and subtask, opened by the partition's
// first record. PreCommit returns the states of all the subtask's
// partitions; Open and Commit pass them on.
func partitionedFileSink[T any](root string, partition func([]byte, T) []byte, format func([]byte, T) []byte) runtime.SinkFactory[T] {
	return func() (runtime.Sink[T], error) {
		return &partitionedSink[T]{root: root, partition: partition, format: format, parts: map[string]runtime.Sink[T]{}}, nil
	}
}

type partitionedSink[T any] struct {
	root      string
	partition func([]byte, T) []byte
	format    func([]byte, T) []byte
	info      runtime.TaskInfo
	parts     map[string]runtime.Sink[T]
	scratch   []byte // the partition of the current record
	last      string // partition of the last record, cached with lastSink
	lastSink  runtime.Sink[T]
}

func (s *partitionedSink[T]) open(ctx context.Context, partition string, restored []byte) (runtime.Sink[T], error) {
	if !fs.ValidPath(partition) || strings.HasPrefix(partition, ".") {
		return nil, fmt.Errorf("nexmark: invalid partition %q", partition)
	}
	newSink, err := file.NewSink(file.SinkConfig[T]{
		Dir: filepath.Join(s.root, filepath.FromSlash(partition)), Format: s.format,
		// A prefix per subtask: this subtask opens a partition's sink at the
		// partition's first record, maybe after another subtask committed
		// files there, which a fresh file sink would take for another run's.
		Prefix: fmt.Sprintf("part-s%d", s.info.Subtask),
	})
	if err != nil {
		return nil, err
	}
	fs, err := newSink()
	if err != nil {
		return nil, err
	}
	if err := fs.Open(ctx, s.info, restored); err != nil {
		return nil, fmt.Errorf("partition %s: %w", partition, err)
	}
	s.parts[partition] = fs
	return fs, nil
}

func (s *partitionedSink[T]) Open(ctx context.Context, info runtime.TaskInfo, restored []byte) error {
	s.info = info
	if restored == nil {
		return nil
	}
	d := decoder{b: restored}
	for range d.len() {
		partition, state := d.string(), d.string()
		if d.err != nil {
			break
		}
		if _, err := s.open(ctx, partition, []byte(state)); err != nil {
			return err
		}
	}
	if d.err != nil || len(d.b) != 0 {
		return errors.New("nexmark: corrupt partitioned sink state")
	}
	return nil
}

// Write writes rec to its partition's sink. Records mostly come in runs of
// one partition: the partition is compared with the last one's in a
// scratch buffer, which allocates nothing.
func (s *partitionedSink[T]) Write(ctx context.Context, rec T) error {
	s.scratch = s.partition(s.scratch[:0], rec)
	fs := s.lastSink
	if fs == nil || string(s.scratch) != s.last {
		p := string(s.scratch)
		fs = s.parts[p]
		if fs == nil {
			var err error
			if fs, err = s.open(ctx, p, nil); err != nil {
				return err
			}
		}
		s.last, s.lastSink = p, fs
	}
	return fs.Write(ctx, rec)
}

func (s *partitionedSink[T]) PreCommit(ctx context.Context, id uint64) ([]byte, error) {
	b := appendInt(nil, int64(len(s.parts)))
	for _, p := range slices.Sorted(maps.Keys(s.parts)) {
		st, err := s.parts[p].PreCommit(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("partition %s: %w", p, err)
		}
		b = appendString(appendString(b, p), string(st))
	}
	return b, nil
}

func (s *partitionedSink[T]) Commit(ctx context.Context, id uint64) error {
	for p, fs := range s.parts {
		if err := fs.Commit(ctx, id); err != nil {
			return fmt.Errorf("partition %s: %w", p, err)
		}
	}
	return nil
}

func (s *partitionedSink[T]) Close() error {
	var errs []error
	for _, fs := range s.parts {
		errs = append(errs, fs.Close())
	}
	return errors.Join(errs...)
}

// readPartitionedFiles reads the committed output under root (every file
// whose path has no element starting with a dot) as "partition line"
// strings, the lineOf of the results.
func readPartitionedFiles(root string, keepLines bool) (*Output, error) {
	out := &Output{}
	lines := []string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		// The lines are hashed in a buffer that starts with the partition:
		// a string per line cost as much as the engine's writing them.
		l := append([]byte(filepath.ToSlash(rel)), ' ')
		n := len(l)
		for sc.Scan() {
			l = append(l[:n], sc.Bytes()...)
			out.Count++
			out.Sum += hashLineBytes(l)
			if keepLines {
				lines = append(lines, string(l))
			}
		}
		return sc.Err()
	})
	if keepLines {
		out.makeLines = func() []string {
			slices.Sort(lines)
			return lines
		}
	}
	return out, err
}
