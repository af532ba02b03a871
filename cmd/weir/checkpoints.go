package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weirstream/weir/checkpoint"
	"github.com/weirstream/weir/internal/objstore"
	"github.com/weirstream/weir/internal/tasklineage"
)

const checkpointsSynopsis = `checkpoints list    LOCATION [--json]
       weir checkpoints inspect LOCATION [ID|DIR|latest] [--json]
       weir checkpoints verify  LOCATION [ID|DIR|latest | --all] [--json]
       weir checkpoints savepoint LOCATION --dir DIR|s3://BUCKET/PREFIX [--json]

Reads the checkpoints and savepoints at LOCATION, a job's --checkpoint-dir: a
directory, or s3://BUCKET/PREFIX with the endpoint and credentials of the AWS
environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...). It takes no lock and
changes nothing, so it can run beside the job.

  list     completed checkpoints and savepoints: id, time, size, bytes added
  inspect  one of them (default the latest): operators, parallelism, key-group
           ranges, state sizes, source offsets, pending sink transactions,
           commit records and watermarks
  verify   read every file of one (default the latest) or --all and check its
           size and CRC-32C; exit status 1 names each file that fails
  savepoint  of a job spread over processes (--group), whose LOCATION holds
           task-<i>/: copy each task's newest complete checkpoint into a new
           group-savepoint-<time> directory of --dir and print its path.
           Stop every member first (SIGTERM: final checkpoints), then start
           the members with --from-savepoint PATH, the same --group (its
           repartition topics hold what was in flight between tasks; a
           job without a KeyBy may change it) and the same partition
           count`

func runCheckpoints(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fs := newFlagSet(e, "checkpoints", checkpointsSynopsis)
		if err := fs.Parse(args); err != nil {
			return errFlagsReported
		}
		return usagef("want a subcommand: list, inspect, verify or savepoint")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet(e, "checkpoints "+sub, checkpointsSynopsis)
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	all := fs.Bool("all", false, "verify: every checkpoint and savepoint")
	dir := fs.String("dir", "", "savepoint: directory or s3://BUCKET/PREFIX that receives the group savepoint")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("want a LOCATION: a checkpoint directory or s3://BUCKET/PREFIX")
	}
	location, rest := pos[0], pos[1:]
	if _, err := objstore.ParseLocation(location); err != nil {
		return usagef("%v", err)
	}
	out := &printer{w: e.stdout, json: *asJSON}
	switch {
	case *dir != "" && sub != "savepoint":
		return usagef("--dir is a flag of savepoint")
	case sub == "list" && len(rest) == 0 && !*all:
		infos, err := checkpoint.List(ctx, location)
		if err != nil {
			return err
		}
		return out.list(location, infos)
	case sub == "inspect" && len(rest) <= 1 && !*all:
		d, err := checkpoint.Inspect(ctx, location, first(rest))
		if err != nil {
			return err
		}
		return out.inspect(d)
	case sub == "verify" && len(rest) <= 1 && !(*all && len(rest) == 1):
		return verifyCheckpoints(ctx, e, out, location, first(rest), *all)
	case sub == "savepoint" && len(rest) == 0 && !*all:
		return groupSavepoint(ctx, out, location, *dir)
	case sub != "list" && sub != "inspect" && sub != "verify" && sub != "savepoint":
		return usagef("unknown subcommand %q: want list, inspect, verify or savepoint", sub)
	case *all && sub != "verify":
		return usagef("--all is a flag of verify")
	}
	return usagef("too many arguments: %s", strings.Join(pos, " "))
}

