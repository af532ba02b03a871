package operators_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
)

// numbers is a bounded source of 0..n-1 (spread over its subtasks).
func numbers(n uint64) runtime.SourceFactory[uint64] {
	return must(generator.NewSource(generator.SourceConfig[uint64]{Record: func(seq uint64) uint64 { return seq }, Count: n, ChunkSize: 7}))
}

// must returns a connector constructor's factory, failing loudly on an error:
// the tests' configurations are valid by construction.
func must[F any](f F, err error) F {
	if err != nil {
		panic(err)
	}
	return f
}

type point struct{ X, Y int }

func TestPipelineErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(p *runtime.Pipeline)
		want  []string // substrings of the error
	}{
		{
			name: "duplicate source names",
			build: func(p *runtime.Pipeline) {
				a := runtime.From(p, "src", numbers(1))
				b := runtime.From(p, "src", numbers(1))
				runtime.To(runtime.Merge(a, "merged", b), "sink", newMemSink(newOutput[uint64]()))
			},
			want: []string{`"src"`, "used twice"},
		},
		{
			name: "sink named like an operator",
			build: func(p *runtime.Pipeline) {
				s := runtime.From(p, "src", numbers(1))
				c := operators.Reduce(operators.KeyBy(s, func(v uint64) uint64 { return v }), "state", func(a, b uint64) uint64 { return a + b }, nil)
				runtime.To(c, "state", newMemSink(newOutput[uint64]()))
			},
			want: []string{`"state"`, "used twice"},
		},
		{
			name: "duplicate keyed operator names",
			build: func(p *runtime.Pipeline) {
				s := runtime.From(p, "src", numbers(1))
				k := operators.KeyBy(s, func(v uint64) uint64 { return v })
				sum := func(a, b uint64) uint64 { return a + b }
				a := operators.Reduce(k, "sum", sum, nil)
				b := operators.Reduce(k, "sum", sum, nil)
				runtime.To(runtime.Merge(a, "merged", b), "sink", newMemSink(newOutput[uint64]()))
			},
			want: []string{`"sum"`, "used twice"},
		},
		{
			name: "empty name",
			build: func(p *runtime.Pipeline) {
				runtime.To(runtime.From(p, "", numbers(1)), "sink", newMemSink(newOutput[uint64]()))
			},
			want: []string{`operator name ""`},
		},
		{
			name: "name with a slash",
			build: func(p *runtime.Pipeline) {
				runtime.To(runtime.From(p, "../etc", numbers(1)), "sink", newMemSink(newOutput[uint64]()))
			},
			want: []string{`"../etc"`},
		},
		{
			name: "name with a space",
			build: func(p *runtime.Pipeline) {
				runtime.To(runtime.From(p, "src", numbers(1)), "my sink", newMemSink(newOutput[uint64]()))
			},
			want: []string{`"my sink"`},
		},
		{
			name: "name starting with a dash",
			build: func(p *runtime.Pipeline) {
				runtime.To(runtime.From(p, "-src", numbers(1)), "sink", newMemSink(newOutput[uint64]()))
			},
			want: []string{`"-src"`},
		},
		{
			name: "name too long",
			build: func(p *runtime.Pipeline) {
				runtime.To(runtime.From(p, strings.Repeat("s", 129), numbers(1)), "sink", newMemSink(newOutput[uint64]()))
			},
			want: []string{strings.Repeat("s", 129)},
		},
		{
			name: "struct key without codec",
			build: func(p *runtime.Pipeline) {
				s := runtime.From(p, "src", numbers(1))
				k := operators.KeyBy(s, func(v uint64) point { return point{int(v), 0} })
				c := operators.Aggregate(k, "count", operators.AggregateFunc[point, uint64, int64, int64]{
					Add:    func(acc int64, _ uint64, _ bool) int64 { return acc + 1 },
					Result: func(_ point, acc int64) int64 { return acc },
				}, nil)
				runtime.To(c, "sink", newMemSink(newOutput[int64]()))
			},
			want: []string{"need a codec", "point"},
		},
		{
			name: "struct accumulator without codec",
			build: func(p *runtime.Pipeline) {
				s := runtime.From(p, "src", numbers(1))
				k := operators.KeyBy(s, func(v uint64) uint64 { return v })
				c := operators.Aggregate(k, "acc", operators.AggregateFunc[uint64, uint64, point, int64]{
					Add:    func(acc point, _ uint64, _ bool) point { return acc },
					Result: func(_ uint64, acc point) int64 { return 0 },
				}, nil)
				runtime.To(c, "sink", newMemSink(newOutput[int64]()))
			},
			want: []string{`aggregate "acc"`, "need a codec"},
		},
		{
			name: "invalid parallelism",
			build: func(p *runtime.Pipeline) {
				s := runtime.From(p, "src", numbers(1)).SetParallelism(0)
				runtime.To(s, "sink", newMemSink(newOutput[uint64]()))
			},
			want: []string{`"src"`, "parallelism 0"},
		},
		{
			name: "KeepLastAtCheckpoints with event time",
			build: func(p *runtime.Pipeline) {
				s := runtime.AssignTimestamps(runtime.From(p, "src", numbers(1)), "times", runtime.Monotonic(func(v uint64) int64 { return int64(v) }))
				last := operators.KeepLast(operators.KeyBy(s, func(v uint64) uint64 { return v }), "last", func(a, b uint64) bool { return a > b }, nil,
					operators.KeepLastAtCheckpoints())
				runtime.To(last, "sink", newMemSink(newOutput[uint64]()))
			},
			want: []string{`keep last "last"`, "KeepLastAtCheckpoints", "without event time", `"times"`},
		},
		{
			name:  "no source",
			build: func(p *runtime.Pipeline) {},
			want:  []string{"no source"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := runtime.NewPipeline("job")
			tc.build(p)
			err := runtime.Run(context.Background(), p, testConfig(t, 1))
			if !errors.Is(err, runtime.ErrInvalidPipeline) {
				t.Fatalf("Run = %v, want ErrInvalidPipeline", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if err := runtime.NewPipeline("bad job name").Err(); !errors.Is(err, runtime.ErrInvalidPipeline) || !strings.Contains(err.Error(), "bad job name") {
		t.Errorf("NewPipeline with an invalid name: Err = %v", err)
	}
}

// TestRuntimeErrors checks errors that only show when the job runs.
func TestRuntimeErrors(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name  string
		setup func(*operators.SetupContext[uint64]) (operators.ProcessFunc[uint64, uint64, uint64], error)
		want  error
		text  string
	}{
		{"setup fails", func(*operators.SetupContext[uint64]) (operators.ProcessFunc[uint64, uint64, uint64], error) {
			return nil, boom
		}, boom, `"proc"`},
		{"setup returns no function", func(*operators.SetupContext[uint64]) (operators.ProcessFunc[uint64, uint64, uint64], error) {
			return nil, nil
		}, nil, "no function"},
		{"process fails", func(*operators.SetupContext[uint64]) (operators.ProcessFunc[uint64, uint64, uint64], error) {
			return func(_ *operators.Context[uint64], v uint64, out runtime.Collector[uint64]) error {
				if v == 50 {
					return boom
				}
				out.Collect(v)
				return nil
			}, nil
		}, boom, `process "proc"`},
		{"state registered twice", func(ctx *operators.SetupContext[uint64]) (operators.ProcessFunc[uint64, uint64, uint64], error) {
			if _, err := state.NewValue(ctx.Scope, "x", state.Int64); err != nil {
				return nil, err
			}
			_, err := state.NewValue(ctx.Scope, "x", state.Int64)
			return nil, err
		}, nil, "registered twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := runtime.NewPipeline("job")
			s := runtime.From(p, "src", numbers(100))
			out := operators.Process(operators.KeyBy(s, func(v uint64) uint64 { return v % 3 }), "proc", tc.setup)
			runtime.To(out, "sink", newMemSink(newOutput[uint64]()))
			err := runtime.Run(context.Background(), p, testConfig(t, 2))
			if err == nil {
				t.Fatal("Run succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Run = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not mention %q", err, tc.text)
			}
		})
	}
}

// TestStatelessOperators runs Map, Filter, FlatMap and Merge on bounded
// input and compares the committed multiset with the expected one, for
// several parallelisms (chained and redistributed).
func TestStatelessOperators(t *testing.T) {
	const n = 300
	var want []string
	for v := uint64(0); v < n; v++ {
		if v%3 != 0 {
			continue
		}
		want = append(want, fmt.Sprint("a", v*10), fmt.Sprint("a", v*10+1))
	}
	for v := uint64(0); v < n/2; v++ {
		want = append(want, fmt.Sprint("b", v))
	}
	slices.Sort(want)
	for _, par := range []int{1, 3} {
		for _, sinkPar := range []int{1, 2} {
			t.Run(fmt.Sprintf("parallelism=%d/sink=%d", par, sinkPar), func(t *testing.T) {
				p := runtime.NewPipeline("stateless")
				a := runtime.From(p, "a", numbers(n))
				a3 := operators.Filter(a, func(v uint64) bool { return v%3 == 0 })
				a30 := operators.Map(a3, func(v uint64) uint64 { return v * 10 })
				pairs := operators.FlatMap(a30, func(v uint64, out runtime.Collector[string]) {
					out.Collect(fmt.Sprint("a", v))
					out.Collect(fmt.Sprint("a", v+1))
				})
				b := operators.Map(runtime.From(p, "b", numbers(n/2)).SetParallelism(2), func(v uint64) string { return fmt.Sprint("b", v) })
				out := newOutput[string]()
				runtime.To(runtime.Merge(pairs, "merged", b), "sink", newMemSink(out)).SetParallelism(sinkPar)
				if err := runtime.Run(context.Background(), p, testConfig(t, par)); err != nil {
					t.Fatal(err)
				}
				if got := sorted(out.records()); !slices.Equal(got, want) {
					t.Fatalf("committed %d records, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
				}
			})
		}
	}
}

// at returns s[i], or the zero value beyond the end.
func at[T any](s []T, i int) T {
	var zero T
	if i < len(s) {
		return s[i]
	}
	return zero
}

func firstDiff[T comparable](a, b []T) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestReduceKeepsRunningFold checks Reduce on one source subtask, where the
// order per key is the input order: the outputs of each key are the running
// fold of its records, with a fold function for which order matters.
func TestReduceKeepsRunningFold(t *testing.T) {
	const n, keys = 500, 7
	for _, par := range []int{1, 3} {
		t.Run(fmt.Sprintf("parallelism=%d", par), func(t *testing.T) {
			p := runtime.NewPipeline("reduce")
			s := runtime.From(p, "src", numbers(n)).SetParallelism(1)
			type kv struct {
				K, V uint64
			}
			pairs := operators.Map(s, func(v uint64) kv { return kv{v % keys, v} }).SetParallelism(1) // chained: input order
			sums := operators.Reduce(operators.KeyBy(pairs, func(r kv) uint64 { return r.K }), "sum",
				func(acc, rec kv) kv { return kv{acc.K, acc.V*31 + rec.V} }, state.JSON[kv]()) // order matters
			lines := operators.Map(sums, func(r kv) string { return fmt.Sprintf("%d:%d", r.K, r.V) })
			out := newOutput[string]()
			runtime.To(lines, "sink", newMemSink(out)).SetParallelism(1)
			if err := runtime.Run(context.Background(), p, testConfig(t, par)); err != nil {
				t.Fatal(err)
			}
			var want []string
			acc := map[uint64]uint64{}
			for v := uint64(0); v < n; v++ {
				if a, ok := acc[v%keys]; ok {
					acc[v%keys] = a*31 + v
				} else {
					acc[v%keys] = v // the first record is the initial value
				}
				want = append(want, fmt.Sprintf("%d:%d", v%keys, acc[v%keys]))
			}
			got := out.records()
			// Per key, the order is the input order.
			perKey := func(recs []string) map[string][]string {
				m := map[string][]string{}
				for _, r := range recs {
					k, _, _ := strings.Cut(r, ":")
					m[k] = append(m[k], r)
				}
				return m
			}
			gk, wk := perKey(got), perKey(want)
			if len(gk) != keys {
				t.Fatalf("outputs for %d keys, want %d", len(gk), keys)
			}
			for k, w := range wk {
				if !slices.Equal(gk[k], w) {
					i := firstDiff(gk[k], w)
					t.Fatalf("key %s: %d outputs, want %d; output %d is %q, want %q", k, len(gk[k]), len(w), i, at(gk[k], i), at(w, i))
				}
			}
		})
	}
}

// countPipeline counts records per key with Aggregate; each output is
// "key:count", so the outputs of a correct run are, per key, 1..count
// exactly once whatever the interleaving.
func countPipeline(p *runtime.Pipeline, src runtime.SourceFactory[uint64], keys uint64, out *output[string]) {
	runtime.To(countStream(runtime.From(p, "src", src), keys), "sink", newMemSink(out))
}

// countStream is the counting stage of countPipeline.
func countStream(s runtime.Stream[uint64], keys uint64) runtime.Stream[string] {
	k := operators.KeyBy(s, func(v uint64) string { return "k" + strconv.FormatUint(v%keys, 10) })
	return operators.Aggregate(k, "count", operators.AggregateFunc[string, uint64, int64, string]{
		Add:    func(acc int64, _ uint64, _ bool) int64 { return acc + 1 },
		Result: func(k string, acc int64) string { return fmt.Sprintf("%s:%d", k, acc) },
	}, nil)
}

func wantCounts(n, keys uint64) []string {
	var want []string
	counts := map[uint64]int{}
	for v := uint64(0); v < n; v++ {
		counts[v%keys]++
		want = append(want, fmt.Sprintf("k%d:%d", v%keys, counts[v%keys]))
	}
	slices.Sort(want)
	return want
}

func TestAggregateSameResultAtAnyParallelism(t *testing.T) {
	const n, keys = 3000, 41
	want := wantCounts(n, keys)
	for _, par := range []int{1, 3} {
		t.Run(fmt.Sprintf("parallelism=%d", par), func(t *testing.T) {
			p := runtime.NewPipeline("count")
			out := newOutput[string]()
			countPipeline(p, numbers(n), keys, out)
			cfg := testConfig(t, par)
			cfg.StateCacheBytes = 1 << 10 // make state reads go to Pebble
			if err := runtime.Run(context.Background(), p, cfg); err != nil {
				t.Fatal(err)
			}
			if got := sorted(out.records()); !slices.Equal(got, want) {
				t.Fatalf("committed %d records, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
			}
		})
	}
}

// TestKeyByRoutesEachKeyToOneSubtask records, in a Process function, which
// subtask sees each key: every key must be seen by exactly the subtask that
// owns its key group, and state (a Map of seen records) must see every
// record of the key.
func TestKeyByRoutesEachKeyToOneSubtask(t *testing.T) {
	const n, keys, par = 2000, 50, 3
	p := runtime.NewPipeline("route")
	s := runtime.From(p, "src", numbers(n)).SetParallelism(2)
	k := operators.KeyBy(s, func(v uint64) string { return "key-" + strconv.FormatUint(v%keys, 10) })
	var mu sync.Mutex
	subtasks := map[string]map[int]int{} // key → subtask → records
	out := operators.Process(k, "where", func(ctx *operators.SetupContext[string]) (operators.ProcessFunc[string, uint64, string], error) {
		if ctx.Parallelism != par {
			return nil, fmt.Errorf("parallelism %d, want %d", ctx.Parallelism, par)
		}
		records, err := state.NewMap(ctx.Scope, "records", state.Uint64, state.Bool)
		if err != nil {
			return nil, err
		}
		return func(pc *operators.Context[string], v uint64, out runtime.Collector[string]) error {
			key := pc.Key()
			if v%keys != mustKey(key) {
				return fmt.Errorf("record %d processed with key %q", v, key)
			}
			if _, dup := records.Get(v); dup {
				return fmt.Errorf("record %d seen twice", v)
			}
			records.Put(v, true)
			mu.Lock()
			if subtasks[key] == nil {
				subtasks[key] = map[int]int{}
			}
			subtasks[key][ctx.Subtask]++
			mu.Unlock()
			if records.Len() == n/keys {
				out.Collect(key) // every record of the key is in its state
			}
			return nil
		}, nil
	})
	done := newOutput[string]()
	runtime.To(out, "sink", newMemSink(done))
	cfg := testConfig(t, par)
	cfg.StateCacheBytes = 1 << 10
	if err := runtime.Run(context.Background(), p, cfg); err != nil {
		t.Fatal(err)
	}
	hash := keygroup.Hasher(state.String)
	used := map[int]bool{}
	for key, by := range subtasks {
		if len(by) != 1 {
			t.Errorf("key %q processed by subtasks %v", key, by)
		}
		want := keygroup.SubtaskOf(keygroup.Of(hash(key), keygroup.DefaultMaxParallelism), keygroup.DefaultMaxParallelism, par)
		for st, cnt := range by {
			used[st] = true
			if st != want {
				t.Errorf("key %q processed by subtask %d, owner of its key group is %d", key, st, want)
			}
			if cnt != n/keys {
				t.Errorf("key %q: %d records, want %d", key, cnt, n/keys)
			}
		}
	}
	if len(subtasks) != keys || len(used) != par {
		t.Errorf("%d keys over subtasks %v; want %d keys over %d subtasks", len(subtasks), used, keys, par)
	}
	if got := len(done.records()); got != keys {
		t.Errorf("%d keys had all their records in state, want %d", got, keys)
	}
}

func mustKey(key string) uint64 {
	v, err := strconv.ParseUint(strings.TrimPrefix(key, "key-"), 10, 64)
	if err != nil {
		panic(err)
	}
	return v
}

// TestStructKeyWithCodec checks that a struct key works once it has a codec.
func TestStructKeyWithCodec(t *testing.T) {
	p := runtime.NewPipeline("points")
	s := runtime.From(p, "src", numbers(100))
	k := operators.KeyBy(s, func(v uint64) point { return point{int(v % 4), int(v % 2)} }, operators.KeyCodec(state.JSON[point]()))
	c := operators.Aggregate(k, "count", operators.AggregateFunc[point, uint64, int64, string]{
		Add:    func(acc int64, _ uint64, _ bool) int64 { return acc + 1 },
		Result: func(k point, acc int64) string { return fmt.Sprintf("%d,%d:%d", k.X, k.Y, acc) },
	}, nil)
	out := newOutput[string]()
	runtime.To(c, "sink", newMemSink(out))
	if err := runtime.Run(context.Background(), p, testConfig(t, 2)); err != nil {
		t.Fatal(err)
	}
	final := map[string]int{}
	for _, r := range out.records() {
		k, c, _ := strings.Cut(r, ":")
		v, _ := strconv.Atoi(c)
		final[k] = max(final[k], v)
	}
	want := map[string]int{"0,0": 25, "1,1": 25, "2,0": 25, "3,1": 25}
	if fmt.Sprint(final) != fmt.Sprint(want) {
		t.Fatalf("final counts %v, want %v", final, want)
	}
}
