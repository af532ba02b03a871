package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/state"
	"github.com/weirstream/weir/weirtest/verify"
)

// event is the record of the JSON modes: about 130 bytes of JSON in, one
// field more out.
type event struct {
	ID     int64    `json:"id"`
	User   string   `json:"user"`
	Kind   string   `json:"kind"`
	Amount float64  `json:"amount"`
	Time   int64    `json:"ts"`
	Tags   []string `json:"tags,omitempty"`
	Region string   `json:"region,omitempty"` // added by the job
}

// eventJSON is the one serde of the JSON modes, in the job and in the loop.
var eventJSON = state.JSON[event]()

// regions are the values of the added field.
var regions = [...]string{"eu-west-1", "eu-west-2", "eu-west-3"}

// enrich is the per-record work of the JSON modes.
func enrich(e event) event {
	e.Region = regions[e.ID%int64(len(regions))]
	return e
}

// fillJSON writes n JSON events, round robin over the partitions.
func fillJSON(brokers []string, topic string, n int) error {
	kinds := []string{"view", "click", "purchase", "refund"}
	return produce(brokers, topic, n, func(i int) []byte {
		b, err := eventJSON.Encode(nil, event{
			ID: int64(i), User: fmt.Sprintf("user-%010d", i%100_000), Kind: kinds[i%len(kinds)],
			Amount: float64(i%100_000) / 100, Time: 1_764_755_700_000 + int64(i), Tags: []string{"web", "eu"},
		})
		if err != nil {
			panic(err) // a fixed, encodable type
		}
		return b
	})
}

// runJSONJob runs input → Map(enrich) → exactly-once output once, decoding
// and encoding with eventJSON, and returns records per second.
func runJSONJob(brokers []string, input, topic string, parallelism int, interval time.Duration, records int, log *slog.Logger) (jsonRun, error) {
	dir, err := os.MkdirTemp("", "weir-kafka-bench-*")
	if err != nil {
		return jsonRun{}, err
	}
	defer os.RemoveAll(dir)
	newSource, err := kafka.NewSource(kafka.SourceConfig[event]{
		Brokers:     brokers,
		Topics:      []string{input},
		Mode:        kafka.StopAtEnd,
		DecodeValue: eventJSON.Decode,
	})
	if err != nil {
		return jsonRun{}, err
	}
	newSink, err := kafka.NewSink(kafka.SinkConfig[event]{
		Brokers:               brokers,
		Topic:                 topic,
		Mode:                  kafka.ExactlyOnce,
		TransactionalIDPrefix: "bench-" + topic,
		ExpectedRestartTime:   10 * time.Second,
		EncodeValue:           eventJSON.Encode,
	})
	if err != nil {
		return jsonRun{}, err
	}
	p := runtime.NewPipeline("kafka-json-bench")
	runtime.To(operators.Map(runtime.From(p, "input", newSource), enrich), "output", newSink)
	return measure(brokers, topic, records, func() error {
		return runtime.Run(context.Background(), p, runtime.Config{
			CheckpointDir:      dir,
			CheckpointInterval: interval,
			Parallelism:        parallelism,
			Logger:             log,
		})
	})
}

// runJSONLoop is the limit of the JSON job: the same work (decode, enrich,
// encode with eventJSON) in a plain franz-go consume-transform-produce loop
// on one client, committing a transaction every interval. It keeps no
// offsets, so it does less than an exactly-once job must.
func runJSONLoop(brokers []string, input, topic string, partitions int, interval time.Duration, records int) (jsonRun, error) {
	return measure(brokers, topic, records, func() error { return jsonLoop(brokers, input, topic, partitions, interval, records) })
}

func jsonLoop(brokers []string, input, topic string, partitions int, interval time.Duration, records int) error {
	offsets := make(map[int32]kgo.Offset, partitions)
	for p := range partitions {
		offsets[int32(p)] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{input: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.TransactionalID("bench-loop-"+topic),
		kgo.DefaultProduceTopic(topic),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx := context.Background()
	var (
		mu      sync.Mutex
		prodErr error
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			prodErr = errors.Join(prodErr, err)
			mu.Unlock()
		}
	}
	commit := func() error {
		if err := cl.Flush(ctx); err != nil {
			return err
		}
		mu.Lock()
		err := prodErr
		mu.Unlock()
		if err != nil {
			return err
		}
		return cl.EndTransaction(ctx, kgo.TryCommit)
	}
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	last := time.Now()
	var values []byte
	for n := 0; n < records; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			return err
		}
		var decodeErr error
		fs.EachRecord(func(r *kgo.Record) {
			e, err := eventJSON.Decode(r.Value)
			if err != nil {
				decodeErr = err
				return
			}
			// Values go to shared buffers, as in the sink.
			if cap(values) < 1<<10 {
				values = make([]byte, 0, 64<<10)
			}
			v, err := eventJSON.Encode(values, enrich(e))
			if err != nil {
				decodeErr = err
				return
			}
			values = v[len(v):]
			cl.Produce(ctx, &kgo.Record{Value: v[:len(v):len(v)]}, promise)
			n++
		})
		if decodeErr != nil {
			return decodeErr
		}
		if time.Since(last) >= interval {
			if err := commit(); err != nil {
				return err
			}
			if err := cl.BeginTransaction(); err != nil {
				return err
			}
			last = time.Now()
		}
	}
	return commit()
}

// jsonRun is the outcome of a JSON mode run.
type jsonRun struct {
	rate      float64       // records per second of wall time
	cpuPerRec time.Duration // CPU time (user and system) of the process per record
}

// measure runs run, then checks that topic holds records committed
// records. The CPU time is the whole process's: run alone with an external
// broker (--brokers) for it to be the job's.
func measure(brokers []string, topic string, records int, run func() error) (jsonRun, error) {
	cpu0, start := cpuTime(), time.Now()
	if err := run(); err != nil {
		return jsonRun{}, err
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	n := 0
	if err := verify.ReadTopic(context.Background(), verify.ReadConfig{Brokers: brokers, Topic: topic}, func(verify.Record) { n++ }); err != nil {
		return jsonRun{}, err
	}
	if n != records {
		return jsonRun{}, fmt.Errorf("output %q holds %d committed records, want %d", topic, n, records)
	}
	return jsonRun{rate: float64(records) / elapsed.Seconds(), cpuPerRec: cpu / time.Duration(records)}, nil
}

// cpuTime returns the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
