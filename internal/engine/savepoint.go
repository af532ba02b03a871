package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/weirstream/weir/checkpoint"
	"github.com/weirstream/weir/internal/chkstore"
	"github.com/weirstream/weir/internal/objstore"
)

// This file holds savepoints: writing them (of the final checkpoint with
// Config.SavepointDir when the job is stopped, or of the next checkpoint
// when asked over HTTP) and
// starting from one (Config.FromSavepoint), which imports it into the
// checkpoint location and then restores it like any checkpoint.

// ErrSavepoint is wrapped when a savepoint cannot be taken.
var ErrSavepoint = errors.New("weir: savepoint")

// errJobEnded is wrapped when the job ended before the savepoint asked of it.
var errJobEnded = errors.New("the job ended before a savepoint was taken")

// savepointRequest asks the coordinator for a savepoint of the next
// checkpoint it triggers, in dir.
type savepointRequest struct {
	dir   string
	reply chan savepointResult // buffered: the coordinator never waits
}

// savepointResult answers a savepointRequest.
type savepointResult struct {
	Path       string `json:"savepoint"`
	Checkpoint uint64 `json:"checkpoint"`
	err        error
}

// savepoint takes a savepoint in dir (default Config.SavepointDir) of a
// checkpoint triggered now, or as soon as the one in flight ends, and
// returns it once written.
func (j *job) savepoint(ctx context.Context, dir string) (savepointResult, error) {
	if dir == "" {
		dir = j.cfg.SavepointDir
	}
	if dir == "" {
		return savepointResult{}, fmt.Errorf("%w: no directory: give one (weir savepoint --dir DIR|s3://…), or start the job with --savepoint-dir", ErrSavepoint)
	}
	if _, err := objstore.ParseLocation(dir); err != nil {
		return savepointResult{}, fmt.Errorf("%w: %w", ErrSavepoint, err)
	}
	r := savepointRequest{dir: dir, reply: make(chan savepointResult, 1)}
	ended := fmt.Errorf("%w: %w; it resumes from its last checkpoint in %s", ErrSavepoint, errJobEnded, j.store.Location())
	select {
	case j.coord.savepoints <- r:
	case <-j.done:
		return savepointResult{}, ended
	case <-ctx.Done():
		return savepointResult{}, ctx.Err()
	}
	select {
	case res := <-r.reply:
		return res, res.err
	case <-j.done:
		return savepointResult{}, ended
	case <-ctx.Done():
		return savepointResult{}, ctx.Err()
	}
}

// writeSavepoints writes the savepoints of the completed checkpoint in: one
// per location asked for, and, for the final checkpoint of a stop, one in
// Config.SavepointDir. It runs before the sinks are told to commit the
// checkpoint (a final one lets the tasks end, and the job's context with
// them) and before retention, while every file of the checkpoint is in its
// local directory. NB: the coordinator waits for the copies, so the commit
// waits and no checkpoint is triggered meanwhile; records keep flowing.
// Only the failure of the final savepoint is returned: the user asked for
// it with the job's flags and would otherwise not learn that it is missing.
func (c *coordinator) writeSavepoints(ctx context.Context, in *inflight) error {
	byDir := map[string][]savepointRequest{}
	var dirs []string
	for _, r := range in.savepoints {
		if _, ok := byDir[r.dir]; !ok {
			dirs = append(dirs, r.dir)
		}
		byDir[r.dir] = append(byDir[r.dir], r)
	}
	finalDir := c.job.cfg.SavepointDir
	if !in.final || !c.stopping {
		finalDir = "" // a job whose inputs ended has nothing left to resume
	}
	if finalDir != "" && !slices.Contains(dirs, finalDir) {
		dirs = append(dirs, finalDir)
	}
	var err error
	for _, dir := range dirs {
		path, werr := c.job.store.WriteSavepoint(ctx, in.manifest, dir)
		if werr != nil {
			c.job.logger.Error("savepoint failed", "checkpoint", in.id, "savepoint_dir", dir, "err", werr)
		} else {
			c.job.logger.Info("savepoint written", "savepoint", path, "checkpoint", in.id, "final", in.final)
		}
		for _, r := range byDir[dir] {
			r.reply <- savepointResult{Path: path, Checkpoint: in.id, err: werr}
		}
		if werr != nil && dir == finalDir {
			err = fmt.Errorf("%w: final checkpoint %d completed, but its savepoint in --savepoint-dir %s failed (the job resumes from --checkpoint-dir %s): %w",
				ErrSavepoint, in.id, dir, c.job.store.Location(), werr)
		}
	}
	return err
}

// lineage returns what the checkpoints of this run carry as
// chkstore.Manifest.Savepoint.
func (j *job) lineage() string {
	if j.restored == nil {
		return ""
	}
	return j.restored.Savepoint
}

