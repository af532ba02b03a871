package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/internal/kafkasec"
	"github.com/weirstream/weir/runtime"
)

// noTimestampWire is the Kafka record timestamp that stands for
// runtime.NoTimestamp on a repartition topic: Kafka's own "no timestamp"
// (RecordBatch.NO_TIMESTAMP), which brokers accept and do not check
// against message.timestamp.difference.max.ms.
const noTimestampWire = -1

// Exchange implements runtime.Cluster: it creates the repartition topic
// <group>-<name>-repartition with tasks partitions and no retention
// (repartitionConfigs) if it is missing, and
// returns an exactly-once Kafka sink that writes each ExchangeRecord to
// partition Task, and a read_committed Kafka source whose subtask i reads
// partition i. Join must have run: the topic is named after the group.
func (c *cluster) Exchange(ctx context.Context, name string, tasks int) (runtime.SinkFactory[runtime.ExchangeRecord], runtime.SourceFactory[runtime.ExchangeRecord], error) {
	c.mu.Lock()
	group := c.group
	c.mu.Unlock()
	if group == "" {
		return nil, nil, fmt.Errorf("kafka cluster: exchange %q: %w", name, errNotJoined)
	}
	if tasks < 1 {
		return nil, nil, fmt.Errorf("kafka cluster: exchange %q: %d tasks", name, tasks)
	}
	topic := group + "-" + name + "-repartition"
	if err := checkTopicName(topic); err != nil {
		return nil, nil, fmt.Errorf("kafka cluster: exchange %q of group %q: %w", name, group, err)
	}
	if err := c.ensureTopic(ctx, topic, tasks); err != nil {
		return nil, nil, err
	}
	sink, err := NewSink(SinkConfig[runtime.ExchangeRecord]{
		Brokers:  c.cfg.Brokers,
		Security: c.cfg.Security,
		Topic:    topic,
		// NB: the ids start with the group, as the topic does, so one
		// prefixed ACL of the group covers a job's exchanges; the sink
		// adds the task and the slot.
		TransactionalIDPrefix: topic,
		RequestTimeout:        c.cfg.RequestTimeout,
		newEncoder:            exchangeEncoder,
		route:                 func(r runtime.ExchangeRecord) int { return r.Task },
		groupNamed:            true,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("kafka cluster: exchange %q: %w", name, err)
	}
	source, err := NewSource(SourceConfig[runtime.ExchangeRecord]{
		Brokers:      c.cfg.Brokers,
		Security:     c.cfg.Security,
		Topics:       []string{topic},
		Deserializer: exchangeRecord,
		DialTimeout:  c.cfg.DialTimeout,
		byIndex:      true,
		purge:        true,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("kafka cluster: exchange %q: %w", name, err)
	}
	return sink, source, nil
}

// checkTopicName reports a name Kafka does not accept for a topic.
func checkTopicName(topic string) error {
	if len(topic) > 249 {
		return fmt.Errorf("repartition topic name %q is longer than Kafka's 249 characters: shorten the group or the operator name", topic)
	}
	for _, r := range topic {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("repartition topic name %q has %q: Kafka topic names take only ASCII letters, digits, '.', '_' and '-'; rename the group or the operator", topic, r)
		}
	}
	return nil
}

// ensureTopic creates topic with tasks partitions unless it exists, and
// checks the partition count of one that does.
func (c *cluster) ensureTopic(ctx context.Context, topic string, tasks int) error {
	c.mu.Lock()
	n, ok := c.exchanges[topic]
	c.mu.Unlock()
	if !ok {
		err := c.admin(ctx, func(ctx context.Context, cl *kgo.Client) (err error) {
			n, err = c.createTopic(ctx, cl, topic, tasks)
			return err
		})
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.exchanges[topic] = n
		c.mu.Unlock()
	}
	if n != tasks {
		return fmt.Errorf("kafka cluster: %w: repartition topic %q has %d partitions, but the job has %d tasks: "+
			"it was left by an earlier job of the group with %d tasks; delete it once none of that job's members runs "+
			"(kafka-topics.sh --bootstrap-server %s --delete --topic %s), which drops the records in flight between its tasks, "+
			"or run this job under another group",
			ErrPartitionCount, topic, n, tasks, n, c.cfg.Brokers[0], topic)
	}
	return nil
}

// createTopic creates topic with tasks partitions, or finds it exists, and
// returns its partition count once every partition has a leader (a broker
// creates topics asynchronously).
func (c *cluster) createTopic(ctx context.Context, cl *kgo.Client, topic string, tasks int) (int, error) {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = int32(c.cfg.RequestTimeout.Milliseconds())
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, int32(tasks), c.cfg.ReplicationFactor
	for _, kv := range repartitionConfigs {
		cfg := kmsg.NewCreateTopicsRequestTopicConfig()
		cfg.Name, cfg.Value = kv[0], kmsg.StringPtr(kv[1])
		rt.Configs = append(rt.Configs, cfg)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, fmt.Errorf("kafka cluster: create topic %q at %v: %w", topic, c.cfg.Brokers, kafkasec.Classify(err, c.cfg.Brokers))
	}
	if len(resp.Topics) != 1 {
		return 0, fmt.Errorf("kafka cluster: create topic %q: %d topics in the answer", topic, len(resp.Topics))
	}
	switch err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); {
	case err == nil:
	case errors.Is(err, kerr.TopicAlreadyExists):
		c.keepForever(ctx, cl, topic)
	case errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed):
		return 0, fmt.Errorf("kafka cluster: create repartition topic %q: %w", topic,
			kafkasec.Authorization(err, c.cfg.Brokers, kafkasec.Topic, topic, kafkasec.Create))
	default:
		return 0, fmt.Errorf("kafka cluster: create repartition topic %q: %w", topic, err)
	}
	backoff := 10 * time.Millisecond
	for {
		counts, err := c.partitionCounts(ctx, cl, topic)
		if err == nil {
			return counts[topic], nil
		}
		if !errors.Is(err, kerr.LeaderNotAvailable) && !errors.Is(err, kerr.UnknownTopicOrPartition) {
			return 0, err
		}
		if err := waitOrDone(ctx, backoff); err != nil {
			return 0, fmt.Errorf("kafka cluster: repartition topic %q has no leader for every partition yet: %w", topic, err)
		}
		backoff = min(2*backoff, time.Second)
	}
}

