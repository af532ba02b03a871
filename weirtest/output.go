package weirtest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/weirtest/verify"
)

// Output reads what a run of the job committed. Read calls record once per
// committed record, in any order, with bytes it must not retain; two
// records are the same when their bytes are. The run's placeholders
// ({dir}, {run}) name where the output is: Run.Expand resolves them.
//
// Files and KafkaTopic are the outputs of weir's exactly-once sinks; a
// reader of any other committed store (a SQL table, an object store) only
// needs this method.
type Output interface {
	Read(ctx context.Context, run Run, record func([]byte)) error
}

// Files reads the committed output of the exactly-once file sink
// (connectors/file): every line of every file in Dir whose name does not start
// with a dot. Files in staging (Dir/.weir) are not committed and not read.
type Files struct {
	// Dir is the sink's directory, with placeholders: "{dir}/out".
	Dir string
}

// Read implements Output.
func (f Files) Read(ctx context.Context, run Run, record func([]byte)) error {
	dir := run.Expand(f.Dir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("weirtest: read committed output: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || e.IsDir() {
			continue // staging: not committed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := readLines(filepath.Join(dir, e.Name()), record); err != nil {
			return err
		}
	}
	return nil
}

func readLines(path string, record func([]byte)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("weirtest: read committed output: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		record(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("weirtest: read committed output %s: %w", path, err)
	}
	return nil
}

// KafkaTopic reads a topic the way a downstream consumer of an exactly-once
// Kafka sink must, with isolation level read_committed: records of aborted
// transactions are not seen. It reads every partition from the earliest
// offset to the end at the time of reading. A record is its value: keys
// and positions are not compared (offsets differ between runs by the
// aborted transactions of the killed starts).
type KafkaTopic struct {
	// Brokers are bootstrap addresses.
	Brokers []string
	// Topic is the output topic, with placeholders: "out-{run}" (each run
	// needs its own topic, and {run} is a valid topic name).
	Topic string
	// Security secures the connections (TLS, SASL); the zero value is
	// plaintext.
	Security kafka.Security
}

// Read implements Output.
func (k KafkaTopic) Read(ctx context.Context, run Run, record func([]byte)) error {
	err := verify.ReadTopic(ctx, verify.ReadConfig{Brokers: k.Brokers, Security: k.Security, Topic: run.Expand(k.Topic)},
		func(r verify.Record) { record(r.Value) })
	if err != nil {
		return fmt.Errorf("weirtest: %w", err)
	}
	return nil
}
