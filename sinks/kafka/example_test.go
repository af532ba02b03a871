package kafka_test

import (
	"encoding/json"
	"time"

	"github.com/weirstream/weir/runtime"
	"github.com/weirstream/weir/sinks/kafka"
)

type order struct {
	ID    string  `json:"id"`
	Total float64 `json:"total"`
}

// ExampleNew configures an exactly-once sink of typed records. The runtime
// creates one Sink per subtask and drives it; this example only builds one.
func ExampleNew() {
	sink, err := kafka.New(kafka.Config[order]{
		Brokers:               []string{"localhost:9092"},
		Topic:                 "orders",
		TransactionalIDPrefix: "shop-orders-sink", // stable across restarts
		CheckpointInterval:    10 * time.Second,
		Encode: func(o order) (kafka.Message, error) {
			v, err := json.Marshal(o)
			return kafka.Message{Key: []byte(o.ID), Value: v}, err
		},
	})
	if err != nil {
		panic(err)
	}
	var _ runtime.Sink[order] = sink
}
