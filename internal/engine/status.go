package engine

import (
	"crypto/tls"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Status is a snapshot of a running job: its graph, per-operator throughput
// and backpressure, and its recent checkpoints. The status server serves it
// as JSON at /api/status.
type Status struct {
	Job          string    `json:"job"`
	State        string    `json:"state"` // "running", "finished" or "failed"
	Error        string    `json:"error,omitempty"`
	Started      time.Time `json:"started"`
	RestoredFrom uint64    `json:"restored_from"` // checkpoint id, 0 for a fresh start
	// Ready is what /readyz reports; NotReady says why not.
	Ready                   bool               `json:"ready"`
	NotReady                string             `json:"not_ready,omitempty"`
	CheckpointInterval      time.Duration      `json:"checkpoint_interval_ns"`
	LastCheckpointCompleted time.Time          `json:"last_checkpoint_completed,omitzero"`
	Operators               []OperatorStatus   `json:"operators"` // in pipeline order
	Edges                   []EdgeStatus       `json:"edges"`
	Checkpoints             []CheckpointStatus `json:"checkpoints"` // newest first, at most 32
}

// OperatorStatus describes one operator over all its subtasks. Rates and
// ratios cover the time since an earlier call to job.Status (about the last
// second when the status page polls); the first call reports zeros.
type OperatorStatus struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"` // "source", "operator" or "sink"
	Parallelism int    `json:"parallelism"`
	Keyed       bool   `json:"keyed"`
	// Task is the first operator of the chain the operator runs in; busy
	// and backpressure are measured per chain.
	Task                string  `json:"task"`
	RecordsIn           uint64  `json:"records_in"`
	RecordsOut          uint64  `json:"records_out"`
	RecordsInPerSecond  float64 `json:"records_in_per_second"`
	RecordsOutPerSecond float64 `json:"records_out_per_second"`
	Busy                float64 `json:"busy"`          // fraction of time, averaged over subtasks
	Backpressured       float64 `json:"backpressured"` // fraction of time, averaged over subtasks
	StateBytes          uint64  `json:"state_bytes"`   // keyed state on disk
}

// EdgeStatus is a connection between two operators.
type EdgeStatus struct {
	From         string `json:"from"`
	To           string `json:"to"`
	Partitioning string `json:"partitioning"` // "forward", "rebalance" or "hash"
	Chained      bool   `json:"chained"`      // a function call within a task
}

// CheckpointStatus is one checkpoint of the history.
type CheckpointStatus struct {
	ID           uint64        `json:"id"`
	Outcome      string        `json:"outcome"` // "completed", "failed" or "aborted"
	Final        bool          `json:"final"`
	Started      time.Time     `json:"started"`
	Ended        time.Time     `json:"ended"`
	Duration     time.Duration `json:"duration_ns"`
	SyncPause    time.Duration `json:"sync_pause_ns"`
	Alignment    time.Duration `json:"alignment_ns"`
	Async        time.Duration `json:"async_ns"`
	BytesWritten int64         `json:"bytes_written"`
	Error        string        `json:"error,omitempty"`
}

// sample is a reading of the per-operator counters, for rates.
type sample struct {
	at  time.Time
	ops map[string]opSample
}

type opSample struct {
	in, out  uint64
	busy, bp int64 // nanoseconds, summed over subtasks
}

