package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/weirstream/weir/runtime"
)

// crash drops s as a killed process would: buffered records are lost, files
// stay as they are, nothing is cleaned up.
func crash(s *testSink[string]) {
	if s.w.f != nil {
		s.w.f.Close()
	}
}

// visible returns what `cat DIR/*` sees: the non-dot entries of dir, sorted,
// as "name=line,line" items. It fails the test on anything that is not a
// regular file.
func visible(t *testing.T, dir string) []string {
	t.Helper()
	out := []string{}
	for _, m := range shellGlob(t, dir) {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatalf("visible file: %v", err)
		}
		out = append(out, filepath.Base(m)+"="+strings.Join(splitLines(string(b)), ","))
	}
	return out
}

// shellGlob returns what the shell expands DIR/* to: the entries of dir
// not starting with a dot, sorted. NB: filepath.Glob does not skip dot
// entries.
func shellGlob(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

func splitLines(s string) []string {
	lines := strings.Split(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// staged lists the staging directory of subtask, with in-progress names
// shortened to "inprogress".
func staged(t *testing.T, dir string, subtask int) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, stagingDir, strconv.Itoa(subtask)))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	out := []string{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "inprogress-") {
			name = "inprogress"
		}
		out = append(out, name)
	}
	return out
}

// TestProtocol runs scripts of sink operations. Each line is a command,
// optionally prefixed by "@<subtask>" (default 0) and suffixed by
// "!err <text>" when it must fail with an error containing text:
//
//	alo                  switch to at-least-once mode (first line only)
//	open [[s:]n]         new instance, fresh or restored from the state of
//	                     PreCommit(n) of this subtask (or of subtask s)
//	write a b ...        write records
//	precommit n          PreCommit(n); the state is kept for "open n"
//	commit n             Commit(n)
//	crash                drop the instance without Close
//	close                Close
//	visible item ...     the visible files are exactly these "name=line,line" items
//	staged name ...      the subtask's staging directory holds exactly these
//	rm path              remove a file (relative to the output directory)
//	put name=line,...    create a visible file that the sink did not write
//	tear name n          cut the last n bytes off a file, as a kill inside
//	                     write(2) does
func TestProtocol(t *testing.T) {
	tests := []struct {
		name   string
		script string
	}{
		{"write precommit commit", `
open
write a b
visible
staged inprogress
precommit 1
visible
staged pending-1
commit 1
visible part-000-0000000001=a,b
staged
close
visible part-000-0000000001=a,b`},
		{"epoch without records creates nothing", `
open
precommit 1
commit 1
staged
visible
write a
precommit 2
precommit 3
commit 3
visible part-000-0000000002=a`},
		{"crash after precommit: restore commits exactly once", `
open
write a b
precommit 1
write c
crash
visible
staged inprogress pending-1
open 1
visible part-000-0000000001=a,b
staged
write c
precommit 2
commit 2
visible part-000-0000000001=a,b part-000-0000000002=c`},
		{"commit covers a checkpoint that never completed", `
open
write a
precommit 1
write b
precommit 2
visible
commit 2
visible part-000-0000000001=a part-000-0000000002=b
staged`},
		{"state lists every pending file", `
open
write a
precommit 1
write b
precommit 2
crash
open 2
visible part-000-0000000001=a part-000-0000000002=b`},
		{"commit below a later precommit keeps it pending", `
open
write a
precommit 1
write b
precommit 2
commit 1
visible part-000-0000000001=a
staged pending-2
commit 2
visible part-000-0000000001=a part-000-0000000002=b`},
		{"restore after the final rename is idempotent", `
open
write a
precommit 1
commit 1
crash
open 1
visible part-000-0000000001=a
crash
open 1
commit 1
visible part-000-0000000001=a
write b
precommit 2
commit 2
commit 2
visible part-000-0000000001=a part-000-0000000002=b`},
		{"restore discards in-progress and uncompleted pending files", `
open
write a
precommit 1
commit 1
write b
precommit 2
write c
precommit 3
write d
crash
staged inprogress pending-2 pending-3
open 1
staged
visible part-000-0000000001=a`},
		{"fresh start cleans staging", `
open
write a
precommit 1
write b
crash
staged inprogress pending-1
open
staged
visible`},
		{"fresh start over committed output is refused and changes nothing", `
open
write a
precommit 1
commit 1
write b
precommit 2
write c
crash
open !err committed by another job or an earlier run
staged inprogress pending-2
visible part-000-0000000001=a`},
		{"close removes the in-progress file and keeps pending ones", `
open
write a
precommit 1
write b
close
staged pending-1
open 1
visible part-000-0000000001=a
staged`},
		{"missing staged and final file is data loss", `
open
write a
precommit 1
rm .weir/0/pending-1
commit 1 !err committed data is missing
crash
open 1 !err neither the staged file`},
		{"committed file removed after commit is data loss on restore", `
open
write a
precommit 1
commit 1
rm part-000-0000000001
crash
open 1 !err committed data is missing`},
		{"truncated staged file is data loss", `
open
write abc
precommit 1
put .weir/0/pending-1=a
commit 1 !err staged
visible`},
		{"never overwrites a foreign file", `
open
write a
precommit 1
put part-000-0000000001=x
commit 1 !err refusing to overwrite
visible part-000-0000000001=x
crash
open 1 !err refusing to overwrite
visible part-000-0000000001=x`},
		{"committed file of another size is a conflict", `
open
write a
precommit 1
commit 1
put part-000-0000000001=xyz
crash
open 1 !err has 4 bytes, the checkpoint recorded 2
visible part-000-0000000001=xyz`},
		{"checkpoint ids must increase", `
open
write a
precommit 2
write b
precommit 2 !err must increase`},
		{"subtasks share the directory", `
@0 open
@1 open
@0 write a
@1 write b
@0 precommit 1
@1 precommit 1
@1 commit 1
visible part-001-0000000001=b
@1 write c
@1 crash
@0 write d
@0 crash
@1 staged inprogress
@0 open 1
@0 staged
@1 staged inprogress
@1 open 1
@1 staged
visible part-000-0000000001=a part-001-0000000001=b`},
		{"state of another subtask is refused", `
@0 open
@0 write a
@0 precommit 1
@0 crash
@1 open 0:1 !err state of subtask 0 restored into subtask 1`},
		{"at-least-once writes visible files and duplicates after a crash", `
alo
open
write a
visible part-000-alo-000000=
precommit 1
visible part-000-alo-000000=a
crash
open
write a
precommit 2
commit 2
close
visible part-000-alo-000000=a part-000-alo-000001=a`},
		{"at-least-once trims the partial line a kill inside a write left", `
alo
open
@1 open
write aa bb
@1 write xx yy
precommit 1
@1 precommit 1
crash
@1 crash
put part-002-alo-000000=pp,qq
tear part-000-alo-000000 2
tear part-001-alo-000000 1
tear part-002-alo-000000 2
visible part-000-alo-000000=aa,b part-001-alo-000000=xx,yy part-002-alo-000000=pp,q
open 1
visible part-000-alo-000000=aa part-001-alo-000000=xx,yy part-002-alo-000000=pp
@1 open 1
visible part-000-alo-000000=aa part-001-alo-000000=xx part-002-alo-000000=pp
write bb
precommit 2
visible part-000-alo-000000=aa part-000-alo-000001=bb part-001-alo-000000=xx part-002-alo-000000=pp`},
		{"exactly-once counterpart of the duplicate scenario", `
open
write a
precommit 1
crash
open
write a
precommit 2
commit 2
close
visible part-000-0000000002=a`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runScript(t, tc.script)
		})
	}
}

