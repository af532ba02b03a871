// Command kafka measures the cost of exactly-once delivery to Kafka: the same
// job, Kafka source → Map → Kafka sink with 1 s checkpoints, over the same
// input records in an in-process development broker, once with the
// transactional (exactly-once) sink and once with the at-least-once sink,
// and prints both throughputs and their ratio (target: exactly-once at 80%
// or more of at-least-once).
//
//	go run ./benchmarks/cmd/kafka [--records N] [--value-bytes B] [--partitions P] [--parallelism K] [--rounds R] [--modes M] [--brokers ADDR]
//
// Two more modes measure a JSON pipeline (see json.go): "json" runs the job
// source → Map → exactly-once sink over JSON events, decoded and encoded
// with state.JSON, adding a field to each; "json-loop" does the same work in
// a plain franz-go consume-transform-produce loop with transactions, the
// limit of what the job could reach. They also print the CPU time per
// record, which a shared machine disturbs less than the wall time. To give
// the engine one core and the broker the other:
//
//	taskset -c 0 weir broker --addr 127.0.0.1:9092 --partitions 4 &
//	GOMAXPROCS=1 taskset -c 1 go run ./benchmarks/cmd/kafka --brokers 127.0.0.1:9092 --parallelism 1 --modes json,json-loop
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
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	goruntime "runtime"
	"slices"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/weirstream/weir/benchmarks"
	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/internal/devbroker"
	"github.com/weirstream/weir/operators"
	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/weirtest/verify"
)