// Status returns a snapshot of the job. It is safe to call from any
// goroutine, also after the job ended.
func (j *job) Status() Status {
	now := time.Now()
	m := j.metrics
	st := Status{
		Job: j.g.Name, State: "running", Started: j.started, RestoredFrom: j.RestoredFrom(),
		CheckpointInterval: j.cfg.CheckpointInterval,
	}
	if j.ended() {
		st.State = "finished"
		if j.err != nil {
			st.State, st.Error = "failed", j.err.Error()
		}
	}
	st.Ready, st.NotReady = j.readiness(now)
	if ns := m.lastCompleted.Load(); ns != 0 {
		st.LastCheckpointCompleted = time.Unix(0, ns)
	}

	// Read the counters.
	cur := sample{at: now, ops: map[string]opSample{}}
	taskOf := map[string]string{}
	stateBytes := map[string]uint64{}
	mono := monoNow()
	for _, t := range j.tasks {
		busy, bp := t.stats.busy.Load(), t.stats.bp.read(mono)
		for i, mem := range t.members {
			ms := &t.stats.members[i]
			name := mem.node.Name
			o := cur.ops[name]
			o.in += ms.pubIn.Load()
			o.out += ms.pubOut.Load()
			o.busy += busy
			o.bp += bp
			cur.ops[name] = o
			taskOf[name] = t.head.Name
			if mem.backend != nil {
				if n, ok := m.stateBytes(mem.backend); ok {
					stateBytes[name] += n
				}
			}
		}
	}
	m.mu.Lock()
	base := cur
	for i := len(m.samples) - 1; i >= 0; i-- {
		base = m.samples[i]
		if now.Sub(base.at) >= 900*time.Millisecond {
			break
		}
	}
	if len(m.samples) == 0 || now.Sub(m.samples[len(m.samples)-1].at) >= 200*time.Millisecond {
		m.samples = append(m.samples, cur)
		for len(m.samples) > 1 && now.Sub(m.samples[0].at) > 10*time.Second {
			m.samples = m.samples[1:]
		}
	}
	for i := len(m.history) - 1; i >= 0; i-- {
		st.Checkpoints = append(st.Checkpoints, m.history[i])
	}
	m.mu.Unlock()

	dt := cur.at.Sub(base.at).Seconds()
	rate := func(a, b uint64) float64 {
		if dt <= 0 || a < b {
			return 0
		}
		return float64(a-b) / dt
	}
	for _, n := range j.g.Nodes {
		c, b := cur.ops[n.Name], base.ops[n.Name]
		par := j.parallelism(n)
		os := OperatorStatus{
			Name: n.Name, Kind: n.Kind.String(), Parallelism: par, Keyed: n.Keyed, Task: taskOf[n.Name],
			RecordsIn: c.in, RecordsOut: c.out,
			RecordsInPerSecond: rate(c.in, b.in), RecordsOutPerSecond: rate(c.out, b.out),
			StateBytes: stateBytes[n.Name],
		}
		if dt > 0 {
			window := dt * 1e9 * float64(j.localSubtasks(n))
			os.Busy = min(1, max(0, float64(c.busy-b.busy)/window))
			os.Backpressured = min(1, max(0, float64(c.bp-b.bp)/window))
		}
		st.Operators = append(st.Operators, os)
		for _, e := range n.Outputs {
			es := EdgeStatus{From: n.Name, To: e.To.Name, Partitioning: "forward", Chained: j.chained(e)}
			switch {
			case e.Part == Hashed:
				es.Partitioning = "hash"
			case !j.pointwise(e):
				es.Partitioning = "rebalance"
			}
			st.Edges = append(st.Edges, es)
		}
	}
	return st
}

// ended reports whether the job has ended; j.err is set once it has.
func (j *job) ended() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

// readiness says whether the job runs and completes checkpoints: the last
// one (or the start) is at most ReadyCheckpointFactor intervals old.
func (j *job) readiness(now time.Time) (bool, string) {
	if j.ended() {
		if j.err != nil {
			return false, "job failed: " + j.err.Error()
		}
		return false, "job finished"
	}
	limit := time.Duration(j.cfg.ReadyCheckpointFactor * float64(j.cfg.CheckpointInterval))
	last, what := j.started, "since the job started"
	if ns := j.metrics.lastCompleted.Load(); ns != 0 {
		last, what = time.Unix(0, ns), "since the last one completed"
	}
	if age := now.Sub(last); age > limit {
		why := fmt.Sprintf("no checkpoint completed for %v %s (limit %v: --ready-checkpoint-factor %v × --checkpoint-interval %v)",
			age.Round(time.Millisecond), what, limit, j.cfg.ReadyCheckpointFactor, j.cfg.CheckpointInterval)
		if h := j.metrics.lastFailure(); h != "" {
			why += "; last failure: " + h
		}
		return false, why
	}
	return true, ""
}

// lastFailure returns the error of the newest checkpoint if it did not
// complete.
func (m *jobMetrics) lastFailure() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := len(m.history); n > 0 && m.history[n-1].Outcome != outcomeCompleted {
		return fmt.Sprintf("checkpoint %d %s: %s", m.history[n-1].ID, m.history[n-1].Outcome, m.history[n-1].Error)
	}
	return ""
}

// statusServer serves metrics, health and status over HTTP. Under a
// restart loop it outlives the attempts, so that scrapes and probes keep
// their address; it serves the latest attempt.
type statusServer struct {
	srv      *http.Server
	addr     string
	scheme   string // http or https
	loopback bool   // bound to a loopback address
	done     chan struct{}
	served   atomic.Pointer[servedJob]
}