func runScript(t *testing.T, script string) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "out") // created by Open
	cfg := LinesTo(dir)
	sinks := map[int]*testSink[string]{}
	states := map[string][]byte{}
	for lineNo, line := range strings.Split(strings.TrimSpace(script), "\n") {
		wantErr := ""
		if i := strings.Index(line, " !err "); i >= 0 {
			line, wantErr = line[:i], line[i+len(" !err "):]
		}
		sub := 0
		if strings.HasPrefix(line, "@") {
			at, rest, _ := strings.Cut(line, " ")
			sub, _ = strconv.Atoi(at[1:])
			line = rest
		}
		fields := strings.Fields(line)
		cmd, args := fields[0], fields[1:]
		fail := func(format string, a ...any) {
			t.Helper()
			t.Fatalf("line %d %q: %s", lineNo+1, line, fmt.Sprintf(format, a...))
		}
		id := func() uint64 {
			n, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil {
				fail("bad checkpoint id")
			}
			return n
		}
		var err error
		switch cmd {
		case "alo":
			cfg.Mode = AtLeastOnce
		case "open":
			s, nerr := newSinkInstance(cfg)
			if nerr != nil {
				fail("%v", nerr)
			}
			var restored []byte
			if len(args) > 0 {
				key := args[0]
				if !strings.Contains(key, ":") {
					key = fmt.Sprint(sub, ":", key)
				}
				restored = states[key]
				if restored == nil && cfg.Mode != AtLeastOnce {
					fail("no state for checkpoint %s", args[0])
				}
			}
			sinks[sub] = s
			err = s.Open(ctx, runtime.TaskInfo{Subtask: sub, Parallelism: 2}, restored)
		case "write":
			for _, a := range args {
				if err = sinks[sub].Write(ctx, a); err != nil {
					break
				}
			}
		case "precommit":
			var st []byte
			st, err = sinks[sub].PreCommit(ctx, id())
			if err == nil {
				states[fmt.Sprint(sub, ":", args[0])] = st
			}
		case "commit":
			err = sinks[sub].Commit(ctx, id())
		case "crash":
			crash(sinks[sub])
			delete(sinks, sub)
		case "close":
			err = sinks[sub].Close()
			delete(sinks, sub)
		case "visible":
			if got := visible(t, dir); !slices.Equal(got, args) {
				fail("visible files:\ngot  %q\nwant %q", got, args)
			}
		case "staged":
			if got := staged(t, dir, sub); !slices.Equal(got, args) {
				fail("staged files:\ngot  %q\nwant %q", got, args)
			}
		case "rm":
			if rerr := os.Remove(filepath.Join(dir, args[0])); rerr != nil {
				fail("%v", rerr)
			}
		case "put":
			name, content, _ := strings.Cut(args[0], "=")
			data := strings.ReplaceAll(content, ",", "\n") + "\n"
			os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
			if werr := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); werr != nil {
				fail("%v", werr)
			}
		case "tear":
			n, _ := strconv.Atoi(args[1])
			path := filepath.Join(dir, args[0])
			fi, serr := os.Stat(path)
			if serr != nil {
				fail("%v", serr)
			}
			if terr := os.Truncate(path, fi.Size()-int64(n)); terr != nil {
				fail("%v", terr)
			}
		default:
			fail("unknown command")
		}
		switch {
		case wantErr == "" && err != nil:
			fail("unexpected error: %v", err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			fail("error = %v, want one containing %q", err, wantErr)
		}
	}
	for _, s := range sinks {
		crash(s)
	}
}

