package kafka

import (
	"errors"
	"fmt"
	"time"
)

// DefaultRebalanceTimeout is ClusterConfig.RebalanceTimeout's default,
// Kafka's.
const DefaultRebalanceTimeout = 60 * time.Second

// ClusterConfig configures the Kafka cluster of a job spread over processes
// (NewCluster).
type ClusterConfig struct {
	// Brokers are the bootstrap brokers, host:port. Required.
	Brokers []string
	// Security is the TLS and SASL configuration of the connections to
	// the brokers, of the group member and of the exchanges' sources and
	// sinks. See the package documentation ("The cluster") for the ACLs.
	Security Security
	// Topics are the job's input topics. Required. They must be
	// co-partitioned: the same partition count each, the job's task count.
	// The group's partitions are those of the first.
	Topics []string
	// ReplicationFactor of the repartition topics that Exchange creates;
	// default -1, the broker's default.replication.factor.
	ReplicationFactor int16
	// RebalanceTimeout is how long the group waits for its members to
	// rejoin in a rebalance; default 60 s. A member's Revoked callback
	// (its tasks' final checkpoints) must return within it, or the group
	// expels the member and hands its tasks to others.
	RebalanceTimeout time.Duration
	// DialTimeout bounds connecting to a broker. Default 5 s.
	DialTimeout time.Duration
	// RequestTimeout bounds Join's and Exchange's requests to the brokers
	// (metadata, topic creation) and the exchange sinks' requests.
	// Default 30 s.
	RequestTimeout time.Duration
}

// EnsureDefaults fills zero tuning fields with their defaults.
func (c *ClusterConfig) EnsureDefaults() {
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
}

// Validate reports configuration errors.
func (c *ClusterConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	errs = append(errs, topicErrors(c.Topics, "no topics: name the job's input topics")...)
	if c.ReplicationFactor < -1 || c.ReplicationFactor == 0 {
		errs = append(errs, fmt.Errorf("replication factor %d: want -1 (the broker's default) or at least 1", c.ReplicationFactor))
	}
	if c.RebalanceTimeout < 0 || c.DialTimeout < 0 || c.RequestTimeout < 0 {
		errs = append(errs, errors.New("negative timeout"))
	}
	if err := c.Security.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kafka cluster: invalid config: %w", err)
	}
	return nil
}
