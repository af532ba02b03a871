package orders

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/internal/kafkasec"
)

// Produce writes orders to topic as JSON values keyed by order id, so that a
// duplicate lands in its original's partition, and waits until the brokers
// acknowledged them all. dialTimeout bounds each connection attempt (0:
// kafka-go's default); security secures the connections.
func Produce(ctx context.Context, brokers []string, security kafka.Security, topic string, batch []Order, dialTimeout time.Duration) error {
	sec := kafkasec.Config{TLS: security.TLS, SASL: security.SASL}
	msgs := make([]kafkago.Message, len(batch))
	for i, o := range batch {
		v, err := json.Marshal(o)
		if err != nil {
			return err
		}
		msgs[i] = kafkago.Message{Key: []byte(o.OrderID), Value: v}
	}
	w := &kafkago.Writer{
		Addr:                   kafkago.TCP(brokers...),
		Topic:                  topic,
		Balancer:               &kafkago.Hash{},
		RequiredAcks:           kafkago.RequireAll,
		AllowAutoTopicCreation: true,
		BatchSize:              1000,
		BatchTimeout:           time.Millisecond,
	}
	t := &kafkago.Transport{DialTimeout: dialTimeout}
	if err := sec.Transport(t); err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	w.Transport = t
	if dialTimeout == 0 {
		dialTimeout = 10 * time.Second
	}
	if err := sec.Authenticate(ctx, brokers, dialTimeout); err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		w.Close()
		return fmt.Errorf("orders: write to topic %q at %v: %w", topic, brokers,
			kafkasec.Authorization(err, brokers, kafkasec.Topic, topic, kafkasec.Write))
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("orders: write to topic %q: %w", topic, err)
	}
	return nil
}
