package main

import (
	"context"
	"fmt"

	"github.com/weirstream/weir/internal/devbroker"
)

func runBroker(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "broker", "broker [--addr 127.0.0.1:9092] [--partitions 3] [--data-dir DIR] [--transactional-id-expiration 168h]\n\n"+
		"Runs a single-node development Kafka broker (franz-go's kfake) until SIGINT or SIGTERM.\n"+
		"Topics are created on first use. Without --data-dir everything is lost on exit.")
	addr := fs.String("addr", "127.0.0.1:9092", "`host:port` to listen on; port 0 picks a free port")
	partitions := fs.Int("partitions", 3, "partition count of automatically created topics")
	dataDir := fs.String("data-dir", "", "keep topics and records in this `directory` across restarts")
	expiration := fs.Duration("transactional-id-expiration", devbroker.DefaultTransactionalIDExpiration,
		"forget a transactional id no producer used for this `duration` (Kafka's transactional.id.expiration.ms); "+
			"set it short to rehearse restarting a job after a long outage")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *partitions < 1 {
		return usagef("--partitions must be at least 1, got %d", *partitions)
	}
	if *expiration < devbroker.MinTransactionalIDExpiration || *expiration > devbroker.MaxTransactionalIDExpiration {
		return usagef("--transactional-id-expiration %v: want %v to %v", *expiration,
			devbroker.MinTransactionalIDExpiration, devbroker.MaxTransactionalIDExpiration)
	}
	b, err := devbroker.Start(devbroker.Config{Addr: *addr, Partitions: *partitions, DataDir: *dataDir,
		TransactionalIDExpiration: *expiration, Logger: e.log})
	if err != nil {
		return fmt.Errorf("%w\nIs another broker already listening on %s? Pick another --addr (port 0 picks a free one)", err, *addr)
	}
	e.log.Info("weir broker ready; stop with Ctrl-C", "addr", b.Addr(), "partitions", *partitions, "data_dir", *dataDir,
		"transactional_id_expiration", *expiration)
	<-ctx.Done()
	e.log.Info("weir broker stopping", "addr", b.Addr())
	return b.Close()
}
