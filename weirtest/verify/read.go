package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/runtime"
)

// ReadConfig says which topic ReadTopic reads.
type ReadConfig struct {
	Brokers []string
	// Security secures the connections; the zero value is plaintext.
	Security kafka.Security
	Topic    string
	// DialTimeout bounds each connection attempt, and RetryTimeout how
	// long an unreachable broker is retried. Defaults 5 s and 10 s.
	DialTimeout, RetryTimeout time.Duration
}

// ReadTopic calls fn for every record of every partition of the topic, from
// the earliest retained offset to the end captured when reading starts,
// with isolation level read_committed: records of aborted transactions are
// not seen, and the read stops before any still-open transaction. Record
// values passed to fn must not be retained.
func ReadTopic(ctx context.Context, cfg ReadConfig, fn func(Record)) error {
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.RetryTimeout == 0 {
		cfg.RetryTimeout = 10 * time.Second
	}
	newSource, err := kafka.NewSource(kafka.SourceConfig[Record]{
		Brokers:   cfg.Brokers,
		Security:  cfg.Security,
		Topics:    []string{cfg.Topic},
		StartFrom: kafka.Earliest,
		Isolation: kafka.ReadCommitted,
		Mode:      kafka.StopAtEnd,
		Deserializer: func(r kafka.Record) (Record, error) {
			return Record{Position: Position{r.Topic, r.Partition, r.Offset}, Value: r.Value}, nil
		},
		DialTimeout:  cfg.DialTimeout,
		RetryTimeout: cfg.RetryTimeout,
	})
	if err != nil {
		return err
	}
	src, err := newSource()
	if err != nil {
		return err
	}
	defer src.Close()
	// The open call itself retries an unreachable broker until the context
	// ends, so bound it.
	octx, cancel := context.WithTimeout(ctx, cfg.RetryTimeout)
	err = src.Open(octx, runtime.TaskInfo{Job: "verify", Operator: "verify", Parallelism: 1}, nil)
	cancel()
	if err != nil {
		return fmt.Errorf("read topic %q from %v: %w", cfg.Topic, cfg.Brokers, err)
	}
	out := runtime.CollectorFunc[Record](fn)
	for {
		switch err := src.Read(ctx, out); {
		case errors.Is(err, runtime.ErrEndOfInput):
			return nil
		case err != nil:
			return fmt.Errorf("read topic %q: %w", cfg.Topic, err)
		}
	}
}
