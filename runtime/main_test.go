package runtime_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/runtime"
)

const mainHelperEnv = "WEIR_RUNTIME_MAIN_HELPER"

// TestMainHelper is not a test: run as a child by TestMainSecondSignal, it
// runs Main on an endless job whose only checkpoint (the interval is an
// hour) is the final one of a stop; the sink's PreCommit holds it until the
// parent writes a byte to file descriptor 3.
func TestMainHelper(t *testing.T) {
	dir := os.Getenv(mainHelperEnv)
	if dir == "" {
		t.Skip("helper process")
	}
	release := os.NewFile(3, "release")
	p := runtime.NewPipeline("signals")
	s := runtime.From(p, "src", func() (runtime.Source[string], error) { return &endlessSource{}, nil })
	runtime.To(s, "sink", func() (runtime.Sink[string], error) { return &heldSink{release: release}, nil })
	runtime.Main(p, runtime.Config{CheckpointDir: dir, CheckpointInterval: time.Hour, CheckpointTimeout: 2 * time.Hour,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
}

// endlessSource emits a few records, then nothing, forever.
type endlessSource struct{ sent bool }

func (s *endlessSource) Open(context.Context, runtime.TaskInfo, []byte) error { return nil }
func (s *endlessSource) Read(ctx context.Context, out runtime.Collector[string]) error {
	if !s.sent {
		s.sent = true
		for i := range 10 {
			out.Collect(fmt.Sprint(i))
		}
		return nil
	}
	select { // nothing to read: wait briefly, as a Source should
	case <-ctx.Done():
	case <-time.After(10 * time.Millisecond):
	}
	return nil
}
func (s *endlessSource) Snapshot() ([]byte, error) { return nil, nil }
func (s *endlessSource) Close() error              { return nil }

// heldSink reports its steps on stderr and holds PreCommit until a byte
// arrives on release.
type heldSink struct {
	release *os.File
	n       int
}

func (s *heldSink) Open(context.Context, runtime.TaskInfo, []byte) error {
	fmt.Fprintln(os.Stderr, "helper: sink open")
	return nil
}
func (s *heldSink) Write(context.Context, string) error { s.n++; return nil }
func (s *heldSink) PreCommit(context.Context, uint64) ([]byte, error) {
	fmt.Fprintln(os.Stderr, "helper: pre-commit held")
	_, err := s.release.Read(make([]byte, 1))
	return nil, err
}
func (s *heldSink) Commit(_ context.Context, id uint64) error {
	fmt.Fprintf(os.Stderr, "helper: committed %d records in checkpoint %d\n", s.n, id)
	return nil
}
func (s *heldSink) Close() error { return nil }

// TestMainSecondSignal checks what Main does with a second signal while
// its final checkpoint is being taken: it logs it and goes on, so that the
// sinks commit and the job exits 0, rather than exiting at once.
func TestMainSecondSignal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	child := exec.Command(os.Args[0], "-test.run=^TestMainHelper$")
	child.Env = append(os.Environ(), mainHelperEnv+"="+t.TempDir())
	child.ExtraFiles = []*os.File{r}
	stderr, err := child.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer child.Process.Kill()
	var out strings.Builder
	lines := bufio.NewScanner(stderr)
	// await reads the child's stderr up to a line containing s.
	await := func(s string) {
		t.Helper()
		for lines.Scan() {
			out.WriteString(lines.Text() + "\n")
			if strings.Contains(lines.Text(), s) {
				return
			}
		}
		child.Wait()
		t.Fatalf("the child ended (%v) before writing %q:\n%s", child.ProcessState, s, out.String())
	}
	await("helper: sink open")
	child.Process.Signal(syscall.SIGINT)
	await("helper: pre-commit held") // the final checkpoint
	child.Process.Signal(syscall.SIGTERM)
	await("signal received again")
	w.Write([]byte{1})
	await("helper: committed 10 records")
	io.Copy(io.Discard, stderr)
	if err := child.Wait(); err != nil {
		t.Fatalf("want exit status 0 after the final checkpoint, got %v:\n%s", err, out.String())
	}
}
