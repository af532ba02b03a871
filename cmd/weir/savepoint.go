package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/weirstream/weir/runtime"
)

const savepointSynopsis = `savepoint --addr HOST:PORT [--dir DIR|s3://BUCKET/PREFIX] [--json]
       [--metrics-bearer-token-file F | --metrics-basic-auth-file F]

Asks a running job, through its status server (its --metrics-addr), for a
savepoint, without stopping it: the job takes a checkpoint at once and copies
it into a savepoint-<id>-<time> directory of --dir (default: the job's
--savepoint-dir). Prints the savepoint's path once it is written; start a job
from it with --from-savepoint PATH. --addr may also be a URL (https://…).`

// runSavepoint is 'weir savepoint'.
func runSavepoint(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "savepoint", savepointSynopsis)
	addr := fs.String("addr", "", "the job's status server: HOST:PORT (its --metrics-addr) or a URL")
	dir := fs.String("dir", "", "directory or s3://BUCKET/PREFIX for the savepoint (default: the job's --savepoint-dir)")
	asJSON := fs.Bool("json", false, "print the job's JSON answer")
	timeout := fs.Duration("timeout", 30*time.Minute, "give up waiting for the savepoint after this long")
	tokenFile := fs.String("metrics-bearer-token-file", "", "`file` holding the status server's bearer token (default: the environment variable WEIR_METRICS_BEARER_TOKEN)")
	basicFile := fs.String("metrics-basic-auth-file", "", "`file` holding one line USER:PASSWORD of the status server's basic auth")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *addr == "" {
		return usagef("--addr is required: the job's --metrics-addr, e.g. 127.0.0.1:9249")
	}
	auth, err := statusAuth(*tokenFile, *basicFile)
	if err != nil {
		return usagef("%v", err)
	}
	url := strings.TrimSuffix(*addr, "/")
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	url += "/api/savepoint"
	body, _ := json.Marshal(map[string]string{"dir": *dir})
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return usagef("--addr %s: %v", *addr, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+auth.BearerToken)
	} else if auth.BasicUser != "" {
		req.SetBasicAuth(auth.BasicUser, auth.BasicPassword)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ask %s for a savepoint: %w (is the job running with --metrics-addr %s?)", url, err, *addr)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	var res struct {
		Savepoint string `json:"savepoint"`
		Error     string `json:"error"`
	}
	if err := json.Unmarshal(answer, &res); err != nil || resp.StatusCode != http.StatusOK {
		if res.Error == "" {
			res.Error = strings.TrimSpace(string(answer))
		}
		return fmt.Errorf("%s: %s: %s", url, resp.Status, res.Error)
	}
	if *asJSON {
		_, err = e.stdout.Write(answer)
		return err
	}
	_, err = fmt.Fprintln(e.stdout, res.Savepoint)
	return err
}

// statusAuth reads the credentials of a job's status server from the files
// (and the environment variable) a job reads them from, through the job's
// own flags, so that both read them alike.
func statusAuth(tokenFile, basicFile string) (runtime.MetricsAuth, error) {
	fs := flag.NewFlagSet("auth", flag.ContinueOnError)
	f := runtime.RegisterFlags(fs, runtime.Config{CheckpointDir: "unused"})
	var args []string
	if tokenFile != "" {
		args = append(args, "--metrics-bearer-token-file", tokenFile)
	}
	if basicFile != "" {
		args = append(args, "--metrics-basic-auth-file", basicFile)
	}
	if err := fs.Parse(args); err != nil {
		return runtime.MetricsAuth{}, err
	}
	cfg := f.Config()
	if err := cfg.Validate(); err != nil {
		return runtime.MetricsAuth{}, err
	}
	return cfg.MetricsAuth, nil
}
