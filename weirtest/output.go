package weirtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
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

// maxLine bounds a line of a committed file, as a bufio.Scanner with a
// 16 MiB buffer would.
const maxLine = 16 << 20

// readLines calls record with every line of the file at path, without its
// end of line ("\n" or "\r\n"), as bufio.ScanLines splits it. NB: not a
// bufio.Scanner: the kit reads outputs of millions of lines, often under
// go test -race, where the Scanner's bookkeeping per line took 4 times as
// long as splitting a chunk with bytes.IndexByte (380 vs 95 ms a million
// lines).
func readLines(path string, record func([]byte)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("weirtest: read committed output: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	n := 0 // buf[:n] holds the bytes not passed on yet
	for eof := false; ; {
		rest := buf[:n]
		for {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				break
			}
			record(dropCR(rest[:i]))
			rest = rest[i+1:]
		}
		if eof {
			if len(rest) > 0 {
				record(dropCR(rest)) // the last line, without an end of line
			}
			return nil
		}
		n = copy(buf, rest)
		if n == len(buf) {
			if n >= maxLine {
				return fmt.Errorf("weirtest: read committed output %s: %w", path, bufio.ErrTooLong)
			}
			buf = append(buf, make([]byte, len(buf))...)
		}
		m, err := f.Read(buf[n:])
		n += m
		switch {
		case err == io.EOF:
			eof = true
		case err != nil:
			return fmt.Errorf("weirtest: read committed output %s: %w", path, err)
		}
	}
}

// dropCR drops a terminal \r from line.
func dropCR(line []byte) []byte {
	if len(line) > 0 && line[len(line)-1] == '\r' {
		return line[:len(line)-1]
	}
	return line
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