// servedJob is the job a status server serves, and its /metrics handler.
type servedJob struct {
	j       *job
	metrics http.Handler
}

// MetricsAddr returns the address the job serves /metrics, health and status
// on (useful with a port of 0), or "" if it serves nothing.
func (j *job) MetricsAddr() string {
	if j.http == nil {
		return ""
	}
	return j.http.addr
}

//go:embed status.html
var statusPage []byte

// serve starts the status server at Config.MetricsAddr, if set, or takes
// over the one of the previous attempt. A job that cannot bind it runs on
// without it. A job on a Board shows there too.
func (j *job) serve() {
	if b := j.cfg.Board; b != nil {
		b.attach(j)
	}
	if j.loop != nil && j.loop.http != nil {
		j.http = j.loop.http
		j.http.attach(j)
		return
	}
	if j.cfg.MetricsAddr == "" {
		return
	}
	o := StatusOptions{Addr: j.cfg.MetricsAddr, TLS: j.cfg.MetricsTLS, Auth: j.cfg.MetricsAuth, Logger: j.logger}
	s, ln, err := listenStatus(o)
	if err != nil {
		j.logger.Warn("cannot serve metrics and status; running without them", "addr", o.Addr, "err", err)
		return
	}
	s.attach(j)
	j.http = s
	if j.loop != nil {
		j.loop.http = s // closed by the loop
	}
	s.serve(ln, s.mux(), o)
}

// StatusOptions configures a status server.
type StatusOptions struct {
	Addr   string      // host:port; a port of 0 picks a free one
	TLS    *tls.Config // nil: plain HTTP
	Auth   Auth
	Logger *slog.Logger
}

// listenStatus binds a status server at o.Addr; serve then serves it.
func listenStatus(o StatusOptions) (*statusServer, net.Listener, error) {
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, nil, err
	}
	s := &statusServer{addr: ln.Addr().String(), done: make(chan struct{}), scheme: "http", loopback: isLoopback(ln.Addr())}
	if o.TLS != nil {
		ln, s.scheme = tls.NewListener(ln, o.TLS), "https"
	}
	if !s.loopback && o.Auth.IsZero() {
		o.Logger.Warn("the status server is bound to an address other than loopback without authentication: "+
			"anyone who reaches it can read /metrics, /api/status and the status page; "+
			"set --metrics-bearer-token-file or --metrics-basic-auth-file (and --metrics-tls-cert)", "addr", s.addr)
	}
	s.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn)}
	return s, ln, nil
}

// serve serves mux on ln, behind the authentication guard, until close.
func (s *statusServer) serve(ln net.Listener, mux http.Handler, o StatusOptions) {
	s.srv.Handler = guard(o.Auth, s.loopback, mux)
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			o.Logger.Warn("status server stopped", "addr", s.addr, "err", err)
		}
	}()
	o.Logger.Info("serving metrics and status", "url", s.scheme+"://"+s.addr+"/", "auth", o.Auth)
}

// attach makes s serve j.
func (s *statusServer) attach(j *job) {
	h := promhttp.HandlerFor(j.metrics.reg, promhttp.HandlerOpts{ErrorLog: s.srv.ErrorLog})
	s.served.Store(&servedJob{j: j, metrics: h})
}

func (s *statusServer) mux() *http.ServeMux {
	job := func() *job { return s.served.Load().j }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		s.served.Load().metrics.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		j := job()
		state := "running"
		if j.ended() {
			state = "ended"
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "job": j.g.Name, "state": state})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		j := job()
		ready, why := j.readiness(time.Now())
		body := map[string]any{"ready": ready, "job": j.g.Name}
		code := http.StatusOK
		if !ready {
			body["reason"], code = why, http.StatusServiceUnavailable
		}
		if ns := j.metrics.lastCompleted.Load(); ns != 0 {
			body["last_checkpoint_completed"] = time.Unix(0, ns).UTC()
		}
		writeJSON(w, code, body)
	})
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, job().Status())
	})
	mux.HandleFunc("POST /api/savepoint", serveSavepoint(job))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(statusPage)
	})
	return mux
}

// stopServing closes the status server at the end of the job, unless a
// restart loop owns it.
func (j *job) stopServing() {
	if j.http != nil && j.loop == nil {
		j.http.close()
	}
}

func (s *statusServer) close() {
	s.srv.Close()
	<-s.done
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
