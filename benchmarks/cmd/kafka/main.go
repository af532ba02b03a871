// Command kafka measures the cost of exactly-once delivery to Kafka: the same
// job, Kafka source → Map → Kafka sink with 1 s checkpoints, over the same
// input records in an in-process development broker, once with the
// transactional (exactly-once) sink and once with the at-least-once sink,
// and prints both throughputs and their ratio (target: exactly-once at 80%
// or more of at-least-once).
//
//	go run ./benchmarks/cmd/kafka [--records N] [--value-bytes B] [--partitions P] [--parallelism K] [--rounds R] [--modes M] [--brokers ADDR]
//
// It ends with the peak resident set size of the process. The in-process
// broker keeps every topic in memory, which dwarfs the job's: to compare the
// memory of the two sinks, run a broker apart ('weir broker') and each mode
// alone, with --brokers and --modes.
//
// Each run reads the whole input topic (StopAtEnd) and ends after its final
// checkpoint has committed; its rate is records divided by wall time from
// job start to job end. The output of every run is then counted under
// read_committed, so that a fast but wrong run cannot pass.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	goruntime "runtime"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/weirstream/weir/benchmarks"
	"github.com/weirstream/weir/internal/devbroker"
	"github.com/weirstream/weir/internal/verify"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	sink "github.com/weirstream/weir/sinks/kafka"
	source "github.com/weirstream/weir/sources/kafka"
)

func main() {
	records := flag.Int("records", 1_000_000, "input records")
	valueBytes := flag.Int("value-bytes", 100, "bytes per record value")
	partitions := flag.Int("partitions", 4, "partitions of the input and output topics")
	parallelism := flag.Int("parallelism", 2, "subtasks per operator")
	interval := flag.Duration("checkpoint-interval", time.Second, "checkpoint interval")
	rounds := flag.Int("rounds", 2, "alternate at-least-once and exactly-once runs this many times; the best of each counts")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the first run of the last of --modes to this file")
	modeList := flag.String("modes", "at-least-once,exactly-once", "comma-separated sink modes to run")
	brokers := flag.String("brokers", "", "comma-separated addresses of a running broker to use instead of an in-process one")
	flag.Parse()
	modes, err := parseModes(*modeList)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafka bench:", err)
		os.Exit(2)
	}
	var external []string
	if *brokers != "" {
		external = strings.Split(*brokers, ",")
	}
	if err := bench(*records, *valueBytes, *partitions, *parallelism, *interval, *rounds, modes, external, *cpuProfile); err != nil {
		fmt.Fprintln(os.Stderr, "kafka bench:", err)
		os.Exit(1)
	}
}

// parseModes parses the --modes flag.
func parseModes(list string) ([]sink.Mode, error) {
	var modes []sink.Mode
	for _, name := range strings.Split(list, ",") {
		switch name {
		case sink.AtLeastOnce.String():
			modes = append(modes, sink.AtLeastOnce)
		case sink.ExactlyOnce.String():
			modes = append(modes, sink.ExactlyOnce)
		default:
			return nil, fmt.Errorf("--modes: unknown mode %q (want %v or %v)", name, sink.AtLeastOnce, sink.ExactlyOnce)
		}
	}
	return modes, nil
}

// cluster is where the benchmark's topics live.
type cluster struct {
	brokers []string
	prefix  string // of topic names
	create  func(topic string, partitions int) error
	close   func()
}

// startCluster starts an in-process development broker, or uses the
// brokers at external, where topics get a prefix unique to this run.
func startCluster(external []string, partitions int, log *slog.Logger) (*cluster, error) {
	if len(external) > 0 {
		cl := &kafkago.Client{Addr: kafkago.TCP(external...), Timeout: 30 * time.Second}
		return &cluster{
			brokers: external,
			prefix:  fmt.Sprintf("bench-%d-", time.Now().UnixNano()),
			create: func(topic string, partitions int) error {
				res, err := cl.CreateTopics(context.Background(), &kafkago.CreateTopicsRequest{
					Topics: []kafkago.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}},
				})
				if err == nil {
					err = res.Errors[topic]
				}
				if err != nil {
					return fmt.Errorf("create topic %q: %w", topic, err)
				}
				return nil
			},
			close: func() {},
		}, nil
	}
	b, err := devbroker.Start(devbroker.Config{Addr: "127.0.0.1:0", Partitions: partitions, Logger: log})
	if err != nil {
		return nil, err
	}
	return &cluster{brokers: []string{b.Addr()}, create: b.CreateTopic, close: func() { _ = b.Close() }}, nil
}

