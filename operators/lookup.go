package operators

import (
	"fmt"

	"github.com/weirstream/weir/runtime"
)

// LookupJoin joins every record of s with the row of a bounded table that
// its key names (a side input: SQL's lookup join of a stream with a
// dimension table). load returns the table; every subtask calls it once
// when it opens, at the job's start and after each restart, so the table
// must be the same each time (for example read from a file that does not
// change while the job runs): it is not checkpointed. join receives the
// record, the row and whether the key has one, and emits any number of
// records: nothing when there is no row is an inner join, the record with
// a default a left outer join.
func LookupJoin[K comparable, T, V, Out any](s runtime.Stream[T], name string, load func() (map[K]V, error), key func(T) K,
	join func(rec T, row V, found bool, out runtime.Collector[Out])) runtime.Stream[Out] {
	p := s.Pipeline()
	if load == nil || key == nil || join == nil {
		p.Fail(fmt.Errorf("lookup join %q: needs load, key and join functions", name))
	}
	return runtime.Apply(s, name, func() runtime.Operator[T, Out] {
		return &lookupOp[K, T, V, Out]{load: load, key: key, join: join}
	})
}

type lookupOp[K comparable, T, V, Out any] struct {
	runtime.OperatorBase
	load  func() (map[K]V, error)
	key   func(T) K
	join  func(T, V, bool, runtime.Collector[Out])
	table map[K]V
	out   runtime.Collector[Out]
}

func (o *lookupOp[K, T, V, Out]) Open(ctx *runtime.OperatorContext, out runtime.Collector[Out]) error {
	table, err := o.load()
	if err != nil {
		return fmt.Errorf("lookup join %q: load the table: %w", ctx.Operator, err)
	}
	o.table, o.out = table, out
	return nil
}

func (o *lookupOp[K, T, V, Out]) Process(rec T) {
	row, ok := o.table[o.key(rec)]
	o.join(rec, row, ok, o.out)
}
