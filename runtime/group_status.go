package runtime

import (
	"fmt"
	"time"

	"github.com/weirstream/weir/internal/engine"
)

// A member serves one status server for all its tasks (Config.MetricsAddr):
// each task is a job of its own without one, shown on the member's board.
//
//	/healthz      the process answers
//	/readyz       joined, and every task it owns started and completes
//	              checkpoints (each as a job's own /readyz); a member
//	              without tasks is ready
//	/api/status   MemberStatus
//	/metrics      every task's metrics, each series labelled with its task

// MemberStatus is what a member of a job spread over processes serves at
// /api/status.
type MemberStatus struct {
	Job        string `json:"job"`
	Group      string `json:"group"`
	MemberID   string `json:"member_id"` // "" until joined
	InstanceID string `json:"instance_id,omitempty"`
	Tasks      int    `json:"tasks"` // of the job, 0 until joined
	Ready      bool   `json:"ready"`
	NotReady   string `json:"not_ready,omitempty"`
	// Owned lists the tasks this member runs, by index.
	Owned []TaskStatus `json:"owned"`
}

// TaskStatus is a task a member runs.
type TaskStatus struct {
	Task int `json:"task"`
	// Epoch is the task's checkpoint epoch: it checkpoints into
	// CheckpointDir/task-<Task>/epoch-<Epoch>; 0 while it is claimed.
	Epoch                   uint64    `json:"epoch"`
	Started                 bool      `json:"started"`
	LastCheckpoint          uint64    `json:"last_checkpoint,omitempty"`
	LastCheckpointCompleted time.Time `json:"last_checkpoint_completed,omitzero"`
	// Job is the task's job, as its own /api/status would show it.
	Job *engine.Status `json:"job,omitempty"`
}

// serveStatus starts the member's status server at Config.MetricsAddr, if
// set, and returns its address and a function that stops it. A member that
// cannot bind it runs on without it, as a job does.
func (m *member) serveStatus() (addr string, stop func()) {
	stop = func() {}
	if m.cfg.MetricsAddr == "" {
		return "", stop
	}
	tlsCfg, err := m.cfg.metricsTLS()
	if err == nil {
		addr, stop, err = engine.ServeBoard(engine.StatusOptions{
			Addr: m.cfg.MetricsAddr, TLS: tlsCfg, Auth: engine.Auth(m.cfg.MetricsAuth), Logger: m.logger,
		}, m.board, engine.BoardHandlers{
			Ready:  func() (bool, string) { st := m.status(false); return st.Ready, st.NotReady },
			Status: func() any { return m.status(true) },
		})
	}
	if err != nil {
		m.logger.Warn("cannot serve metrics and status; running without them", "addr", m.cfg.MetricsAddr, "err", err)
		return "", func() {}
	}
	return addr, stop
}

// status returns the member's status, with each task's job if jobs is set.
func (m *member) status(jobs bool) MemberStatus {
	st := MemberStatus{Job: m.p.Name(), Group: m.cfg.Group, InstanceID: m.cfg.InstanceID, Ready: true}
	select {
	case <-m.joined:
		st.MemberID, st.Tasks = m.ms.MemberID(), m.ms.Tasks()
	default:
		st.Ready, st.NotReady = false, "joining group "+m.cfg.Group
	}
	m.mu.Lock()
	tasks := make([]*memberTask, 0, len(m.tasks))
	for _, i := range m.sortedTasks() {
		tasks = append(tasks, m.tasks[i])
	}
	m.mu.Unlock()
	for _, t := range tasks {
		ts := TaskStatus{Task: t.index, Epoch: t.epoch.Load(), Started: t.started.Load(), LastCheckpoint: t.lastCheckpoint.Load()}
		if ns := t.lastCompleted.Load(); ns != 0 {
			ts.LastCheckpointCompleted = time.Unix(0, ns).UTC()
		}
		if jobs {
			if js, ok := m.board.Status(t.index); ok {
				ts.Job = &js
			}
		}
		st.Owned = append(st.Owned, ts)
		if !st.Ready {
			continue
		}
		if !ts.Started {
			st.Ready, st.NotReady = false, fmt.Sprintf("task %d is starting", t.index)
		} else if ready, why := m.board.Ready(t.index); !ready {
			st.Ready, st.NotReady = false, fmt.Sprintf("task %d: %s", t.index, why)
		}
	}
	return st
}
