package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/checkpoint"
	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/internal/chkstore"
	"github.com/weirstream/weir/internal/s3dev"
)

// kafkaSourceBytes encodes a version-2 Kafka source snapshot as
// connectors/kafka's sourceEncodeState does: orders/0 at 120, orders/1 at 7, with
// one version-1 topic.
func kafkaSourceBytes() []byte {
	b := []byte{2, 0}
	b = binary.AppendUvarint(b, 2)
	for _, e := range []struct {
		p, off int64
	}{{0, 120}, {1, 7}} {
		b = binary.AppendUvarint(b, uint64(len("orders")))
		b = append(b, "orders"...)
		b = binary.AppendVarint(b, e.p)
		b = binary.AppendVarint(b, e.off)
	}
	b = binary.AppendUvarint(b, 1)
	b = binary.AppendUvarint(b, uint64(len("old")))
	b = append(b, "old"...)
	return binary.AppendVarint(b, 3)
}

// fileSourceBytes encodes a version-2 file source snapshot as
// connectors/file's Snapshot does, of subtask 1 of 2.
func fileSourceBytes() []byte {
	b := []byte{2}
	for _, v := range []uint64{2, 1, 4, 3, 99, 2} { // parallelism, subtask, files, current, offset, own files
		b = binary.AppendUvarint(b, v)
	}
	for _, p := range []string{"in/b.txt", "in/d.txt"} {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
		b = binary.AppendUvarint(b, 1000) // size
		b = binary.AppendUvarint(b, 1700) // modification time
		b = binary.AppendUvarint(b, 12)   // line ends
	}
	return b
}

func TestDecodeState(t *testing.T) {
	k, ok := decodeState(kafkaSourceBytes(), 0, 1).(*kafkaSourceState)
	if !ok || len(k.Offsets) != 2 || k.Offsets[0] != (kafka.PartitionOffset{Topic: "orders", Partition: 0, Next: 120}) || k.Offsets[1].Next != 7 {
		t.Fatalf("Kafka source state decoded as %+v", decodeState(kafkaSourceBytes(), 0, 1))
	}
	// Version 1 (a/0 at 2) and a version-2 source that stops at the end (a/0
	// at 2, ending at 10).
	for b, want := range map[string]string{
		"\x01\x01\x01a\x00\x04":             "kafka source offsets (next to read): a/0@2",
		"\x02\x01\x01\x01a\x00\x04\x14\x00": "kafka source offsets (next to read): a/0@2 (end 10)",
	} {
		if got := stateText([]byte(b), 0, 1); got != want {
			t.Errorf("Kafka source state %q shown as %q, want %q", b, got, want)
		}
	}
	// Subtask 1 of 2 reads files 1 and 3 of 4, and is at byte 99 of file 3.
	if got := stateText(fileSourceBytes(), 1, 2); got != "file source (4 files in the job): in/b.txt (read), in/d.txt at byte 99" {
		t.Fatalf("file source state shown as %q", got)
	}
	// The file source snapshot of another subtask is not taken for one.
	if _, ok := decodeState(fileSourceBytes(), 0, 2).(*fileSourceState); ok {
		t.Fatal("a file source snapshot of subtask 1 decoded for subtask 0")
	}
	// connectors/file's encodeState (sink.go): subtask 1, one pending file.
	sink := []byte{1, 1, 1, 5, 200, 1}
	sink = append(append(binary.AppendUvarint(sink, 9), "pending-5"...), byte(len("part-001-5")))
	sink = append(sink, "part-001-5"...)
	if got := stateText(sink, 1, 2); got != "file sink pending files: pending-5 -> part-001-5 (200 bytes, checkpoint 5)" {
		t.Fatalf("file sink state shown as %q", got)
	}
	if v := decodeState(append(kafkaSourceBytes(), 0), 0, 1); v != nil {
		t.Fatalf("bytes with a trailing byte decoded as %+v", v)
	}
	if got := stateText([]byte{9, 9, 9}, 0, 1); !strings.Contains(got, "unknown format") || !strings.Contains(got, "090909") {
		t.Fatalf("unknown state shown as %q", got)
	}
}