func TestErrorsAreMarked(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	info := runtime.TaskInfo{Subtask: 0, Parallelism: 1}
	s, _ := newSinkInstance(LinesTo(dir))
	if err := s.Open(ctx, info, nil); err != nil {
		t.Fatal(err)
	}
	s.Write(ctx, "a")
	st, err := s.PreCommit(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, stagingDir, "0", "pending-1"))
	if err := s.Commit(ctx, 1); !errors.Is(err, ErrDataLoss) {
		t.Fatalf("Commit: err = %v, want ErrDataLoss", err)
	}
	os.WriteFile(filepath.Join(dir, "part-000-0000000001"), []byte("xx\n"), 0o644)
	if err := s.Commit(ctx, 1); !errors.Is(err, ErrConflict) {
		t.Fatalf("Commit: err = %v, want ErrConflict", err)
	}
	s2, _ := newSinkInstance(LinesTo(dir))
	if err := s2.Open(ctx, info, st); !errors.Is(err, ErrConflict) {
		t.Fatalf("Open: err = %v, want ErrConflict", err)
	}
}

func TestSinkConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     SinkConfig[string]
		wantErr string
	}{
		{"lines", LinesTo("out"), ""},
		{"no dir", SinkConfig[string]{Format: StringLine}, "no output directory"},
		{"no format", SinkConfig[string]{Dir: "out"}, "no Format"},
		{"hidden prefix", SinkConfig[string]{Dir: "out", Format: StringLine, Prefix: ".x"}, "invalid prefix"},
		{"prefix with separator", SinkConfig[string]{Dir: "out", Format: StringLine, Prefix: "a/b"}, "invalid prefix"},
		{"rolling", SinkConfig[string]{Dir: "out", Format: StringLine, MaxFileSize: 1 << 20}, ""},
		{"negative MaxFileSize", SinkConfig[string]{Dir: "out", Format: StringLine, MaxFileSize: -1}, "negative"},
		{"rolling at least once", SinkConfig[string]{Dir: "out", Format: StringLine, MaxFileAge: 1, Mode: AtLeastOnce}, "exactly-once mode only"},
		{"unknown mode", SinkConfig[string]{Dir: "out", Format: StringLine, Mode: 2}, "unknown SinkMode(2)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSink(tc.cfg)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestCorruptState(t *testing.T) {
	good := encodeState(0, []pendingFile{{checkpoint: 1, pending: "pending-1", final: "part-000-0000000001", size: 3}})
	bad := map[string][]byte{
		"empty":       {},
		"version":     append([]byte{7}, good[1:]...),
		"truncated":   good[:len(good)-2],
		"trailing":    append(slices.Clone(good), 0),
		"path escape": encodeState(0, []pendingFile{{checkpoint: 1, pending: "../../x", final: "f", size: 1}}),
	}
	for name, b := range bad {
		t.Run(name, func(t *testing.T) {
			s, _ := newSinkInstance(LinesTo(t.TempDir()))
			if err := s.Open(context.Background(), runtime.TaskInfo{Parallelism: 1}, b); err == nil {
				t.Fatal("Open accepted a corrupt state")
			}
		})
	}
	sub, files, err := decodeState(good)
	if err != nil || sub != 0 || len(files) != 1 || files[0] != (pendingFile{1, "pending-1", "part-000-0000000001", 3}) {
		t.Fatalf("round trip: %d %v %v", sub, files, err)
	}
}

func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	s, _ := newSinkInstance(LinesTo(b.TempDir()))
	if err := s.Open(ctx, runtime.TaskInfo{Parallelism: 1}, nil); err != nil {
		b.Fatal(err)
	}
	rec := "a record of moderate length, about sixty bytes long......"
	b.SetBytes(int64(len(rec) + 1))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Write(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	s.Close()
}

// TestLossIsUnrecoverable: a job whose output lost committed data must stop,
// not be restarted in a loop by the runtime's restart strategy.
func TestLossIsUnrecoverable(t *testing.T) {
	for _, err := range []error{ErrDataLoss, ErrConflict} {
		if !errors.Is(err, runtime.ErrUnrecoverable) {
			t.Errorf("%v does not wrap runtime.ErrUnrecoverable", err)
		}
	}
}

// testSink is a sink instance with its writer at hand.
type testSink[T any] struct {
	runtime.Sink[T]
	w *sink[T]
}

// newSinkInstance makes one sink instance of cfg, as NewSink's factory
// does for a subtask.
func newSinkInstance[T any](cfg SinkConfig[T]) (*testSink[T], error) {
	if _, err := NewSink(cfg); err != nil {
		return nil, err
	}
	cfg.EnsureDefaults()
	w := &sink[T]{cfg: cfg}
	return &testSink[T]{Sink: runtime.NewTwoPhaseSink[T, pendingFile](w, fileCodec{}), w: w}, nil
}

// TestLegacyStateIsRestored: a checkpoint taken before the sink used
// runtime.NewTwoPhaseSink still restores, and its promise is kept.
func TestLegacyStateIsRestored(t *testing.T) {
	dir := t.TempDir()
	staging := filepath.Join(dir, stagingDir, "0")
	if err := os.MkdirAll(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(staging, "pending-1"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := encodeState(0, []pendingFile{{checkpoint: 1, pending: "pending-1", final: "part-000-0000000001", size: 2}})
	s, _ := newSinkInstance(LinesTo(dir))
	if err := s.Open(t.Context(), runtime.TaskInfo{Parallelism: 1}, st); err != nil {
		t.Fatal(err)
	}
	if got := visible(t, dir); !slices.Equal(got, []string{"part-000-0000000001=a"}) {
		t.Fatalf("visible %q", got)
	}
	s2, _ := newSinkInstance(LinesTo(dir))
	if err := s2.Open(t.Context(), runtime.TaskInfo{Subtask: 1, Parallelism: 2}, st); err == nil ||
		!strings.Contains(err.Error(), "state of subtask 0 restored into subtask 1") {
		t.Fatalf("legacy state of another subtask: err = %v", err)
	}
}
