package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/chkstore"
	"github.com/weirstream/weir/internal/tasklineage"
)

// writeTasks writes the checkpoints of a job spread over tasks tasks under
// location, as its members would: each task's epoch 1 with a checkpoint of
// its subtask, the last through a local directory.
func writeTasks(t *testing.T, location string, tasks int) {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := tasklineage.Open(ctx, location, quiet)
	if err != nil {
		t.Fatal(err)
	}
	for task := range tasks {
		local := ""
		if task == tasks-1 {
			local = t.TempDir()
		}
		e, err := l.Claim(ctx, task, "member", local)
		if err != nil {
			t.Fatal(err)
		}
		s, err := chkstore.OpenLocation(ctx, e.Location, local, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Begin(4); err != nil {
			t.Fatal(err)
		}
		rel, err := s.WriteOperatorState(4, "src", task, fmt.Appendf(nil, "offset-%d", task))
		if err != nil {
			t.Fatal(err)
		}
		m := &chkstore.Manifest{Job: "orders", ID: 4, MaxParallelism: 128, Operators: []chkstore.SubtaskState{
			{Operator: "src", Subtask: task, Parallelism: tasks, StateFile: rel},
		}}
		if err := s.Complete(m); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}

// TestCheckpointsSavepointOfGroup writes a group savepoint of a job's task
// checkpoints and reads it back as a group member does; a location that is
// not a group's, and a missing --dir, are refused, saying what to give.
func TestCheckpointsSavepointOfGroup(t *testing.T) {
	location := filepath.Join(t.TempDir(), "checkpoints")
	writeTasks(t, location, 3)
	dir := filepath.Join(t.TempDir(), "savepoints")
	r := runWeir(t, "checkpoints", "savepoint", location, "--dir", dir)
	path := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(path, filepath.Join(dir, "group-savepoint-")) {
		t.Fatalf("savepoint: %+v", r)
	}
	g, err := tasklineage.ReadGroupSavepoint(context.Background(), path)
	if err != nil || g.Tasks != 3 || g.Job != "orders" {
		t.Fatalf("read back: %+v, %v; want 3 tasks of job orders", g, err)
	}
	r = runWeir(t, "checkpoints", "list", g.TaskPath(2))
	if r.code != 0 || !strings.Contains(r.stdout, "savepoint") {
		t.Fatalf("list of task 2's savepoint: %+v", r)
	}

	plain := filepath.Join(t.TempDir(), "plain")
	s, err := chkstore.Open(plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"checkpoints", "savepoint", location}, "savepoint needs --dir"},
		{[]string{"checkpoints", "savepoint", plain, "--dir", dir}, "give the --checkpoint-dir of a job spread over processes (--group)"},
		{[]string{"checkpoints", "list", location, "--dir", dir}, "--dir is a flag of savepoint"},
	} {
		r := runWeir(t, tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("weir %s: %+v, want a failure naming %q", strings.Join(tc.args, " "), r, tc.want)
		}
	}
}