// repartitionConfigs are the topic configs of a repartition topic, as
// Kafka Streams sets them: the broker never deletes records by time or
// size (a job replaying old event times, whose records carry them as
// Kafka timestamps, or one stopped longer than the default 7 days, would
// otherwise lose records its tasks have not read), and the receiving
// tasks purge what their completed checkpoints have read (DeleteRecords,
// SourceConfig.purge).
var repartitionConfigs = [][2]string{{"retention.ms", "-1"}, {"retention.bytes", "-1"}, {"cleanup.policy", "delete"}}

// keepForever sets repartitionConfigs on topic, which exists: it may have
// been created by an earlier weir with the broker's default retention, or
// by hand. NB: a failure (typically no AlterConfigs permission on the
// topic) is logged, not returned: the topic keeps working as before, and
// refusing the job would stop one that ran until now.
func (c *cluster) keepForever(ctx context.Context, cl *kgo.Client, topic string) {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	for _, kv := range repartitionConfigs {
		cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		cfg.Name, cfg.Op, cfg.Value = kv[0], kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr(kv[1])
		res.Configs = append(res.Configs, cfg)
	}
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, cl)
	if err == nil && len(resp.Resources) == 1 {
		err = kerr.ErrorForCode(resp.Resources[0].ErrorCode)
	}
	if err != nil {
		slog.Warn("kafka cluster: could not set retention.ms=-1, retention.bytes=-1 and cleanup.policy=delete on an existing repartition topic: "+
			"the broker may delete records its tasks have not read yet; set them (kafka-configs.sh --bootstrap-server BROKER --alter --entity-type topics "+
			"--entity-name TOPIC --add-config retention.ms=-1,retention.bytes=-1,cleanup.policy=delete) or grant AlterConfigs on the topic",
			"topic", topic, "err", err)
	}
}

