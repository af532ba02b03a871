package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/weirstream/weir/internal/s3dev"
)

func runS3(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "s3", "s3 [--addr 127.0.0.1:9000] [--data-dir DIR]\n\n"+
		"Runs a development S3-compatible server (gofakes3, in process) until SIGINT or SIGTERM,\n"+
		"for checkpoints in s3://BUCKET/PREFIX without a cloud account. It accepts any credentials.\n"+
		"Buckets are not created on first use: a job creates its own. Without --data-dir everything\n"+
		"is lost on exit. It prints the environment a job needs to use it.")
	addr := fs.String("addr", "127.0.0.1:9000", "`host:port` to listen on; port 0 picks a free port")
	dataDir := fs.String("data-dir", "", "keep buckets and objects in this `directory` across restarts")
	if err := parse(fs, args); err != nil {
		return err
	}
	srv, err := s3dev.Start(s3dev.Config{Addr: *addr, DataDir: *dataDir, Logger: e.log})
	if err != nil {
		return fmt.Errorf("%w\nIs another server already listening on %s? Pick another --addr (port 0 picks a free one)", err, *addr)
	}
	e.log.Info("weir s3 ready; stop with Ctrl-C", "endpoint", srv.Endpoint(), "data_dir", *dataDir)
	fmt.Fprintf(e.stdout, "S3 endpoint %s (any credentials); for a job or the aws CLI, run:\nexport %s\n",
		srv.Endpoint(), strings.Join(srv.Env(), " "))
	<-ctx.Done()
	e.log.Info("weir s3 stopping", "endpoint", srv.Endpoint())
	return srv.Close()
}
