package kafka_test

import (
	"encoding/json"

	"github.com/weirstream/weir/connectors/kafka"
	"github.com/weirstream/weir/runtime"
)

type order struct {
	ID    string  `json:"id"`
	Total float64 `json:"total"`
}

// ExampleNewSink configures an exactly-once sink of typed records. The
// runtime creates one sink per subtask through the factory and drives it;
// this example only builds the factory.
func ExampleNewSink() {
	newSink, err := kafka.NewSink(kafka.SinkConfig[order]{
		Brokers:               []string{"localhost:9092"},
		Topic:                 "orders",
		TransactionalIDPrefix: "shop-orders-sink", // stable across restarts
		Encode: func(o order) (kafka.Message, error) {
			v, err := json.Marshal(o)
			return kafka.Message{Key: []byte(o.ID), Value: v}, err
		},
	})
	if err != nil {
		panic(err)
	}
	var _ runtime.SinkFactory[order] = newSink
}
