package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/connectors/file"
	"github.com/weirstream/weir/connectors/generator"
	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/internal/twophase"
	"github.com/weirstream/weir/runtime"
)

// runBounded runs a job of 100 records into the sink sink to its end and
// returns its checkpoint directory. The interval is (far) beyond the run,
// so the final checkpoint's state lists the commits it promised.
func runBounded(t *testing.T, sink runtime.SinkFactory[string]) string {
	t.Helper()
	src, err := generator.NewSource(generator.SourceConfig[string]{
		Count:  100,
		Record: func(seq uint64) string { return fmt.Sprintf("record %d\n", seq) },
	})
	if err != nil {
		t.Fatal(err)
	}
	p := runtime.NewPipeline("inspect-sinks")
	runtime.To(runtime.From(p, "gen", src), "out", sink)
	dir := filepath.Join(t.TempDir(), "checkpoints")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	err = runtime.Run(ctx, p, runtime.Config{
		CheckpointDir: dir, CheckpointInterval: time.Minute, Parallelism: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// inspectOut returns the text of weir checkpoints inspect of the latest
// checkpoint in dir, and the decoded state of out/0 from its --json.
func inspectOut(t *testing.T, dir string) (string, twoPhaseSinkState) {
	t.Helper()
	text := runWeir(t, "checkpoints", "inspect", dir)
	if text.code != 0 {
		t.Fatalf("inspect: %+v", text)
	}
	r := runWeir(t, "checkpoints", "inspect", dir, "--json")
	var d struct {
		Decoded map[string]json.RawMessage `json:"decoded_state"`
	}
	var st twoPhaseSinkState
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, r.stdout)
	}
	if err := json.Unmarshal(d.Decoded["out/0"], &st); err != nil || st.Format != "two-phase sink" || len(st.Pending) == 0 {
		t.Fatalf("inspect --json decodes the sink's state as %s (%v); want its pending commits:\n%s", d.Decoded["out/0"], err, r.stdout)
	}
	return text.stdout, st
}

// TestInspectFileSinkPendingFiles checks that inspect shows what each
// pending commit of the file sink is: the staged and final file names.
func TestInspectFileSinkPendingFiles(t *testing.T) {
	out := t.TempDir()
	sink, err := file.NewSink(file.SinkConfig[string]{Dir: out, Prefix: "part",
		Format: func(dst []byte, rec string) []byte { return append(dst, rec...) }})
	if err != nil {
		t.Fatal(err)
	}
	text, st := inspectOut(t, runBounded(t, sink))
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var finals []string
	for _, e := range entries {
		finals = append(finals, e.Name())
	}
	for i, p := range st.Pending {
		var f struct {
			Staged string `json:"staged"`
			Final  string `json:"final"`
			Bytes  int64  `json:"bytes"`
		}
		if err := json.Unmarshal(p.Commit, &f); err != nil || f.Staged == "" || !slices.Contains(finals, f.Final) || f.Bytes <= 0 {
			t.Errorf("pending commit %d in --json: %s (%v); want the staged name, the final name of a file the job committed (%q) and a size", i, p.Commit, err, finals)
		}
		if want := fmt.Sprintf("checkpoint %d: staged=%q final=%q bytes=%d", p.Checkpoint, f.Staged, f.Final, f.Bytes); !strings.Contains(text, want) {
			t.Errorf("inspect does not show %q:\n%s", want, text)
		}
	}
	t.Logf("weir checkpoints inspect\n%s", text)
}

// TestInspectKafkaSinkPendingTransactions checks that inspect shows what
// each pending commit of the Kafka sink is: the transactional id, producer
// id and epoch.
func TestInspectKafkaSinkPendingTransactions(t *testing.T) {
	b := startBroker(t)
	if err := b.CreateTopic("out", 1); err != nil {
		t.Fatal(err)
	}
	sink, err := kafka.NewSink(kafka.SinkConfig[string]{Brokers: []string{b.Addr()}, Topic: "out",
		TransactionalIDPrefix: "inspect-test",
		EncodeValue:           func(dst []byte, rec string) ([]byte, error) { return append(dst, rec...), nil }})
	if err != nil {
		t.Fatal(err)
	}
	text, st := inspectOut(t, runBounded(t, sink))
	for i, p := range st.Pending {
		var txn struct {
			TransactionalID string `json:"transactional_id"`
			ProducerID      *int64 `json:"producer_id"`
			Epoch           *int16 `json:"epoch"`
		}
		if err := json.Unmarshal(p.Commit, &txn); err != nil || !strings.HasPrefix(txn.TransactionalID, "inspect-test") || txn.ProducerID == nil || txn.Epoch == nil {
			t.Fatalf("pending commit %d in --json: %s (%v); want its transactional id, producer id and epoch", i, p.Commit, err)
		}
		if want := fmt.Sprintf("checkpoint %d: transactional_id=%q producer_id=%d epoch=%d", p.Checkpoint, txn.TransactionalID, *txn.ProducerID, *txn.Epoch); !strings.Contains(text, want) {
			t.Errorf("inspect does not show %q:\n%s", want, text)
		}
	}
	t.Logf("weir checkpoints inspect\n%s", text)
}

// TestStateTextShowsInProgressFile checks that a rolling file sink's writer
// state, its in-progress part file, is shown by name, and another writer
// state by its size.
func TestStateTextShowsInProgressFile(t *testing.T) {
	rolling := binary.AppendUvarint(nil, 4096)
	rolling = binary.AppendVarint(rolling, time.Date(2026, 12, 4, 23, 50, 0, 0, time.UTC).UnixMilli())
	rolling = append(rolling, "ABC123"...)
	for _, tc := range []struct {
		writerState []byte
		want        string
	}{
		{rolling, "in progress: inprogress-ABC123 (4096 bytes, started 2026-12-04T23:50:00Z)"},
		{[]byte{0xff, 0xff}, "writer state of 2 bytes"},
	} {
		b := twophase.Append(nil, &twophase.State{Checkpoint: 7, WriterState: tc.writerState})
		if got := stateText(b, 0, 1); !strings.Contains(got, tc.want) {
			t.Errorf("writer state %q shown as %q; want it to contain %q", tc.writerState, got, tc.want)
		}
	}
}
