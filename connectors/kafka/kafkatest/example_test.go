package kafkatest_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/connectors/kafka/kafkatest"
	"github.com/weirstream/weir/weirtest/verify"
)

// Start a broker, give a topic some input, and read it back as a job's
// read_committed consumer would.
func Example() {
	b, err := kafkatest.Start(kafkatest.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	err = b.Produce(ctx, "orders",
		kafka.Message{Key: []byte("o-1"), Value: []byte(`{"order_id":"o-1","amount_cents":3}`)},
		kafka.Message{Key: []byte("o-2"), Value: []byte(`{"order_id":"o-2","amount_cents":4}`)})
	if err != nil {
		log.Fatal(err)
	}
	// A job's source would take b.Brokers(): kafka.SourceConfig{Brokers: b.Brokers(), …}.
	rep, err := verifyTopic(ctx, b.Brokers(), "orders")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rep.Records, "records, duplicates:", len(rep.Duplicates))
	// Output: 2 records, duplicates: 0
}

func verifyTopic(ctx context.Context, brokers []string, topic string) (verify.Report, error) {
	c := verify.NewChecker(verify.Options{Key: "order_id", Seq: "order_id", Expect: -1})
	err := verify.ReadTopic(ctx, verify.ReadConfig{Brokers: brokers, Topic: topic}, c.Add)
	return c.Report(), err
}