func bench(records, valueBytes, partitions, parallelism int, interval time.Duration, rounds int, modes []sink.Mode, external []string, cpuProfile string) error {
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := startCluster(external, partitions, quiet)
	if err != nil {
		return err
	}
	defer c.close()
	brokers, input := c.brokers, c.prefix+"input"
	if err := c.create(input, partitions); err != nil {
		return err
	}
	start := time.Now()
	if err := fill(brokers, input, records, valueBytes); err != nil {
		return err
	}
	fmt.Printf("input: %d records of %d bytes in %d partitions, written in %v\n",
		records, valueBytes, partitions, time.Since(start).Round(time.Millisecond))

	best := map[sink.Mode]float64{}
	for round := range rounds {
		for _, mode := range modes {
			topic := fmt.Sprintf("%soutput-%d-%s", c.prefix, round, mode)
			if err := c.create(topic, partitions); err != nil {
				return err
			}
			profile := ""
			if mode == modes[len(modes)-1] && round == 0 {
				profile = cpuProfile
			}
			stop, err := benchmarks.StartCPUProfile(profile)
			if err != nil {
				return err
			}
			rate, err := runJob(brokers, input, topic, mode, parallelism, interval, records, quiet)
			stop()
			if err != nil {
				return fmt.Errorf("%v run: %w", mode, err)
			}
			fmt.Printf("round %d %-14s %10.0f records/s\n", round+1, mode.String()+":", rate)
			best[mode] = max(best[mode], rate)
		}
	}
	alo, eo := best[sink.AtLeastOnce], best[sink.ExactlyOnce]
	fmt.Printf("machine: %s/%s, %s, %d CPUs, GOMAXPROCS=%d; parallelism %d, checkpoints every %v\n",
		goruntime.GOOS, goruntime.GOARCH, cpuModel(), goruntime.NumCPU(), goruntime.GOMAXPROCS(0), parallelism, interval)
	fmt.Printf("%-16s %12s\n", "", "records/s")
	fmt.Printf("%-16s %12.0f\n", "at-least-once", alo)
	fmt.Printf("%-16s %12.0f\n", "exactly-once", eo)
	if alo > 0 && eo > 0 {
		fmt.Printf("exactly-once / at-least-once: %.2f   (target >= 0.80)\n", eo/alo)
	}
	where := "broker included"
	if len(external) > 0 {
		where = "broker apart"
	}
	fmt.Printf("peak RSS (%s): %s\n", where, peakRSS())
	return nil
}

// fill writes n records with values of size bytes, round robin over the
// partitions.
func fill(brokers []string, topic string, n, size int) error {
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafkago.RoundRobin{},
		RequiredAcks: kafkago.RequireAll,
		BatchSize:    5000,
		BatchBytes:   16 << 20,
		BatchTimeout: time.Millisecond,
	}
	defer w.Close()
	const chunk = 50_000
	msgs := make([]kafkago.Message, 0, chunk)
	for i := 0; i < n; {
		msgs = msgs[:0]
		for ; i < n && len(msgs) < chunk; i++ {
			v := make([]byte, size)
			copy(v, fmt.Sprintf("record-%010d-", i))
			for j := 18; j < size; j++ {
				v[j] = 'a' + byte((i+j)%26)
			}
			msgs = append(msgs, kafkago.Message{Key: fmt.Appendf(nil, "k%d", i), Value: v})
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			return fmt.Errorf("fill %q: %w", topic, err)
		}
	}
	return w.Close()
}

// runJob runs input → Map → output once and returns records per second.
func runJob(brokers []string, input, topic string, mode sink.Mode, parallelism int, interval time.Duration, records int, log *slog.Logger) (float64, error) {
	dir, err := os.MkdirTemp("", "weir-kafka-bench-*")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	srcCfg := source.Config[sink.Message]{
		Brokers: brokers,
		Topics:  []string{input},
		Mode:    source.StopAtEnd,
		Deserializer: func(r source.Record) (sink.Message, error) {
			// The record's memory belongs to the fetch buffer.
			return sink.Message{Key: append([]byte(nil), r.Key...), Value: append([]byte(nil), r.Value...)}, nil
		},
	}
	sinkCfg := sink.Config[sink.Message]{
		Brokers:               brokers,
		Topic:                 topic,
		Mode:                  mode,
		TransactionalIDPrefix: "bench-" + topic,
		CheckpointInterval:    interval,
		ExpectedRestartTime:   10 * time.Second,
	}
	if _, err := source.New(srcCfg); err != nil {
		return 0, err
	}
	if _, err := sink.New(sinkCfg); err != nil {
		return 0, err
	}
	p := runtime.NewPipeline("kafka-bench")
	in := runtime.From(p, "input", func() runtime.Source[sink.Message] { s, _ := source.New(srcCfg); return s })
	out := operators.Map(in, func(m sink.Message) sink.Message {
		// Some per-record work: upper-case the value in place.
		for i, c := range m.Value {
			if 'a' <= c && c <= 'z' {
				m.Value[i] = c - 'a' + 'A'
			}
		}
		return m
	})
	runtime.To(out, "output", func() runtime.Sink[sink.Message] { s, _ := sink.New(sinkCfg); return s })

	start := time.Now()
	err = runtime.Run(context.Background(), p, runtime.Config{
		CheckpointDir:      dir,
		CheckpointInterval: interval,
		Parallelism:        parallelism,
		Logger:             log,
	})
	elapsed := time.Since(start)
	if err != nil {
		return 0, err
	}
	n := 0
	if err := verify.ReadTopic(context.Background(), verify.ReadConfig{Brokers: brokers, Topic: topic}, func(verify.Record) { n++ }); err != nil {
		return 0, err
	}
	if n != records {
		return 0, fmt.Errorf("output %q holds %d committed records, want %d", topic, n, records)
	}
	return float64(records) / elapsed.Seconds(), nil
}

// peakRSS returns the peak resident set size of the process (VmHWM), or
// "unknown" off Linux.
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