func main() {
	records := flag.Int("records", 1_000_000, "input records")
	valueBytes := flag.Int("value-bytes", 100, "bytes per record value")
	partitions := flag.Int("partitions", 4, "partitions of the input and output topics")
	parallelism := flag.Int("parallelism", 2, "subtasks per operator")
	interval := flag.Duration("checkpoint-interval", time.Second, "checkpoint interval")
	rounds := flag.Int("rounds", 2, "alternate at-least-once and exactly-once runs this many times; the best of each counts")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the first run of the last of --modes to this file")
	modeList := flag.String("modes", "at-least-once,exactly-once", "comma-separated modes to run: at-least-once, exactly-once, json, json-loop")
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

// The JSON modes (json.go).
const (
	modeJSON     = "json"
	modeJSONLoop = "json-loop"
)

// parseModes parses the --modes flag.
func parseModes(list string) ([]string, error) {
	var modes []string
	for _, name := range strings.Split(list, ",") {
		switch name {
		case kafka.AtLeastOnce.String(), kafka.ExactlyOnce.String(), modeJSON, modeJSONLoop:
			modes = append(modes, name)
		default:
			return nil, fmt.Errorf("--modes: unknown mode %q (want %v, %v, %s or %s)", name, kafka.AtLeastOnce, kafka.ExactlyOnce, modeJSON, modeJSONLoop)
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

func bench(records, valueBytes, partitions, parallelism int, interval time.Duration, rounds int, modes []string, external []string, cpuProfile string) error {
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := startCluster(external, partitions, quiet)
	if err != nil {
		return err
	}
	defer c.close()
	brokers := c.brokers
	inputs := map[string]string{} // mode → input topic
	var topics []string           // distinct inputs
	for _, mode := range modes {
		input := c.prefix + "input"
		if mode == modeJSON || mode == modeJSONLoop {
			input += "-json"
		}
		inputs[mode] = input
		if !slices.Contains(topics, input) {
			topics = append(topics, input)
		}
	}
	for _, input := range topics {
		if err := c.create(input, partitions); err != nil {
			return err
		}
		start := time.Now()
		if strings.HasSuffix(input, "-json") {
			err = fillJSON(brokers, input, records)
		} else {
			err = fill(brokers, input, records, valueBytes)
		}
		if err != nil {
			return err
		}
		fmt.Printf("input %s: %d records in %d partitions, written in %v\n",
			strings.TrimPrefix(input, c.prefix), records, partitions, time.Since(start).Round(time.Millisecond))
	}

	best := map[string]float64{}
	cpu := map[string]time.Duration{} // least CPU per record of the JSON modes
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
			var rate float64
			var run jsonRun
			switch mode {
			case modeJSON:
				run, err = runJSONJob(brokers, inputs[mode], topic, parallelism, interval, records, quiet)
				rate = run.rate
			case modeJSONLoop:
				run, err = runJSONLoop(brokers, inputs[mode], topic, partitions, interval, records)
				rate = run.rate
			case kafka.AtLeastOnce.String():
				rate, err = runJob(brokers, inputs[mode], topic, kafka.AtLeastOnce, parallelism, interval, records, quiet)
			default:
				rate, err = runJob(brokers, inputs[mode], topic, kafka.ExactlyOnce, parallelism, interval, records, quiet)
			}
			stop()
			if err != nil {
				return fmt.Errorf("%v run: %w", mode, err)
			}
			fmt.Printf("round %d %-14s %10.0f records/s", round+1, mode+":", rate)
			if run.cpuPerRec > 0 {
				fmt.Printf(", %.2f µs CPU per record", run.cpuPerRec.Seconds()*1e6)
				if cpu[mode] == 0 || run.cpuPerRec < cpu[mode] {
					cpu[mode] = run.cpuPerRec
				}
			}
			fmt.Println()
			best[mode] = max(best[mode], rate)
		}
	}
	fmt.Printf("machine: %s/%s, %s, %d CPUs, GOMAXPROCS=%d; parallelism %d, checkpoints every %v\n",
		goruntime.GOOS, goruntime.GOARCH, benchmarks.CPUModel(), goruntime.NumCPU(), goruntime.GOMAXPROCS(0), parallelism, interval)
	fmt.Printf("%-16s %12s %18s\n", "", "records/s", "µs CPU per record")
	for _, mode := range modes {
		fmt.Printf("%-16s %12.0f", mode, best[mode])
		if c := cpu[mode]; c > 0 {
			fmt.Printf(" %18.2f", c.Seconds()*1e6)
		}
		fmt.Println()
	}
	alo, eo := best[kafka.AtLeastOnce.String()], best[kafka.ExactlyOnce.String()]
	if alo > 0 && eo > 0 {
		fmt.Printf("exactly-once / at-least-once: %.2f   (target >= 0.80)\n", eo/alo)
	}
	if job, loop := best[modeJSON], best[modeJSONLoop]; job > 0 && loop > 0 {
		fmt.Printf("json / json-loop: %.2f records/s, %.2f CPU per record   (json target >= 1M records/s on one core)\n",
			job/loop, cpu[modeJSON].Seconds()/cpu[modeJSONLoop].Seconds())
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
	return produce(brokers, topic, n, func(i int) []byte {
		v := make([]byte, size)
		copy(v, fmt.Sprintf("record-%010d-", i))
		for j := 18; j < size; j++ {
			v[j] = 'a' + byte((i+j)%26)
		}
		return v
	})
}

// produce writes n records with keys "k<i>" and values value(i), round
// robin over the partitions.
func produce(brokers []string, topic string, n int, value func(i int) []byte) error {
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
			msgs = append(msgs, kafkago.Message{Key: fmt.Appendf(nil, "k%d", i), Value: value(i)})
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			return fmt.Errorf("fill %q: %w", topic, err)
		}
	}
	return w.Close()
}

// runJob runs input → Map → output once and returns records per second.
func runJob(brokers []string, input, topic string, mode kafka.SinkMode, parallelism int, interval time.Duration, records int, log *slog.Logger) (float64, error) {
	dir, err := os.MkdirTemp("", "weir-kafka-bench-*")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	srcCfg := kafka.SourceConfig[kafka.Message]{
		Brokers: brokers,
		Topics:  []string{input},
		Mode:    kafka.StopAtEnd,
		Deserializer: func(r kafka.Record) (kafka.Message, error) {
			// The record's memory belongs to the fetch buffer.
			return kafka.Message{Key: append([]byte(nil), r.Key...), Value: append([]byte(nil), r.Value...)}, nil
		},
	}
	sinkCfg := kafka.SinkConfig[kafka.Message]{
		Brokers:               brokers,
		Topic:                 topic,
		Mode:                  mode,
		TransactionalIDPrefix: "bench-" + topic,
		ExpectedRestartTime:   10 * time.Second,
	}
	newSource, err := kafka.NewSource(srcCfg)
	if err != nil {
		return 0, err
	}
	newSink, err := kafka.NewSink(sinkCfg)
	if err != nil {
		return 0, err
	}
	p := runtime.NewPipeline("kafka-bench")
	in := runtime.From(p, "input", newSource)
	out := operators.Map(in, func(m kafka.Message) kafka.Message {
		// Some per-record work: upper-case the value in place.
		for i, c := range m.Value {
			if 'a' <= c && c <= 'z' {
				m.Value[i] = c - 'a' + 'A'
			}
		}
		return m
	})
	runtime.To(out, "output", newSink)

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
