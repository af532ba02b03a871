package engine

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Board shows the jobs of one process on one status server (ServeBoard):
// the tasks of a member of a job spread over processes, each a job of its
// own (Config.Task) with Config.Board set. Each task shows its latest
// attempt.
type Board struct {
	mu   sync.Mutex
	jobs map[int]*job // by Task.Index
}

// NewBoard returns an empty board.
func NewBoard() *Board { return &Board{jobs: map[int]*job{}} }

// attach shows j, an attempt of its task, instead of the previous one.
func (b *Board) attach(j *job) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.jobs[j.task()] = j
}

// task returns the index of the job's task, 0 outside group mode.
func (j *job) task() int {
	if j.cfg.Task == nil {
		return 0
	}
	return j.cfg.Task.Index
}

// Remove takes task off the board, once this process no longer runs it.
func (b *Board) Remove(task int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.jobs, task)
}

func (b *Board) job(task int) *job {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.jobs[task]
}

// Ready reports whether task's job runs and completes checkpoints, as its
// own /readyz would, and why not.
func (b *Board) Ready(task int) (bool, string) {
	j := b.job(task)
	if j == nil {
		return false, "not started"
	}
	return j.readiness(time.Now())
}

// Status returns the status of task's job, as its own /api/status would.
func (b *Board) Status(task int) (Status, bool) {
	j := b.job(task)
	if j == nil {
		return Status{}, false
	}
	return j.Status(), true
}

// Gather gathers the metrics of every job on the board, each labelled with
// its task, so that the tasks' series stay apart.
func (b *Board) Gather() ([]*dto.MetricFamily, error) {
	b.mu.Lock()
	var gs prometheus.Gatherers
	for task, j := range b.jobs {
		gs = append(gs, &taskGatherer{j.metrics.reg, strconv.Itoa(task)})
	}
	b.mu.Unlock()
	return gs.Gather()
}

// taskGatherer adds the label task to every metric of g.
type taskGatherer struct {
	g    prometheus.Gatherer
	task string
}

// labelTask is the name of the label of a task's series.
var labelTask = "task"

func (t *taskGatherer) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := t.g.Gather()
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			m.Label = append(m.Label, &dto.LabelPair{Name: &labelTask, Value: &t.task})
			slices.SortFunc(m.Label, func(a, b *dto.LabelPair) int { return cmp.Compare(a.GetName(), b.GetName()) })
		}
	}
	return mfs, err
}

// BoardHandlers answer what only the board's owner knows.
type BoardHandlers struct {
	// Ready is /readyz: whether the process is ready, and why not.
	Ready func() (bool, string)
	// Status is /api/status, encoded as JSON.
	Status func() any
}

// ServeBoard serves b at o.Addr: /metrics of every job on b, labelled with
// their tasks, /healthz, and /readyz and /api/status as h answers them,
// with the authentication and TLS of a job's own status server. It returns
// the address it listens on and a function that stops it.
func ServeBoard(o StatusOptions, b *Board, h BoardHandlers) (addr string, stop func(), err error) {
	s, ln, err := listenStatus(o)
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(b, promhttp.HandlerOpts{ErrorLog: s.srv.ErrorLog}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ready, why := h.Ready()
		body, code := map[string]any{"ready": ready}, http.StatusOK
		if !ready {
			body["reason"], code = why, http.StatusServiceUnavailable
		}
		writeJSON(w, code, body)
	})
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, h.Status())
	})
	s.serve(ln, mux, o)
	return s.addr, s.close, nil
}