// markerHeader is the header that makes a record of a repartition topic a
// watermark marker (runtime.ExchangeRecord.Marker): its value is the
// marker's kind (one byte) and its sender (uvarint), the record's value
// the watermark (8 bytes, big-endian); it has no key and no timestamp.
// NB: a header, not the record's timestamp, carries the watermark: Kafka
// may refuse or misread MaxWatermark as a timestamp.
const markerHeader = "weir.marker"

// markerMessage encodes the marker r.
func markerMessage(r runtime.ExchangeRecord) Message {
	h := binary.AppendUvarint([]byte{byte(r.Marker)}, uint64(r.Sender))
	return Message{
		Value:   binary.BigEndian.AppendUint64(nil, uint64(r.Timestamp)),
		Headers: []Header{{Key: markerHeader, Value: h}},
		Time:    time.UnixMilli(noTimestampWire),
	}
}

// markerRecord decodes the marker r, whose markerHeader is h.
func markerRecord(r Record, h []byte) (runtime.ExchangeRecord, error) {
	sender, n := uint64(0), 0
	if len(h) > 1 {
		sender, n = binary.Uvarint(h[1:])
	}
	if n <= 0 || len(r.Value) != 8 || sender > math.MaxInt32 {
		return runtime.ExchangeRecord{}, fmt.Errorf("kafka cluster: %s/%d at offset %d: unreadable watermark marker (header %x, value %x)",
			r.Topic, r.Partition, r.Offset, h, r.Value)
	}
	return runtime.ExchangeRecord{Task: int(r.Partition), Marker: runtime.Marker(h[0]), Sender: int(sender),
		Timestamp: int64(binary.BigEndian.Uint64(r.Value))}, nil
}

// exchangeEncoder makes the encoder of one exchange sink. It copies the key
// and the value into buffers it owns (see valueArena), so the caller may
// reuse its own after Write, and allocates about once per valueBuffer bytes.
func exchangeEncoder() func(runtime.ExchangeRecord) (Message, error) {
	var a valueArena
	return func(r runtime.ExchangeRecord) (Message, error) {
		if r.Marker != runtime.NoMarker {
			return markerMessage(r), nil
		}
		ts := r.Timestamp
		switch {
		case ts == runtime.NoTimestamp:
			ts = noTimestampWire
		case ts < 0:
			// NB: Kafka refuses negative timestamps but its own -1, which
			// reads back as no event time.
			return Message{}, fmt.Errorf("kafka cluster: a record of event time %d ms (before 1970) cannot cross a repartition topic, whose Kafka timestamps carry event times: give records event times from 1970 on", ts)
		}
		b := append(append(a.room(), r.Key...), r.Value...)
		b = a.keep(b)
		m := Message{Time: time.UnixMilli(ts)}
		if r.Key != nil {
			m.Key = b[:len(r.Key):len(r.Key)]
		}
		if r.Value != nil {
			m.Value = b[len(r.Key):]
		}
		return m, nil
	}
}

// exchangeRecord is the Deserializer of an exchange source. NB: Key and
// Value alias the fetch response, which is safe to keep after the call
// here: kgo allocates every response's buffer anew and never reuses it
// (brokerCxn.readSizeAndBody), and decompresses into new slices, so the
// record stays valid as long as it is referenced.
func exchangeRecord(r Record) (runtime.ExchangeRecord, error) {
	for _, h := range r.Headers {
		if h.Key == markerHeader {
			return markerRecord(r, h.Value)
		}
	}
	ts := r.Time.UnixMilli()
	if ts == noTimestampWire {
		ts = runtime.NoTimestamp
	}
	return runtime.ExchangeRecord{Task: int(r.Partition), Key: r.Key, Value: r.Value, Timestamp: ts}, nil
}