// fromSavepoint imports Config.FromSavepoint into the checkpoint location
// when that holds no complete checkpoint, so that resume restores it. A
// location whose newest checkpoint descends from the same savepoint (a
// restart with the same flags) resumes from that checkpoint instead; one
// holding checkpoints of another run is refused.
func (j *job) fromSavepoint(ctx context.Context) error {
	if j.cfg.FromSavepoint == "" {
		return nil
	}
	latest, err := j.store.Latest()
	if err != nil {
		return err
	}
	other := func(detail string) error {
		return fmt.Errorf("%w: --checkpoint-dir %s already holds checkpoint %d of another run%s; to start from --from-savepoint %s give a new or empty --checkpoint-dir, or drop --from-savepoint to resume from the checkpoints there",
			ErrIncompatibleCheckpoint, j.store.Location(), latest.ID, detail, j.cfg.FromSavepoint)
	}
	if latest != nil && latest.Savepoint == "" {
		return other("")
	}
	sp, err := chkstore.ReadSavepoint(ctx, j.cfg.FromSavepoint)
	if errors.Is(err, chkstore.ErrNoSavepoint) {
		return fmt.Errorf("%w: --from-savepoint: %w%s", ErrUnrecoverable, err, savepointsBelow(ctx, j.cfg.FromSavepoint))
	}
	if err != nil {
		return fmt.Errorf("%w: --from-savepoint: %w", ErrUnrecoverable, err)
	}
	if latest != nil {
		if latest.Savepoint != sp.Lineage() {
			return other(" (started from savepoint " + latest.Savepoint + ")")
		}
		j.logger.Info("resuming from the newest checkpoint, which descends from the savepoint", "checkpoint", latest.ID, "savepoint", sp.Path)
		return nil
	}
	m, err := j.store.ImportSavepoint(ctx, sp)
	if err != nil {
		return err
	}
	j.logger.Info("starting from savepoint", "savepoint", sp.Path, "checkpoint", m.ID, "location", j.store.Location())
	return nil
}

// dropNonRestored returns m without the state of operators the pipeline no
// longer has, if Config.AllowNonRestoredState allows dropping it, and
// otherwise refuses m naming them: operator names are what ties state to
// the pipeline.
func (j *job) dropNonRestored(m *chkstore.Manifest) (*chkstore.Manifest, error) {
	var gone []string
	for _, st := range m.Operators {
		if j.g.Node(st.Operator) == nil && !slices.Contains(gone, st.Operator) {
			gone = append(gone, st.Operator)
		}
	}
	if len(gone) == 0 {
		return m, nil
	}
	names := `"` + strings.Join(gone, `", "`) + `"`
	if !j.cfg.AllowNonRestoredState {
		return nil, fmt.Errorf("%w: checkpoint %d in %s has state of operators %s, which the pipeline no longer has; restore them under the same names, or drop their state with --allow-non-restored-state",
			ErrIncompatibleCheckpoint, m.ID, j.store.Location(), names)
	}
	j.logger.Warn("dropping the state of operators the pipeline no longer has (--allow-non-restored-state)", "checkpoint", m.ID, "operators", gone)
	kept := *m
	kept.Operators = slices.DeleteFunc(slices.Clone(m.Operators), func(st chkstore.SubtaskState) bool {
		return slices.Contains(gone, st.Operator)
	})
	return &kept, nil
}

// serveSavepoint is POST /api/savepoint: a savepoint of the next checkpoint,
// in the "dir" of an optional JSON body or Config.SavepointDir. It answers
// {"savepoint": PATH, "checkpoint": ID} once written, or {"error": …}.
func serveSavepoint(j func() *job) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Dir string `json:"dir"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: want JSON {\"dir\": \"DIR|s3://…\"} or nothing: " + err.Error()})
			return
		}
		res, err := j().savepoint(r.Context(), req.Dir)
		if err != nil {
			code := http.StatusInternalServerError
			switch {
			case errors.Is(err, errJobEnded):
				code = http.StatusServiceUnavailable
			case errors.Is(err, ErrSavepoint) && res.Checkpoint == 0:
				code = http.StatusBadRequest // no directory, or a bad one
			}
			writeJSON(w, code, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}

// savepointsBelow suggests the savepoints under path, for an error.
func savepointsBelow(ctx context.Context, path string) string {
	infos, err := checkpoint.List(ctx, path)
	var names []string
	for _, in := range infos {
		if err == nil && in.Kind == checkpoint.KindSavepoint {
			names = append(names, chkstore.JoinLocation(path, in.Dir))
		}
	}
	if len(names) == 0 {
		return " (give the savepoint-… directory that 'savepoint written' logged)"
	}
	return "; it holds the savepoints " + strings.Join(names, ", ") + ": give one of them"
}
