// Command kafkajob is the counting job of package e2e as a job binary, for
// tests that kill and restart it:
//
//	kafkajob --brokers ADDR --input-topic in --output-topic out --checkpoint-dir DIR \
//	    [--sink-mode exactly-once|at-least-once] [--rate N] [runtime flags]
//
// It reads its input to the end captured at start (StopAtEnd) and exits 0.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/internal/e2e"
	"github.com/weirstream/weir/runtime"
)

func main() {
	flags := runtime.RegisterFlags(flag.CommandLine, runtime.Config{CheckpointDir: "./data/kafkajob"})
	brokers := flag.String("brokers", "", "Kafka bootstrap addresses, comma-separated (required)")
	in := flag.String("input-topic", "events", "input topic")
	out := flag.String("output-topic", "counts", "output topic")
	mode := flag.String("sink-mode", "exactly-once", "sink delivery: exactly-once or at-least-once")
	prefix := flag.String("transactional-id-prefix", "kafkajob", "transactional id prefix of the sink")
	batch := flag.Int("sink-batch", 0, "records per partition the sink buffers before sending (0: the sink's default)")
	rate := flag.Int("rate", 0, "pace each source subtask to about this many records per second (0: no limit)")
	maxRead := flag.Int("max-bytes-per-read", 0, "bytes a source Read fetches per broker (0: the source's default)")
	flag.Parse()

	cfg := flags.Config()
	jc := e2e.JobConfig{
		Brokers:               strings.Split(*brokers, ","),
		InputTopic:            *in,
		OutputTopic:           *out,
		TransactionalIDPrefix: *prefix,
		SinkBatchSize:         *batch,
		RatePerSecond:         *rate,
		MaxBytesPerRead:       int32(*maxRead),
	}
	switch *mode {
	case "exactly-once":
		jc.SinkMode = kafka.ExactlyOnce
	case "at-least-once":
		jc.SinkMode = kafka.AtLeastOnce
	default:
		fmt.Fprintf(os.Stderr, "kafkajob: --sink-mode %q: want exactly-once or at-least-once\n", *mode)
		os.Exit(2)
	}
	if *brokers == "" {
		fmt.Fprintln(os.Stderr, "kafkajob: --brokers is required")
		os.Exit(2)
	}
	p := runtime.NewPipeline("kafkajob")
	e2e.BuildCountJob(p, jc)
	runtime.Main(p, cfg)
}
