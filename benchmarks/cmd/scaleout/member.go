package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
)

// memberArgs is what the parent passes a member process (the hidden
// --member flag and the ones after it).
type memberArgs struct {
	brokers, input, output, group, dir string
	logLevel                           string // slog level name
	parallelism                        int    // without group
	interval, session                  time.Duration
}

// runMember runs the counting job until SIGTERM: one member of a group
// job, or with an empty group the whole job in this process.
func runMember(a memberArgs) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return fmt.Errorf("--member-log-level %q: want debug, info, warn or error", a.logLevel)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var once sync.Once
	newSource, err := kafka.NewSource(kafka.SourceConfig[string]{
		Brokers: []string{a.brokers},
		Topics:  []string{a.input},
		Mode:    kafka.Unbounded, // a group job runs until stopped; the parent stops it
		Deserializer: func(r kafka.Record) (string, error) {
			once.Do(func() { fmt.Printf("%s%d\n", firstReadPrefix, time.Now().UnixNano()) })
			return string(r.Key), nil
		},
	})
	if err != nil {
		return err
	}
	newSink, err := kafka.NewSink(kafka.SinkConfig[kafka.Message]{
		Brokers:               []string{a.brokers},
		Topic:                 a.output,
		Mode:                  kafka.ExactlyOnce,
		TransactionalIDPrefix: "scaleout-" + a.output,
		ExpectedRestartTime:   10 * time.Second,
	})
	if err != nil {
		return err
	}
	p := runtime.NewPipeline("scaleout")
	keys := runtime.From(p, "input", newSource)
	counts := operators.Aggregate(operators.KeyBy(keys, func(k string) string { return k }), "count",
		operators.AggregateFunc[string, string, int64, kafka.Message]{
			Add: func(acc int64, _ string, _ bool) int64 { return acc + 1 },
			Result: func(k string, n int64) kafka.Message {
				return kafka.Message{Key: []byte(k), Value: strconv.AppendInt(nil, n, 10)}
			},
		}, nil)
	runtime.To(counts, "output", newSink)

	stop := make(chan struct{})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() { <-sig; close(stop) }()
	cfg := runtime.Config{
		CheckpointDir:      a.dir,
		CheckpointInterval: a.interval,
		Logger:             log,
		Stop:               stop,
	}
	var statusOnce sync.Once
	cfg.Events.Started = func(info runtime.StartInfo) {
		statusOnce.Do(func() { fmt.Printf("%s%s\n", statusPrefix, info.MetricsAddr) })
	}
	if a.group == "" {
		cfg.Parallelism = a.parallelism
	} else {
		cluster, err := kafka.NewCluster(kafka.ClusterConfig{Brokers: []string{a.brokers}, Topics: []string{a.input}})
		if err != nil {
			return err
		}
		cfg.Group, cfg.Cluster = a.group, cluster
		cfg.GroupSessionTimeout = a.session
		cfg.MetricsAddr = "127.0.0.1:0" // /api/status, for the failover runs
	}
	return runtime.Run(context.Background(), p, cfg)
}