// writeJob writes checkpoints 1 and 2 of a job with a Kafka source, a keyed
// counter, a file source and a sink with pending transactions.
func writeJob(t *testing.T, s *chkstore.Store) {
	t.Helper()
	for id := uint64(1); id <= 2; id++ {
		dir, err := s.Begin(id)
		if err != nil {
			t.Fatal(err)
		}
		keyed := filepath.Join(dir, filepath.FromSlash(chkstore.KeyedDir("count", 1)))
		if err := os.MkdirAll(keyed, 0o755); err != nil {
			t.Fatal(err)
		}
		// Checkpoint 2 shares the sstable of checkpoint 1 (Pebble links it)
		// and adds one.
		sst := filepath.Join(keyed, fmt.Sprintf("%06d.sst", 3+id))
		if err := os.WriteFile(sst, bytes.Repeat([]byte{byte(id)}, 2048/int(id)), 0o644); err != nil {
			t.Fatal(err)
		}
		if id == 2 {
			from := filepath.Join(s.Dir(1), filepath.FromSlash(chkstore.KeyedDir("count", 1)), "000004.sst")
			if err := os.Link(from, filepath.Join(keyed, "000004.sst")); err != nil {
				t.Fatal(err)
			}
		}
		created := time.Date(2026, 12, 3, 10, 0, int(id), 0, time.UTC)
		m := &chkstore.Manifest{Job: "orders", ID: id, MaxParallelism: 128, Created: created}
		wm := int64(1764756000000)
		for _, st := range []struct {
			op        string
			sub, par  int
			data      []byte
			keyed     bool
			eventTime *int64
		}{
			{"kafka-in", 0, 1, kafkaSourceBytes(), false, &wm},
			{"files-in", 1, 2, fileSourceBytes(), false, nil},
			{"count", 1, 2, nil, true, nil},
			{"kafka-out", 0, 1, []byte(`{"version":1,"checkpoint":2,"pending":[{"checkpoint":2,"slot":0,"transactional_id":"orders-kafka-out-0-0","producer_id":7,"epoch":1}]}`), false, nil},
		} {
			ss := chkstore.SubtaskState{Operator: st.op, Subtask: st.sub, Parallelism: st.par, EventTime: st.eventTime}
			if st.data != nil {
				if ss.StateFile, err = s.WriteOperatorState(id, st.op, st.sub, st.data); err != nil {
					t.Fatal(err)
				}
			}
			if st.keyed {
				ss.KeyedDir = chkstore.KeyedDir(st.op, st.sub)
			}
			m.Operators = append(m.Operators, ss)
		}
		if err := s.Complete(m); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkCommitted(id, "kafka-out", 0); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheckpointsCommand(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, remote := range []bool{false, true} {
		name := "local"
		if remote {
			name = "s3"
		}
		t.Run(name, func(t *testing.T) {
			location := filepath.Join(t.TempDir(), "checkpoints")
			local := ""
			if remote {
				s3dev.StartTest(t, "").SetEnv(t)
				location, local = "s3://weir-cli/orders", filepath.Join(t.TempDir(), "local")
			}
			s, err := chkstore.OpenLocation(context.Background(), location, local, quiet)
			if err != nil {
				t.Fatal(err)
			}
			writeJob(t, s)
			s.Close()

			r := runWeir(t, "checkpoints", "list", location)
			if r.code != 0 || !strings.Contains(r.stdout, "chk-0000000002") || !strings.Contains(r.stdout, "INCREMENTAL") {
				t.Fatalf("list: %+v", r)
			}
			t.Logf("weir checkpoints list %s\n%s", location, r.stdout)
			r = runWeir(t, "checkpoints", "list", location, "--json")
			var infos []checkpoint.Info
			if err := json.Unmarshal([]byte(r.stdout), &infos); err != nil || len(infos) != 2 || infos[1].ID != 2 {
				t.Fatalf("list --json: %v, %+v", err, r)
			}

			r = runWeir(t, "checkpoints", "inspect", location)
			for _, want := range []string{
				"checkpoint 2 of job \"orders\"",
				"key groups [64,128)",
				"kafka source offsets (next to read): orders/0@120, orders/1@7",
				"file source (4 files in the job): in/b.txt (read), in/d.txt at byte 99",
				"orders-kafka-out-0-0",
				"commit recorded",
				"event time 1764756000000 (2025-12-03T10:00:00Z)",
			} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("inspect does not show %q:\n%s", want, r.stdout)
				}
			}
			t.Logf("weir checkpoints inspect %s\n%s", location, r.stdout)
			r = runWeir(t, "checkpoints", "inspect", location, "1", "--json")
			var d struct {
				checkpoint.Details
				Decoded map[string]json.RawMessage `json:"decoded_state"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || d.ID != 1 || !strings.Contains(string(d.Decoded["kafka-in/0"]), `"next_offset": 120`) {
				t.Fatalf("inspect 1 --json: %v\n%s", err, r.stdout)
			}

			r = runWeir(t, "checkpoints", "verify", "--all", location)
			if r.code != 0 || strings.Count(r.stdout, ": OK") != 2 {
				t.Fatalf("verify --all: %+v", r)
			}
			t.Logf("weir checkpoints verify --all %s\n%s", location, r.stdout)

			for _, tc := range []struct {
				args []string
				code int
				want string
			}{
				{[]string{"checkpoints", "inspect", location, "9"}, 1, "no checkpoint 9"},
				{[]string{"checkpoints", "verify", location, "9"}, 1, "no checkpoint 9"},
				{[]string{"checkpoints", "list"}, 2, "want a LOCATION"},
				{[]string{"checkpoints", "list", "gs://b/x"}, 2, "scheme"},
				{[]string{"checkpoints", "frob", location}, 2, "unknown subcommand"},
				{[]string{"checkpoints", "verify", location, "1", "--all"}, 2, "too many"},
				{[]string{"checkpoints", "list", location, "extra"}, 2, "too many"},
				{[]string{"checkpoints", "list", filepath.Join(t.TempDir(), "none")}, 1, "no directory"},
			} {
				r := runWeir(t, tc.args...)
				if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
					t.Errorf("weir %s: exit %d, stderr %q; want exit %d mentioning %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.code, tc.want)
				}
			}
		})
	}
}

// TestCheckpointsVerifyDamage checks that verify fails, naming the file,
// when a file of a checkpoint is damaged.
func TestCheckpointsVerifyDamage(t *testing.T) {
	location := filepath.Join(t.TempDir(), "checkpoints")
	s, err := chkstore.Open(location, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	writeJob(t, s)
	s.Close()
	victim := filepath.Join(location, "chk-0000000002", "state", "count", "1", "000005.sst")
	data, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	data[100] ^= 1
	if err := os.WriteFile(victim, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runWeir(t, "checkpoints", "verify", location)
	if r.code != 1 || !strings.Contains(r.stdout, "state/count/1/000005.sst") || !strings.Contains(r.stderr, "chk-0000000002/state/count/1/000005.sst") {
		t.Fatalf("verify of a damaged checkpoint: %+v", r)
	}
	t.Logf("weir checkpoints verify %s\n%s%s", location, r.stdout, r.stderr)
	if r := runWeir(t, "checkpoints", "verify", location, "1"); r.code != 0 {
		t.Fatalf("verify of the intact checkpoint 1: %+v", r)
	}
}