// parseInterspersed parses flags placed anywhere among the positional
// arguments (weir checkpoints list DIR --json) and returns the latter.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errFlagsReported
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// groupSavepoint is 'weir checkpoints savepoint': a group savepoint of the
// checkpoint location of a job spread over processes.
func groupSavepoint(ctx context.Context, out *printer, location, dir string) error {
	if dir == "" {
		return usagef("savepoint needs --dir DIR|s3://BUCKET/PREFIX: where the group savepoint goes")
	}
	if _, err := objstore.ParseLocation(dir); err != nil {
		return usagef("--dir: %v", err)
	}
	// NB: opened read-only first, so that a mistyped location is reported
	// rather than created.
	if _, err := objstore.Open(ctx, location, objstore.Options{ReadOnly: true, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		return err
	}
	lineage, err := tasklineage.Open(ctx, location, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	g, err := lineage.WriteSavepoint(ctx, dir)
	if err != nil {
		return err
	}
	if out.json {
		return out.emit(struct {
			Path string `json:"savepoint"`
			*tasklineage.GroupSavepoint
		}{g.Path, g})
	}
	_, err = fmt.Fprintln(out.w, g.Path)
	return err
}

func verifyCheckpoints(ctx context.Context, e *env, out *printer, location, which string, all bool) error {
	var results []*checkpoint.Verification
	if all {
		var err error
		if results, err = checkpoint.VerifyAll(ctx, location); err != nil {
			return err
		}
	} else {
		res, err := checkpoint.Verify(ctx, location, which)
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	if err := out.verify(results); err != nil {
		return err
	}
	for _, r := range results {
		if !r.OK() {
			fmt.Fprintf(e.stderr, "weir checkpoints verify: %s %d in %s FAILED: %d bad file(s), first %s\n", r.Kind, r.ID, location, len(r.Bad), r.Bad[0].Object)
			return &exitError{exitFailure}
		}
	}
	return nil
}

// printer writes the results as text or JSON.
type printer struct {
	w    io.Writer
	json bool
}

func (p *printer) emit(v any) error {
	enc := json.NewEncoder(p.w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (p *printer) list(location string, infos []checkpoint.Info) error {
	if p.json {
		if infos == nil {
			infos = []checkpoint.Info{}
		}
		return p.emit(infos)
	}
	if len(infos) == 0 {
		_, err := fmt.Fprintf(p.w, "no complete checkpoint or savepoint in %s\n", location)
		return err
	}
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tID\tCREATED\tFILES\tSIZE\tINCREMENTAL\tDIR")
	for _, in := range infos {
		kind := in.Kind
		if in.Final {
			kind += " (final)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\n", kind, in.ID, in.Created.Format(time.RFC3339), in.Files, bytesText(in.Size), bytesText(in.Incremental), in.Dir)
	}
	return tw.Flush()
}

// inspected is the JSON form of inspect: the details, with each operator
// state decoded when its format is known.
type inspected struct {
	*checkpoint.Details
	Decoded map[string]any `json:"decoded_state,omitempty"` // by operator/subtask
}

func (p *printer) inspect(d *checkpoint.Details) error {
	if p.json {
		out := inspected{Details: d, Decoded: map[string]any{}}
		for _, op := range d.Operators {
			for _, st := range op.Subtasks {
				if v := decodeState(st.State, st.Subtask, op.Parallelism); v != nil {
					out.Decoded[fmt.Sprintf("%s/%d", op.Name, st.Subtask)] = v
				}
			}
		}
		return p.emit(out)
	}
	w := p.w
	final := ""
	if d.Final {
		final = " (final)"
	}
	fmt.Fprintf(w, "%s %d of job %q%s\n", d.Kind, d.ID, d.Job, final)
	fmt.Fprintf(w, "  location         %s\n", strings.TrimSuffix(d.Location+"/"+d.Dir, "/"))
	fmt.Fprintf(w, "  created          %s\n", d.Created.Format(time.RFC3339Nano))
	fmt.Fprintf(w, "  max parallelism  %d\n", d.MaxParallelism)
	fmt.Fprintf(w, "  files            %d, %s (%s added by this checkpoint)\n", d.Files, bytesText(d.Size), bytesText(d.Incremental))
	if d.EndOfInput {
		fmt.Fprintf(w, "  end of input     every source had ended\n")
	}
	if d.FromSavepoint != "" {
		fmt.Fprintf(w, "  from savepoint   %s (job/id@created)\n", d.FromSavepoint)
	}
	for _, op := range d.Operators {
		fmt.Fprintf(w, "\noperator %q  parallelism %d  state %s\n", op.Name, op.Parallelism, bytesText(op.Bytes))
		for _, st := range op.Subtasks {
			var parts []string
			if st.KeyGroups != nil {
				parts = append(parts, fmt.Sprintf("key groups [%d,%d)  keyed state %s in %d files", st.KeyGroups[0], st.KeyGroups[1], bytesText(st.KeyedBytes), st.KeyedFiles))
			}
			if st.EventTime != nil {
				parts = append(parts, "event time "+eventTimeText(*st.EventTime))
			}
			if st.State != nil {
				parts = append(parts, "operator state "+bytesText(int64(len(st.State))))
			}
			if st.Committed {
				parts = append(parts, "commit recorded")
			}
			fmt.Fprintf(w, "  subtask %d  %s\n", st.Subtask, strings.Join(parts, "  "))
			if st.State != nil {
				fmt.Fprintf(w, "    %s\n", stateText(st.State, st.Subtask, op.Parallelism))
			}
		}
	}
	return nil
}

func (p *printer) verify(results []*checkpoint.Verification) error {
	if p.json {
		return p.emit(results)
	}
	for _, r := range results {
		status := "OK"
		if !r.OK() {
			status = "FAILED"
		}
		fmt.Fprintf(p.w, "%s %d (%s): %d files, %s: %s\n", r.Kind, r.ID, r.Dir, r.Files, bytesText(r.Size), status)
		for _, b := range r.Bad {
			fmt.Fprintf(p.w, "  %s (object %s): %s\n", b.Path, b.Object, b.Problem)
		}
	}
	return nil
}

func bytesText(n int64) string {
	switch {
	case n < 1<<10:
		return strconv.FormatInt(n, 10) + " B"
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

// eventTimeText shows an event time, milliseconds since the Unix epoch, and
// as a time when it is a plausible one.
func eventTimeText(ms int64) string {
	switch ms {
	case math.MaxInt64:
		return "end of time (every input ended)"
	case math.MinInt64:
		return "none yet"
	}
	if ms < 0 || ms > 1e14 {
		return strconv.FormatInt(ms, 10)
	}
	return fmt.Sprintf("%d (%s)", ms, time.UnixMilli(ms).UTC().Format(time.RFC3339Nano))
}
